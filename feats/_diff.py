"""Human-readable differences between two configurations of a feature (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._bucketing import BUCKETS
from ._selectors import rule_label
from ._state import FeatureState, Selector

__all__ = ["DiffLine", "describe_selector", "diff_states", "moves", "rule_label"]


def describe_selector(selector: Selector | None) -> str:
    if selector is None:
        return "(none)"
    return selector.describe()


def _percent(fraction: float) -> str:
    value = round(fraction * 100, 3)
    return f"{value:g}%"


def moves(before: Selector, after: Selector) -> dict[tuple[str, str], float] | None:
    """The share of a rule's users that change implementation, per ``(from, to)``.

    Exact when both sides hash the same way (same salt), or when one side is static;
    ``None`` when a new salt or segment reassigns everyone independently.
    """
    first, second = before.hashing(), after.hashing()
    if first is not None and second is not None and (first != second or first[1] is None):
        return None
    flows: dict[tuple[str, str], float] = {}
    old, new = before.ranges(), after.ranges()
    i = j = 0
    while i < len(old) and j < len(new):
        name_a, start_a, end_a = old[i]
        name_b, start_b, end_b = new[j]
        start, end = max(start_a, start_b), min(end_a, end_b)
        if end > start and name_a != name_b:
            flows[(name_a, name_b)] = flows.get((name_a, name_b), 0.0) + (end - start) / BUCKETS
        if end_a <= end_b:
            i += 1
        else:
            j += 1
    return flows


@dataclass(frozen=True)
class DiffLine:
    """One difference: ``+`` a rule added, ``-`` removed, ``~`` changed."""

    op: str
    where: str
    before: str | None
    after: str | None
    note: str | None = None

    def __str__(self) -> str:
        if self.op == "+":
            text = f"+ {self.where}: {self.after}"
        elif self.op == "-":
            text = f"- {self.where}: {self.before}"
        else:
            text = f"~ {self.where}: {self.before} → {self.after}"
        return f"{text} ({self.note})" if self.note else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "where": self.where,
            "before": self.before,
            "after": self.after,
            "note": self.note,
            "text": str(self),
        }


def _moves_note(before: Selector, after: Selector) -> str | None:
    if before.hashing() is None and after.hashing() is None:
        return None
    flows = moves(before, after)
    if flows is None:
        return "new salt or segment: every user is assigned afresh"
    total = sum(flows.values())
    if total == 0:
        return "no user changes implementation"
    parts = ", ".join(
        f"{source}→{target} {_percent(share)}"
        for (source, target), share in sorted(flows.items(), key=lambda item: -item[1])
    )
    return f"moves {_percent(total)} of these users: {parts}"


def _by_label(state: FeatureState) -> dict[Any, tuple[str, Selector]]:
    """Rules keyed so that reordering segments does not look like a change."""
    found: dict[Any, tuple[str, Selector]] = {}
    for key, selector in state.rules.items():
        match = None if key is None else frozenset(zip(state.segments, key, strict=False))
        found[match] = (rule_label(state.segments, key), selector)
    return found


def _segments_text(segments: Iterable[str]) -> str:
    return ", ".join(segments) or "(none)"


def diff_states(before: FeatureState | None, after: FeatureState | None) -> list[DiffLine]:
    """What changes from ``before`` to ``after`` (``None`` being "no configuration")."""
    if before == after:
        return []
    if after is None:
        return [
            DiffLine("-", "configuration", _summary(before), None, "reset: the default answers")
        ]
    if before is None and not after.rules and not after.segments:
        return [DiffLine("+", "configuration", None, _summary(after), "the default answers")]
    lines: list[DiffLine] = []
    old_segments = () if before is None else before.segments
    if tuple(old_segments) != tuple(after.segments):
        lines.append(
            DiffLine("~", "segments", _segments_text(old_segments), _segments_text(after.segments))
        )
    old = {} if before is None else _by_label(before)
    new = _by_label(after)
    for match, (label, selector) in old.items():
        if match not in new:
            lines.append(DiffLine("-", label, describe_selector(selector), None))
    for match, (label, selector) in new.items():
        previous = old.get(match)
        if previous is None:
            lines.append(DiffLine("+", label, None, describe_selector(selector)))
        elif previous[1] != selector:
            before_text, after_text = describe_selector(previous[1]), describe_selector(selector)
            note = _moves_note(previous[1], selector)
            if before_text == after_text and note in (None, "no user changes implementation"):
                note = "same weights, re-resolved"
            lines.append(DiffLine("~", label, before_text, after_text, note))
    return lines


def _summary(state: FeatureState | None) -> str:
    if state is None:
        return "(no configuration)"
    rules = len(state.rules)
    return f"{rules} rule{'s' if rules != 1 else ''}"
