"""Editor forms: what a submitted form means as a feats Edit, and how it round-trips.

A form is checked here for what only a form can get wrong (numbers, totals, lengths); the
edit itself is validated by ``Admin.preview`` against the declarations, like the CLI's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import feats

__all__ = ["KINDS", "EditForm", "FormError"]

KINDS = ("route", "rollout", "experiment", "stop", "remove", "reset", "rollback")
"""``route``, ``rollout`` and ``experiment`` have an editor page; the others are buttons."""
TITLES = {
    "route": "Route users to an implementation",
    "rollout": "Roll out by percentage",
    "experiment": "Start an experiment",
    "stop": "Stop the experiment",
    "remove": "Remove a rule",
    "reset": "Reset to the default",
    "rollback": "Roll back",
}
MAX_VALUE = 200
MAX_REASON = 500
MAX_WHERE = 10
MAX_WEIGHTS = 100


class FormError(ValueError):
    """A form that cannot become an edit: shown above the form, nothing is written."""


@dataclass
class EditForm:
    """The fields of every editor; unknown fields are ignored."""

    kind: str
    where: dict[str, str] = field(default_factory=dict)
    implementation: str = ""
    by: str = ""
    weights: dict[str, str] = field(default_factory=dict)
    winner: str = ""
    version: str = ""
    resegment: bool = False
    expected_version: str = ""
    reason: str = ""

    @classmethod
    def from_fields(cls, fields: Iterable[tuple[str, str]], kind: str | None = None) -> EditForm:
        """The form of these fields. ``order`` (names, comma-separated: the order the
        editor's script saw the weights filled in) puts the weights in that order, the
        others after them as given: "aperture 5%, acme 95%" as typed, like the CLI's."""
        form = cls(kind="")
        order: list[str] = []
        for name, raw in fields:
            value = raw if isinstance(raw, str) else ""
            if name.startswith("where."):
                if value.strip():
                    form.where[name[len("where.") :]] = value.strip()
            elif name.startswith("weight."):
                form.weights[name[len("weight.") :]] = value.strip()
            elif name == "kind":
                form.kind = value
            elif name in ("implementation", "by", "winner", "version", "expected_version"):
                setattr(form, name, value.strip())
            elif name == "resegment":
                form.resegment = value in ("1", "on", "true")
            elif name == "reason":
                form.reason = value.strip()
            elif name == "order":
                order = [item.strip() for item in value.split(",")[:MAX_WEIGHTS]]
        if order:
            first = {name: form.weights[name] for name in order if name in form.weights}
            form.weights = {**first, **form.weights}
        if kind is not None:
            form.kind = kind
        return form

    @property
    def title(self) -> str:
        return TITLES.get(self.kind, self.kind)

    def hidden_fields(self) -> list[tuple[str, str]]:
        """Every field that makes the edit, to carry it from the preview to the write."""
        found = [("kind", self.kind), ("expected_version", self.expected_version)]
        found += [(f"where.{name}", value) for name, value in self.where.items()]
        if self.implementation:
            found.append(("implementation", self.implementation))
        if self.by:
            found.append(("by", self.by))
        found += [(f"weight.{name}", value) for name, value in self.weights.items()]
        if self.winner:
            found.append(("winner", self.winner))
        if self.kind == "rollback":
            found.append(("version", self.version))
        if self.resegment:
            found.append(("resegment", "1"))
        return found

    def query(self) -> dict[str, str]:
        """The editor page's query string that shows this form again, filled in."""
        return {name: value for name, value in self.hidden_fields() if name != "kind"}

    def _where(self) -> tuple[tuple[str, str], ...]:
        if len(self.where) > MAX_WHERE:
            raise FormError(f"at most {MAX_WHERE} segments in one rule")
        for name, value in self.where.items():
            if len(value) > MAX_VALUE:
                raise FormError(f"the value of {name} is longer than {MAX_VALUE} characters")
        return tuple(self.where.items())

    def _weights(self) -> dict[str, float]:
        weights: dict[str, float] = {}
        for name, text in self.weights.items():
            if not text:
                continue
            try:
                value = float(text.removesuffix("%"))
            except ValueError:
                raise FormError(f"the weight of {name} must be a number, not {text!r}") from None
            if math.isnan(value) or math.isinf(value) or not 0 <= value <= 100:
                raise FormError(f"the weight of {name} must be from 0 to 100, not {text}")
            if value > 0:
                weights[name] = int(value) if value.is_integer() else value
        total = sum(weights.values())
        if abs(total - 100) > 1e-6:
            given = ", ".join(f"{name} {weight:g}%" for name, weight in weights.items())
            raise FormError(
                f"the weights add up to {total:g}%, not 100% ({given or 'none given'}): "
                "give every implementation its share"
            )
        return weights

    def edit(self, history: Mapping[str, feats.FeatureState | None] | None = None) -> feats.Edit:
        """The feats Edit this form asks for; FormError if it cannot be one.

        ``history``: states by version, for a rollback.
        """
        where = self._where()
        if self.kind == "route":
            if not self.implementation:
                raise FormError("choose the implementation these users get")
            return feats.Route(self.implementation, where, self.resegment)
        if self.kind in ("rollout", "experiment"):
            if not self.by:
                raise FormError("choose the segment to split users by (e.g. UserId)")
            split = feats.SetRollout if self.kind == "rollout" else feats.StartExperiment
            return split(self.by, self._weights(), where, self.resegment)
        if self.kind == "stop":
            return feats.StopExperiment(where, self.winner or None)
        if self.kind == "remove":
            return feats.RemoveRule(where)
        if self.kind == "reset":
            return feats.Reset()
        if self.kind == "rollback":
            if not self.version:
                return feats.Rollback(None, "")
            if history is None or self.version not in history:
                raise FormError(f"version {self.version!r} is not in this feature's history")
            return feats.Rollback(history[self.version], self.version)
        raise FormError(f"unknown kind of change {self.kind!r}")

    def check_reason(self) -> str:
        if not self.reason:
            raise FormError("say why: the reason is kept in the history with your name")
        if len(self.reason) > MAX_REASON:
            raise FormError(f"the reason is longer than {MAX_REASON} characters")
        return self.reason
