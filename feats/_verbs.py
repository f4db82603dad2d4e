"""Change verbs as pure edits of a FeatureState, name resolution with "did you mean", plans.

The admins read the current state, let an edit compute the next one, validate it against
the declarations (the App's own, else the published catalog), show or write it.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._catalog import Catalog, merge_registries
from ._changes import find_change
from ._codec import decode_record
from ._declarations import Registry
from ._diff import DiffLine, diff_states
from ._errors import CodecError, ConfigurationError, NotFoundError
from ._selectors import MAX_WEIGHT, rule_label
from ._state import (
    Change,
    Experiment,
    FeatureState,
    Rollout,
    RuleKey,
    Static,
    resolve_state,
    segment_name,
    validate_state,
)
from ._stored import Loaded, Problem, RawEntry, version_position

__all__ = [
    "ChangeFeed",
    "Edit",
    "HistoryEntry",
    "Plan",
    "RemoveRule",
    "Replace",
    "Reset",
    "Rollback",
    "Route",
    "SetRollout",
    "StartExperiment",
    "StopExperiment",
    "configured_changes",
    "current_states",
    "history_entries",
    "make_plan",
    "pick_registry",
    "registry_for",
    "resolve_feature",
    "resolve_name",
    "resolve_values",
    "suggest",
    "unreadable_history",
    "unreadable_records",
    "version_of",
    "where_of",
]

Where = tuple[tuple[str, str], ...]


# -- names -----------------------------------------------------------------------------


def suggest(given: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a mistyped name, if one is close enough."""
    names = list(candidates)
    lowered = {name.lower(): name for name in names}
    found = difflib.get_close_matches(given.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[found[0]] if found else None


def _plural(kind: str) -> str:
    return kind[:-1] + "ies" if kind.endswith("y") else kind + "s"


def resolve_name(
    kind: str, given: str, candidates: Iterable[str], *, owner: str | None = None
) -> str:
    """``given`` itself, a unique case-insensitive match, or NotFoundError with a suggestion."""
    names = list(candidates)
    if given in names:
        return given
    folded = [name for name in names if name.lower() == given.lower()]
    if len(folded) == 1:
        return folded[0]
    of = f" of {owner}" if owner else ""
    hint = suggest(given, names)
    message = f"unknown {kind} {given!r}{of}"
    if hint is not None:
        message += f"; did you mean {hint!r}?"
    listing = ", ".join(names) if names else "none"
    if len(listing) > 300:
        listing = listing[:297] + "..."
    raise NotFoundError(f"{message} ({_plural(kind)}: {listing})")


def resolve_feature(given: str, registry: Registry, configured: Iterable[str] = ()) -> str:
    """A feature's name from what an operator typed: exact, case-insensitive, or
    ``module.Class`` of a declared class; else "did you mean"."""
    names = list(dict.fromkeys([*registry.features, *configured]))
    if "." in given and given not in names:
        given = given.rsplit(".", 1)[1]
    return resolve_name("feature", given, names)


def pick_registry(feature: str, own: Registry, catalog: Catalog) -> Registry:
    """The declarations to validate ``feature`` against: the App's own if it declares it,
    else the published catalog; NotFoundError (with a suggestion) if neither does."""
    if feature in own.features:
        return own
    if feature in catalog.features:
        return merge_registries(catalog.registry(), own)
    known = [*own.features, *catalog.features]
    if not known:
        raise NotFoundError(
            f"unknown feature {feature!r}: this process declares no features and no App has "
            "published a catalog in this namespace yet (start an App, or pass --app module:attr)"
        )
    resolve_name("feature", feature, known)
    raise NotFoundError(f"unknown feature {feature!r}")  # pragma: no cover - resolve raised


# -- where clauses ---------------------------------------------------------------------


def _segment(feature: str, given: Any, registry: Registry) -> str:
    name = resolve_name("segment", segment_name(given), registry.segments, owner=None)
    valid = [segment.name for segment in registry.valid_segments(feature)]
    if name not in valid:
        raise ConfigurationError(
            f"segment {name} cannot read {feature}'s inputs "
            f"(segments that can: {', '.join(valid) or 'none'})"
        )
    return name


def _where(feature: str, where: Mapping[Any, str] | None, registry: Registry) -> dict[str, str]:
    resolved: dict[str, str] = {}
    for given, value in (where or {}).items():
        name = _segment(feature, given, registry)
        if not isinstance(value, str):
            raise ConfigurationError(f"{name}: a segment value is a string, got {value!r}")
        options = registry.segments[name].options
        if options is not None and value not in options:
            value = resolve_name("option", value, options, owner=name)
        if name in resolved:
            raise ConfigurationError(f"segment {name} is given twice")
        resolved[name] = value
    return resolved


def _implementation(feature: str, given: str, registry: Registry) -> str:
    return resolve_name(
        "implementation", given, registry.features[feature].implementations, owner=feature
    )


def _weights(feature: str, weights: Mapping[str, float], registry: Registry) -> dict[str, float]:
    if not weights:
        raise ConfigurationError("weights: give at least one IMPLEMENTATION=WEIGHT")
    resolved: dict[str, float] = {}
    for given, weight in weights.items():
        name = _implementation(feature, given, registry)
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            raise ConfigurationError(f"weight of {name}: must be a number, got {weight!r}")
        if not 0 <= weight <= MAX_WEIGHT:  # NaN fails too
            raise ConfigurationError(
                f"weight of {name}: must be a number from 0 to {MAX_WEIGHT:g}, got {weight!r}"
            )
        if name in resolved:
            raise ConfigurationError(f"weight of {name}: given twice")
        resolved[name] = weight
    if sum(resolved.values()) <= 0:
        raise ConfigurationError(f"weights must add up to more than 0, got {resolved}")
    return resolved


def _key_for(
    feature: str, state: FeatureState | None, where: dict[str, str], resegment: bool
) -> tuple[FeatureState, RuleKey]:
    """The state to put a rule in, and the rule's key, for a ``where`` clause."""
    state = state if state is not None else FeatureState()
    if not where:
        return state, None
    if set(state.segments) == set(where):
        return state, tuple(where[name] for name in state.segments)
    keyed = [key for key in state.rules if key is not None]
    if keyed and not resegment:
        current = ", ".join(state.segments)
        raise ConfigurationError(
            f"{feature}'s rules are keyed by {current}: give a value for each "
            f"({' '.join(f'--where {name}=...' for name in state.segments)}), or resegment "
            f"by {', '.join(where)}, which removes its {len(keyed)} keyed rule(s)"
        )
    return state.with_segments(list(where)), tuple(where.values())


def _find_key(feature: str, state: FeatureState | None, where: dict[str, str]) -> RuleKey:
    if state is None:
        raise NotFoundError(f"{feature} has no configuration, so no rules to change")
    if not where:
        if None in state.rules:
            return None
        raise NotFoundError(f"{feature} has no fallthrough rule; {_rules_text(state)}")
    if set(where) != set(state.segments):
        raise NotFoundError(
            f"{feature}'s rules are keyed by {', '.join(state.segments) or 'nothing'}, "
            f"not {', '.join(where)}; {_rules_text(state)}"
        )
    key = tuple(where[name] for name in state.segments)
    if key not in state.rules:
        raise NotFoundError(
            f"{feature} has no rule for {rule_label(state.segments, key)}; {_rules_text(state)}"
        )
    return key


def _rules_text(state: FeatureState) -> str:
    labels = [rule_label(state.segments, key) for key in state.rules]
    return f"rules: {', '.join(labels) or 'none'}"


# -- edits -----------------------------------------------------------------------------


def _as_where(where: Mapping[Any, str] | None) -> Where:
    return tuple((segment_name(name), value) for name, value in (where or {}).items())


@dataclass(frozen=True)
class Edit:
    """A change to a feature's state, computed from the current one."""

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Replace(Edit):
    """Whatever the state is now, it becomes ``state`` (``None``: back to the default)."""

    state: FeatureState | None

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        return self.state

    def describe(self) -> str:
        return "replace the configuration"


@dataclass(frozen=True)
class Rollback(Replace):
    """The state of an earlier ``version``, salts and allocations included: the same users
    get the same implementations as then."""

    version: str = ""

    def describe(self) -> str:
        if self.state is None and self.version:
            return f"roll back to version {self.version} (no configuration: the default)"
        if self.state is None:
            return "roll back to no configuration (the default everywhere)"
        return f"roll back to version {self.version}"


@dataclass(frozen=True)
class Reset(Edit):
    """Back to the default implementation everywhere."""

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        return None

    def describe(self) -> str:
        return "reset to the default"


def _where_text(where: Where) -> str:
    return ", ".join(f"{name}={value}" for name, value in where) or "everyone else"


@dataclass(frozen=True)
class Route(Edit):
    """Route the users matching ``where`` (no ``where``: the fallthrough) to one implementation."""

    implementation: str
    where: Where = ()
    resegment: bool = False

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        implementation = _implementation(feature, self.implementation, registry)
        base, key = _key_for(
            feature, state, _where(feature, dict(self.where), registry), self.resegment
        )
        return base.with_rule(key, Static(implementation))

    def describe(self) -> str:
        return f"route {_where_text(self.where)} to {self.implementation}"


@dataclass(frozen=True, init=False)
class _SetSplit(Edit):
    segment: str
    weights: tuple[tuple[str, float], ...]
    where: Where
    resegment: bool
    kind: ClassVar[type[Rollout] | type[Experiment]] = Rollout

    def __init__(
        self,
        segment: Any,
        weights: Mapping[str, float],
        where: Mapping[Any, str] | Where | None = None,
        resegment: bool = False,
    ) -> None:
        object.__setattr__(self, "segment", segment_name(segment))
        object.__setattr__(self, "weights", tuple(weights.items()))
        object.__setattr__(
            self, "where", tuple(where) if isinstance(where, tuple) else _as_where(where)
        )
        object.__setattr__(self, "resegment", resegment)

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        segment = _segment(feature, self.segment, registry)
        weights = _weights(feature, dict(self.weights), registry)
        base, key = _key_for(
            feature, state, _where(feature, dict(self.where), registry), self.resegment
        )
        return base.with_rule(key, self.kind(segment, weights))

    def describe(self) -> str:
        total = sum(weight for _, weight in self.weights) or 1
        parts = ", ".join(
            f"{name} {round(weight / total * 100, 3):g}%" for name, weight in self.weights
        )
        return f"{self.kind.kind} by {self.segment} for {_where_text(self.where)}: {parts}"


@dataclass(frozen=True, init=False)
class SetRollout(_SetSplit):
    """Start or change a rollout; same rule and segment: the fewest users move."""

    kind: ClassVar[type[Rollout] | type[Experiment]] = Rollout


@dataclass(frozen=True, init=False)
class StartExperiment(_SetSplit):
    """Start (or re-weight) an experiment: assignment by hash, and every use is recorded."""

    kind: ClassVar[type[Rollout] | type[Experiment]] = Experiment


@dataclass(frozen=True)
class StopExperiment(Edit):
    """End an experiment: its users get ``winner``, or the rule goes (others' rules answer)."""

    where: Where = ()
    winner: str | None = None

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        where = _where(feature, dict(self.where), registry)
        if not where and state is not None and not isinstance(state.fallthrough, Experiment):
            running = [key for key, selector in state.splits() if isinstance(selector, Experiment)]
            if len(running) == 1 and running[0] is not None:
                where = dict(zip(state.segments, running[0], strict=True))
        key = _find_key(feature, state, where)
        assert state is not None
        if not isinstance(state.rules[key], Experiment):
            raise NotFoundError(
                f"{feature}: {rule_label(state.segments, key)} runs no experiment "
                f"(it is {state.rules[key].describe()})"
            )
        if self.winner is None:
            return state.without_rule(key)
        return state.with_rule(key, Static(_implementation(feature, self.winner, registry)))

    def describe(self) -> str:
        end = f", {self.winner} wins" if self.winner else ""
        return f"stop the experiment for {_where_text(self.where)}{end}"


@dataclass(frozen=True)
class RemoveRule(Edit):
    """Remove the rule for ``where`` (no ``where``: the fallthrough)."""

    where: Where = ()

    def apply(
        self, feature: str, state: FeatureState | None, registry: Registry
    ) -> FeatureState | None:
        key = _find_key(feature, state, _where(feature, dict(self.where), registry))
        assert state is not None
        return state.without_rule(key)

    def describe(self) -> str:
        return f"remove the rule for {_where_text(self.where)}"


def where_of(where: Mapping[Any, str] | None) -> Where:
    return _as_where(where)


# -- plans -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What a change would do: based on ``version``, from ``before`` to ``after``.

    ``unreadable``: the record stored at ``version`` could not be read (``before`` is then
    None); writing replaces it, even with no configuration.
    """

    feature: str
    version: str | None
    before: FeatureState | None
    after: FeatureState | None
    diff: tuple[DiffLine, ...]
    unreadable: bool = False

    @property
    def changed(self) -> bool:
        """Whether writing it makes a new version: the admin and the CLI write only then."""
        return self.before != self.after or self.unreadable


def make_plan(
    feature: str,
    edit: Edit,
    version: str | None,
    current: FeatureState | None,
    registry: Registry | None,
    *,
    unreadable: bool = False,
) -> Plan:
    """Apply ``edit`` to the current state, validate and resolve the result, diff it.

    ``registry`` may be None only for edits that need no declarations (a reset).
    ``unreadable``: the record at ``version`` could not be read (``current`` is None).
    """
    if registry is None:
        if not isinstance(edit, Reset | Replace) or (
            isinstance(edit, Replace) and edit.state is not None
        ):
            raise NotFoundError(f"unknown feature {feature!r}")
        after = None
    else:
        after = edit.apply(feature, current, registry)
    if after is not None:
        assert registry is not None
        # Rules the edit leaves as they were may keep their drift: the rest must be sound.
        validate_state(feature, after, registry, before=current)
        after = resolve_state(feature, after, current)
    return Plan(feature, version, current, after, tuple(diff_states(current, after)), unreadable)


@dataclass(frozen=True)
class HistoryEntry:
    """A change with the diff from the version before it."""

    change: Change
    diff: tuple[DiffLine, ...]


class ChangeFeed:
    """Change-log entries as HistoryEntry items, each diffed against its feature's last state.

    ``wanted``: only these features (empty: all). A feature seen for the first time needs
    its baseline (the state before the entry) from its history: ``needs_baseline``.
    """

    def __init__(
        self, wanted: Iterable[str] = (), last: Mapping[str, FeatureState | None] | None = None
    ) -> None:
        self.wanted = frozenset(wanted)
        self.last: dict[str, FeatureState | None] = dict(last or {})

    def needs_baseline(self, feature: str) -> bool:
        return bool(feature) and feature not in self.last

    def baseline(self, feature: str, changes: list[Change], before: str) -> None:
        """The state ``feature`` had just before version ``before``, from its history."""
        earlier = [c for c in changes if version_position(c.version) < version_position(before)]
        self.last[feature] = earlier[-1].state if earlier else None

    def feed(self, entry: RawEntry) -> HistoryEntry | Problem | None:
        """The entry as a change (None: a feature not wanted), or the Problem it has."""
        feature = entry.text("feature")
        try:
            record = decode_record(entry.fields.get("record", ""))
        except CodecError as error:
            return Problem(f"change-log entry {entry.id}", str(error), time.time())
        lines = diff_states(self.last.get(record.feature), record.state)
        self.last[record.feature] = record.state
        if self.wanted and feature not in self.wanted:
            return None
        return HistoryEntry(record.change(entry.id), tuple(lines))


def current_states(loaded: Loaded) -> dict[str, FeatureState | None]:
    """Every readable feature's current state in a full load."""
    return {name: change.state for name, change in configured_changes(loaded).items()}


def history_entries(changes: list[Change]) -> list[HistoryEntry]:
    entries: list[HistoryEntry] = []
    previous: FeatureState | None = None
    for change in changes:
        entries.append(HistoryEntry(change, tuple(diff_states(previous, change.state))))
        previous = change.state
    return entries


def registry_for(
    feature: str, edit: Edit, own: Registry, catalog: Catalog, *, configured: bool
) -> Registry | None:
    """The declarations a change of ``feature`` is validated against (see pick_registry).

    A reset needs none, so features that no App declares any more can still be cleaned up.
    """
    if feature in own.features or feature in catalog.features:
        return pick_registry(feature, own, catalog)
    if isinstance(edit, Replace) and edit.state is None:
        return None
    if isinstance(edit, Reset) and configured:
        return None
    return pick_registry(feature, own, catalog)


def resolve_values(values: Mapping[str, str], registry: Registry | None) -> dict[str, str]:
    """Segment names of ``SEGMENT=VALUE`` pairs as declared (case-insensitive, did you mean)."""
    if registry is None:
        return dict(values)
    resolved: dict[str, str] = {}
    for given, value in values.items():
        name = resolve_name("segment", given, registry.segments)
        options = registry.segments[name].options
        if options is not None and value not in options:
            value = resolve_name("option", value, options, owner=name)
        resolved[name] = value
    return resolved


def version_of(feature: str, changes: list[Change], version: str | None) -> FeatureState | None:
    """The state at ``version`` (None or "": before the first change)."""
    return None if not version else find_change(feature, changes, version).state


def unreadable_records(loaded: Loaded) -> dict[str, Problem]:
    """The configured features of a full load whose current record cannot be read, and why:
    what ``configured_changes`` leaves out."""
    found: dict[str, Problem] = {}
    for feature, (version, raw) in loaded.records.items():
        try:
            decode_record(raw)
        except CodecError as error:
            found[feature] = Problem(f"{feature} at {version}", str(error), time.time())
    return found


def unreadable_history(feature: str, items: Iterable[tuple[str, str | bytes]]) -> list[Problem]:
    """The entries of a feature's history that cannot be read, and why: what
    ``history_changes`` leaves out."""
    found: list[Problem] = []
    for version, raw in items:
        try:
            decode_record(raw)
        except CodecError as error:
            found.append(Problem(f"{feature} at {version}", str(error), time.time()))
    return found


def configured_changes(loaded: Loaded) -> dict[str, Change]:
    """Every configured feature's current change from a full load; unreadable ones are left out."""
    found: dict[str, Change] = {}
    for feature, (version, raw) in loaded.records.items():
        try:
            found[feature] = decode_record(raw).change(version)
        except CodecError:
            continue
    return found
