"""What the pages show, computed from feats' public types: summaries, rule rows, bars, times."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import feats
from feats._selectors import rule_label as core_rule_label
from feats._stored import version_position

__all__ = [
    "HEARTBEAT_SECONDS",
    "LIVE_SECONDS",
    "Bar",
    "Deploys",
    "RuleRow",
    "absolute_time",
    "bar_of",
    "is_live",
    "kind_of",
    "live_meaning",
    "relative_time",
    "rule_label",
    "rule_rows",
    "summary",
    "version_key",
]

HEARTBEAT_SECONDS = feats.CATALOG_HEARTBEAT_SECONDS
LIVE_SECONDS = feats.CATALOG_LIVE_SECONDS
"""A running App sends a catalog heartbeat (``seen:<identity>``) every HEARTBEAT_SECONDS,
which ``Catalog.from_raw`` merges into its entry's ``seen``: a deploy seen within
LIVE_SECONDS is live."""

COLORS = 8


def version_key(version: str | None) -> tuple[int, int]:
    """Stream ids (``ms-seq``) in the order Redis wrote them; "" and None come first."""
    return version_position(version) if version else (-1, -1)


def rule_label(segments: Sequence[str], key: tuple[str, ...] | None) -> str:
    """The core's label of a rule, with the fallthrough said as a page reads it."""
    if key is None:
        return "everyone else" if segments else "everyone"
    return core_rule_label(segments, key)


def summary(state: feats.FeatureState | None, default: str | None) -> str:
    """One line: ``Country=CA → premium · everyone else → acme``."""
    fallback = f"the default ({default})" if default and default != "default" else "the default"
    if state is None:
        return f"not configured: {fallback} answers"
    parts = [
        f"{rule_label(state.segments, key)} → {selector.describe()}"
        for key, selector in state.rules.items()
        if key is not None
    ]
    fallthrough = state.fallthrough
    if fallthrough is not None:
        parts.append(f"{rule_label(state.segments, None)} → {fallthrough.describe()}")
    elif parts:
        parts.append(f"everyone else → {fallback}")
    return " · ".join(parts) or f"no rules: {fallback} answers"


def kind_of(selector: feats.Static | feats.Rollout | feats.Experiment) -> str:
    if isinstance(selector, feats.Experiment):
        return "experiment"
    if isinstance(selector, feats.Rollout):
        return "rollout"
    return "route"


@dataclass(frozen=True)
class BarPart:
    implementation: str
    start: int
    width: int
    color: int
    percent: str


@dataclass(frozen=True)
class Bar:
    """A selector's buckets as coloured ranges (an SVG: no inline style, CSP-safe)."""

    parts: tuple[BarPart, ...]
    total: int = feats.BUCKETS
    legend: tuple[tuple[str, int, str], ...] = ()
    marker: int | None = None


def _percent(fraction: float) -> str:
    return f"{round(fraction * 100, 3):g}%"


def bar_of(
    selector: feats.Static | feats.Rollout | feats.Experiment | None,
    implementations: Sequence[str],
    *,
    marker: int | None = None,
) -> Bar | None:
    if selector is None:
        return None
    order = {name: index % COLORS for index, name in enumerate(implementations)}
    if isinstance(selector, feats.Static):
        name = selector.implementation
        color = order.get(name, COLORS - 1)
        return Bar(
            (BarPart(name, 0, feats.BUCKETS, color, "100%"),),
            legend=((name, color, "100%"),),
            marker=marker,
        )
    if selector.allocation:
        ranges = list(selector.allocation)
    else:
        # An unresolved split (written without allocation): lay the weights out in order.
        total = sum(selector.weights.values()) or 1
        ranges, start = [], 0
        for name, weight in selector.weights.items():
            end = start + round(weight / total * feats.BUCKETS)
            ranges.append((name, start, end))
            start = end
    parts = tuple(
        BarPart(
            name,
            start,
            end - start,
            order.get(name, COLORS - 1),
            _percent((end - start) / feats.BUCKETS),
        )
        for name, start, end in ranges
        if end > start
    )
    shares: dict[str, int] = {}
    for name, start, end in ranges:
        shares[name] = shares.get(name, 0) + end - start
    legend = tuple(
        (name, order.get(name, COLORS - 1), _percent(size / feats.BUCKETS))
        for name, size in shares.items()
    )
    return Bar(parts, legend=legend, marker=marker)


@dataclass(frozen=True)
class RuleRow:
    key: tuple[str, ...] | None
    values: tuple[str, ...]
    where: tuple[tuple[str, str], ...]
    label: str
    kind: str
    description: str
    bar: Bar | None
    selector: feats.Static | feats.Rollout | feats.Experiment
    query: dict[str, str] = field(default_factory=dict)
    """What prefills the editor of this rule."""


def rule_rows(state: feats.FeatureState | None, implementations: Sequence[str]) -> list[RuleRow]:
    """Keyed rules first (as stored), the fallthrough last."""
    if state is None:
        return []
    rows: list[RuleRow] = []
    ordered: list[tuple[tuple[str, ...] | None, feats.Static | feats.Rollout | feats.Experiment]]
    ordered = [(k, s) for k, s in state.rules.items() if k is not None]
    if state.fallthrough is not None:
        ordered.append((None, state.fallthrough))
    for key, selector in ordered:
        where = () if key is None else tuple(zip(state.segments, key, strict=False))
        query = {f"where.{name}": value for name, value in where}
        if isinstance(selector, feats.Static):
            query["implementation"] = selector.implementation
        else:
            query["by"] = selector.segment
            total = sum(selector.weights.values()) or 1
            for name, weight in selector.weights.items():
                query[f"weight.{name}"] = f"{round(weight / total * 100, 3):g}"
        rows.append(
            RuleRow(
                key=key,
                values=key or (),
                where=where,
                label=rule_label(state.segments, key),
                kind=kind_of(selector),
                description=selector.describe(),
                bar=bar_of(selector, implementations),
                selector=selector,
                query=query,
            )
        )
    return rows


def absolute_time(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def relative_time(moment: datetime | float | None, now: float | None = None) -> str:
    if moment is None:
        return "never"
    stamp = moment.timestamp() if isinstance(moment, datetime) else moment
    seconds = (time.time() if now is None else now) - stamp
    if seconds < 0:
        seconds = 0
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now" if seconds < 5 else f"{int(seconds)} s ago"


@dataclass(frozen=True)
class Deploys:
    """The deploys (sets of declarations in the catalog) that declare one feature."""

    total: int
    live: int
    """How many of them sent a heartbeat within LIVE_SECONDS."""
    seen: float | None
    """When the latest of them was last seen running (its heartbeat), if any declares it."""


def deploys(catalog: feats.Catalog, feature: str, now: float | None = None) -> Deploys:
    entries = catalog.declared_by(feature)
    if not entries:
        return Deploys(0, 0, None)
    current = time.time() if now is None else now
    live = sum(1 for entry in entries if current - entry.seen <= LIVE_SECONDS)
    return Deploys(len(entries), live, max(entry.seen for entry in entries))


def is_live(entry: feats.CatalogEntry, now: float | None = None) -> bool:
    return (time.time() if now is None else now) - entry.seen <= LIVE_SECONDS


def _duration(seconds: float) -> str:
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        return "a minute" if minutes == 1 else f"{minutes} minutes"
    return f"{seconds:g} seconds"


def live_meaning(who: str = "an App that declares it") -> str:
    """What "live" means on the pages, in one sentence."""
    return (
        f"Live: {who} sent a heartbeat within the last {_duration(LIVE_SECONDS)} (a running "
        f"App sends one every {_duration(HEARTBEAT_SECONDS).removeprefix('a ')}). Not live: "
        "none has for longer, so no running App is known to serve it."
    )


def doc_text(doc: str | None) -> str:
    """A docstring without its indentation (escaped by the template, never trusted)."""
    if not doc:
        return ""
    lines = doc.expandtabs().splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines[1:] if line.strip()]
    margin = min(indents) if indents else 0
    cleaned = [lines[0].strip(), *(line[margin:].rstrip() for line in lines[1:])]
    return "\n".join(cleaned).strip()


def segment_options(
    registry: feats.Registry, feature: str
) -> list[tuple[str, str, tuple[str, ...] | None]]:
    """``(name, doc, options)`` of every segment that can read ``feature``'s inputs."""
    if feature not in registry.features:
        return []
    return [
        (segment.name, doc_text(segment.doc), segment.options)
        for segment in registry.valid_segments(feature)
    ]


def drift_by_feature(items: Iterable[feats.Drift]) -> Mapping[str, list[feats.Drift]]:
    found: dict[str, list[feats.Drift]] = {}
    for item in items:
        found.setdefault(item.feature, []).append(item)
    return found
