"""Tables for people and plain data for --json: one function per thing the CLI shows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .._bucketing import BUCKETS, shares
from .._catalog import Catalog, Drift, FeatureInfo
from .._codec import encode_state
from .._declarations import FeatureDeclaration, Registry
from .._diff import DiffLine, describe_selector, rule_label
from .._exposures import ExposureReport
from .._snapshot import Evaluation
from .._state import Change, FeatureState
from .._stored import Problem
from .._verbs import HistoryEntry

__all__ = [
    "change_data",
    "diff_text",
    "emit_json",
    "evaluation_data",
    "format_time",
    "history_table",
    "state_summary",
]

_STYLES = {"+": "green", "-": "red", "~": "yellow"}


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_json_line(data: Any) -> None:
    """One compact JSON object per line (for streams such as ``feats watch --json``)."""
    click.echo(json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":")))


def format_time(when: datetime | float | None) -> str:
    if when is None:
        return "-"
    moment = when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)
    local = moment.astimezone()
    ago = max(0.0, time.time() - moment.timestamp())
    if ago < 60:
        relative = f"{ago:.0f}s ago"
    elif ago < 3600:
        relative = f"{ago / 60:.0f}m ago"
    elif ago < 86400:
        relative = f"{ago / 3600:.0f}h ago"
    else:
        relative = f"{ago / 86400:.0f}d ago"
    return f"{local:%Y-%m-%d %H:%M:%S} ({relative})"


def iso(when: datetime | float | None) -> str | None:
    if when is None:
        return None
    moment = when if isinstance(when, datetime) else datetime.fromtimestamp(when, UTC)
    return moment.isoformat()


def diff_text(lines: Sequence[DiffLine], *, empty: str = "no change") -> Text:
    text = Text()
    if not lines:
        text.append(empty, style="dim")
    for index, line in enumerate(lines):
        if index:
            text.append("\n")
        text.append(str(line), style=_STYLES.get(line.op, ""))
    return text


def state_summary(state: FeatureState | None, default: str | None = None) -> str:
    if state is None:
        return f"everyone → {default} (default)" if default else "not configured"
    parts = [
        f"{rule_label(state.segments, key)} → {describe_selector(selector)}"
        for key, selector in state.rules.items()
        if key is not None
    ]
    fallthrough = state.fallthrough
    if fallthrough is not None:
        parts.append(f"{'else' if parts else 'everyone'} → {describe_selector(fallthrough)}")
    elif default:
        parts.append(f"{'else' if parts else 'everyone'} → {default} (default)")
    return "; ".join(parts)


def change_data(change: Change, diff: Sequence[DiffLine] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "version": change.version,
        "feature": change.feature,
        "time": iso(change.time),
        "author": change.author,
        "reason": change.reason,
        "state": None if change.state is None else encode_state(change.state),
    }
    if diff is not None:
        data["diff"] = [line.as_dict() for line in diff]
    return data


def history_table(feature: str, entries: Sequence[HistoryEntry]) -> Table:
    table = Table(title=f"History of {feature} (oldest first)", title_justify="left")
    table.add_column("Version", no_wrap=True)
    table.add_column("When (local)", no_wrap=True)
    table.add_column("Who", max_width=16)
    table.add_column("Why", max_width=24)
    table.add_column("Change", min_width=40)
    for entry in entries:
        change = entry.change
        table.add_row(
            change.version,
            f"{change.time.astimezone():%Y-%m-%d %H:%M:%S}",
            change.author,
            change.reason,
            diff_text(entry.diff),
        )
    return table


def _implementations(declaration: FeatureDeclaration) -> str:
    return ", ".join(
        f"{name}*" if name == declaration.default else name for name in declaration.implementations
    )


def _unreadable_text(problem: Problem) -> str:
    return f"unreadable: {problem.message}"


def features_table(
    registry: Registry,
    configured: Mapping[str, Change],
    namespace: str,
    unreadable: Mapping[str, Problem] | None = None,
    versions: Mapping[str, str] | None = None,
) -> Table:
    """Every feature, declared or configured; ``unreadable`` ones (with their ``versions``)
    say so instead of looking unconfigured."""
    unreadable = unreadable or {}
    table = Table(title=f"Features in namespace {namespace!r}", title_justify="left")
    table.add_column("Feature", no_wrap=True)
    table.add_column("Implementations (* default)")
    table.add_column("Configuration")
    table.add_column("Version", no_wrap=True)
    table.add_column("Last change")
    for name in sorted(set(registry.features) | set(configured) | set(unreadable)):
        declaration = registry.features.get(name)
        change = configured.get(name)
        label = Text(name)
        if declaration is None:
            label.append(" (undeclared)", style="red")
        elif declaration.boolean:
            label.append(" (boolean)", style="dim")
        if name in unreadable:
            table.add_row(
                label,
                "-" if declaration is None else _implementations(declaration),
                Text(_unreadable_text(unreadable[name]), style="red"),
                (versions or {}).get(name, "?"),
                "-",
            )
            continue
        table.add_row(
            label,
            "-" if declaration is None else _implementations(declaration),
            state_summary(
                None if change is None else change.state,
                None if declaration is None else declaration.default,
            ),
            "-" if change is None else change.version,
            "-"
            if change is None
            else f"{change.author}, {format_time(change.time)}: {change.reason}",
        )
    return table


def features_data(
    registry: Registry,
    configured: Mapping[str, Change],
    unreadable: Mapping[str, Problem] | None = None,
    versions: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    unreadable = unreadable or {}
    rows = []
    for name in sorted(set(registry.features) | set(configured) | set(unreadable)):
        declaration = registry.features.get(name)
        change = configured.get(name)
        if name in unreadable:
            rows.append(
                {
                    "feature": name,
                    "declared": declaration is not None,
                    "boolean": None if declaration is None else declaration.boolean,
                    "default": None if declaration is None else declaration.default,
                    "implementations": []
                    if declaration is None
                    else list(declaration.implementations),
                    "version": (versions or {}).get(name),
                    "unreadable": unreadable[name].message,
                    "summary": _unreadable_text(unreadable[name]),
                }
            )
            continue
        rows.append(
            {
                "feature": name,
                "declared": declaration is not None,
                "boolean": None if declaration is None else declaration.boolean,
                "default": None if declaration is None else declaration.default,
                "implementations": [] if declaration is None else list(declaration.implementations),
                "version": None if change is None else change.version,
                "author": None if change is None else change.author,
                "reason": None if change is None else change.reason,
                "time": None if change is None else iso(change.time),
                "state": None
                if change is None or change.state is None
                else encode_state(change.state),
                "summary": state_summary(
                    None if change is None else change.state,
                    None if declaration is None else declaration.default,
                ),
            }
        )
    return rows


def _type_names(types: Iterable[Any]) -> str:
    return ", ".join(getattr(t, "__name__", None) or repr(t) for t in types) or "(no inputs)"


def rules_table(feature: str, state: FeatureState | None, default: str | None) -> Table:
    table = Table(title=f"Rules of {feature}", title_justify="left")
    table.add_column("Rule", no_wrap=True)
    table.add_column("Selector")
    table.add_column("Buckets")
    if state is None:
        table.add_row("everyone", f"{default or 'the default'} (no configuration)", "")
        return table
    for key, selector in state.rules.items():
        buckets = ""
        hashing = selector.hashing()
        if hashing is not None:
            held = shares(selector.ranges())
            buckets = ", ".join(
                f"{name} {held[name] * 100:g}%"
                for name in selector.implementations()
                if name in held
            )
            if hashing[1] is not None:
                buckets += f" (salt {hashing[1]:016x})"
        table.add_row(rule_label(state.segments, key), describe_selector(selector), buckets)
    if state.fallthrough is None:
        table.add_row("everyone else", f"{default or 'the default'} (default)", "")
    return table


def show_data(
    feature: str,
    declaration: FeatureDeclaration | None,
    info: FeatureInfo | None,
    registry: Registry,
    change: Change | None,
) -> dict[str, Any]:
    data: dict[str, Any] = {"feature": feature, "declared": declaration is not None}
    if declaration is not None:
        data.update(
            {
                "doc": declaration.doc,
                "boolean": declaration.boolean,
                "default": declaration.default,
                "module": None if info is None else info.module,
                "inputs": [
                    getattr(t, "__name__", None) or repr(t) for t in declaration.input_types
                ],
                "implementations": [
                    {
                        "name": impl.name,
                        "doc": impl.doc,
                        "returns": impl.returns,
                        "default": impl.name == declaration.default,
                    }
                    for impl in declaration.implementations.values()
                ],
                "segments": [
                    {
                        "name": segment.name,
                        "options": None if segment.options is None else list(segment.options),
                    }
                    for segment in registry.valid_segments(feature)
                ],
            }
        )
    data["current"] = None if change is None else change_data(change)
    return data


def declaration_table(feature: str, declaration: FeatureDeclaration, registry: Registry) -> Table:
    kind = "boolean feature" if declaration.boolean else "feature"
    title = f"{feature}: {kind} taking ({_type_names(declaration.input_types)})"
    table = Table(
        title=title, title_justify="left", caption=declaration.doc, caption_justify="left"
    )
    table.add_column("Implementation", no_wrap=True)
    table.add_column("Returns")
    table.add_column("Doc")
    for impl in declaration.implementations.values():
        name = Text(impl.name)
        if impl.name == declaration.default:
            name.append(" (default)", style="bold")
        table.add_row(name, impl.returns, impl.doc or "")
    segments = registry.valid_segments(feature)
    if segments:
        listing = ", ".join(
            segment.name + (f" [{'|'.join(segment.options)}]" if segment.options else "")
            for segment in segments
        )
        table.add_section()
        table.add_row(Text("segments", style="dim"), "", listing)
    return table


def evaluation_data(evaluation: Evaluation) -> dict[str, Any]:
    selector = evaluation.selector
    return {
        "feature": evaluation.feature,
        "implementation": evaluation.implementation,
        "reason": evaluation.reason,
        "segment_values": dict(evaluation.segment_values),
        "selector": None if selector is None else describe_selector(selector),
        "rule": None if evaluation.rule is None else list(evaluation.rule),
        "bucket": evaluation.bucket,
        "version": evaluation.version,
        "default": evaluation.default,
    }


def evaluation_text(evaluation: Evaluation) -> Text:
    text = Text()
    text.append(f"{evaluation.feature} → ")
    text.append(evaluation.implementation, style="bold green")
    if evaluation.default:
        text.append(" (the default)", style="dim")
    text.append(f"\n  why:     {evaluation.reason}")
    selector = evaluation.selector
    if selector is not None and selector.hashing() is not None:
        ranges = ", ".join(f"{name} {start}-{end - 1}" for name, start, end in selector.ranges())
        text.append(f"\n  buckets: {ranges} (of {BUCKETS})")
    values = ", ".join(f"{name}={value}" for name, value in evaluation.segment_values.items())
    text.append(f"\n  values:  {values or '(none)'}")
    text.append(f"\n  version: {evaluation.version or '(never configured)'}")
    return text


def exposures_table(report: ExposureReport) -> list[Table]:
    table = Table(
        title=f"Exposures of {report.feature}: {report.total:,} in total",
        title_justify="left",
        caption=None
        if report.first is None
        else f"from {format_time(report.first)} to {format_time(report.last)}",
        caption_justify="left",
    )
    table.add_column("Implementation", no_wrap=True)
    table.add_column("Exposures", justify="right")
    table.add_column("Share", justify="right")
    table.add_column("Units (est.)", justify="right")
    for item in report.implementations:
        table.add_row(
            item.implementation,
            f"{item.exposures:,}",
            f"{item.share * 100:.1f}%",
            f"{item.units:,}",
        )
    tables = [table]
    if report.values is not None:
        approximate = " (heaviest, approximate)" if report.values_approximate else ""
        values = Table(title=f"Per segment value{approximate}", title_justify="left")
        values.add_column("Value")
        values.add_column("Implementation")
        values.add_column("Exposures", justify="right")
        for value in report.values:
            values.add_row(value.value, value.implementation, f"{value.exposures:,}")
        tables.append(values)
    return tables


def drift_table(items: Sequence[Drift], namespace: str) -> Table:
    table = Table(title=f"Drift in namespace {namespace!r}", title_justify="left")
    table.add_column("Feature", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("What")
    styles = {"undeclared": "red", "invalid": "red", "unconfigured": "dim"}
    for item in items:
        table.add_row(item.feature, Text(item.kind, style=styles.get(item.kind, "")), item.message)
    return table


def catalog_table(catalog: Catalog) -> Table:
    table = Table(title="Published catalog entries (newest first)", title_justify="left")
    table.add_column("Identity", no_wrap=True)
    table.add_column("Last seen")
    table.add_column("Host / pid")
    table.add_column("Features")
    table.add_column("Segments")
    for entry in catalog.entries:
        table.add_row(
            entry.identity,
            format_time(entry.seen),
            f"{entry.host} / {entry.pid}",
            ", ".join(entry.features),
            ", ".join(entry.segments),
        )
    return table


def catalog_data(catalog: Catalog) -> dict[str, Any]:
    return {
        "entries": [
            {
                "identity": entry.identity,
                "seen": iso(entry.seen),
                "host": entry.host,
                "pid": entry.pid,
                "features": list(entry.features),
                "segments": list(entry.segments),
            }
            for entry in catalog.entries
        ],
        "problems": list(catalog.problems),
    }
