"""Turn Results into targets, results.md, results.json and PNG charts."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import gc_pauses, loaded, stalls, write_path
from benchmarks._markdown import fmt, table
from benchmarks._results import (
    EvaluationRow,
    ExposureRun,
    Failure,
    GcRow,
    GcRun,
    LatencyFloor,
    LoadedRun,
    PollRow,
    PropagationRun,
    Results,
    StallPhase,
    StallRun,
    StartupRow,
    Target,
    TelemetryRow,
    WriteRun,
)
from benchmarks.peers import PEER_LIBRARIES, SCENARIOS

__all__ = ["compute_targets", "load_baseline", "load_results", "main", "write_report"]

SCENARIO_TITLES = {
    "a": "(a) boolean, 50% rollout on the user id",
    "b": "(b) Country=CA static premium, three-way rollout for everyone else",
    "c": "(c) no configuration: the default answers",
    "d": "(d) three-way experiment, exposure recording on",
}
# The rows of the summary table and chart, in order: feats first, the floor, then the peers.
FEATS_CALLS = ("sync", "await", "find_implementation")


# --------------------------------------------------------------------------- lookups


def _row(results: Results, scenario: str, library: str, call_prefix: str) -> EvaluationRow | None:
    for row in results.evaluation:
        if row.scenario == scenario and row.library == library and row.call == call_prefix:
            return row
    for row in results.evaluation:
        if (
            row.scenario == scenario
            and row.library == library
            and row.call.startswith(call_prefix)
            and "off" not in row.call
        ):
            return row
    return None


def _floor(results: Results, scenario: str) -> EvaluationRow | None:
    return _row(results, scenario, "floor", "plain function")


def _fastest_peer(results: Results, scenario: str) -> EvaluationRow | None:
    peers = [
        row
        for row in results.evaluation
        if row.scenario == scenario and row.library in PEER_LIBRARIES and row.ok
    ]
    return min(peers, key=lambda row: row.ns, default=None)


def _fmt_ns(ns: float) -> str:
    if math.isnan(ns):
        return "n/a"
    if ns >= 10_000:
        return f"{ns / 1000:,.1f} µs"
    return f"{ns:,.0f} ns"


# --------------------------------------------------------------------------- targets


def compute_targets(results: Results) -> list[Target]:
    """Every target of issues 4, 8 and 13 as a ratio or a figure from this one run."""
    targets = _evaluation_targets(results)
    targets += _startup_targets(results)
    targets += _exposure_targets(results)
    targets += _propagation_targets(results)
    targets += stalls.targets(results)
    targets += loaded.targets(results)
    targets += write_path.targets(results)
    targets += gc_pauses.targets(results)
    return targets + _not_measured(results)


# What each section's targets are, for the rows of a section this run did not measure.
_EXPECTED: dict[str, tuple[str, str, str]] = {
    "evaluation": ("evaluation: (a) vs the floor, vs the peers, await vs sync", "", "issues 4, 13"),
    "startup": ("start-up vs its floor, and its memory", "≤ 1.0x; ≤ 10 MB", "issue 13"),
    "stalls": (
        "loop stalls: start, after start, full reload, re-seed, burst",
        "max ≤ 5 ms each",
        "issue 8",
    ),
    "loaded": (
        "propagation under a loaded loop (listener, first request)",
        "p99 ≤ 10 ms",
        "issue 8",
    ),
    "propagation": ("fan-out p99, CPU per applied change", "≤ 5 ms; ≤ 40 µs", "issues 4, 13"),
    "write": ("set_state p50, write to visible p50 (idle)", "≤ 0.3 ms; ≤ 0.5 ms", "issue 13"),
    "exposures": (
        "exposures: vs a Rollout (hot path, with the writer), sync flat out",
        "≤ 1.15x; ≤ 1.4x; none dropped",
        "issues 4, 13",
    ),
    "gc": ("full gc.collect() beside an App; full GCs from a burst", "≤ 5 ms; none", "issue 13"),
}


def _not_measured(results: Results) -> list[Target]:
    missing = []
    for section, (name, goal, issue) in _EXPECTED.items():
        rows: list[Any] = getattr(results, section)
        if rows:
            continue
        ran = section in results.settings.get("sections", ())
        why = "section failed (see Failures)" if ran else "section not run"
        missing.append(Target(name, goal, f"not measured: {why}", None, issue=issue))
    return missing


def _evaluation_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    sync_a = _row(results, "a", "feats", "sync")
    floor_a = _floor(results, "a")
    if sync_a and floor_a:
        ratio = sync_a.ns / floor_a.ns
        measured = f"{ratio:.2f}x ({_fmt_ns(sync_a.ns)} vs {_fmt_ns(floor_a.ns)})"
        targets.append(
            Target(
                "(a) sync is_enabled vs the floor",
                "≤ 3x the floor",
                measured,
                ratio <= 3.0,
                issue="issue 4",
            )
        )
        targets.append(
            Target(
                "no regression: (a) sync is_enabled vs the floor",
                "≤ 1.6x the floor",
                measured,
                ratio <= 1.6,
                issue="issue 13",
            )
        )
    peer_a = _fastest_peer(results, "a")
    if sync_a and peer_a:
        ratio = peer_a.ns / sync_a.ns
        targets.append(
            Target(
                "(a) vs the fastest peer",
                "≥ 5x faster",
                f"{ratio:.1f}x faster than {peer_a.library} ({_fmt_ns(peer_a.ns)})",
                ratio >= 5.0,
                issue="issue 4",
            )
        )
    ratios = []
    for scenario in SCENARIOS:
        sync = _row(results, scenario, "feats", "sync")
        awaited = _row(results, scenario, "feats", "await")
        if sync and awaited:
            ratios.append((scenario, awaited.ns / sync.ns))
    if ratios:
        worst = max(ratio for _, ratio in ratios)
        targets.append(
            Target(
                "await create vs sync create",
                "≤ 1.5x",
                ", ".join(f"({s}) {r:.2f}x" for s, r in ratios),
                worst <= 1.5,
                "(a) compares await is_enabled with sync is_enabled",
                "issue 4",
            )
        )
    if results.evaluation:
        targets += _regression_targets(results)
    return targets


def _regression_targets(results: Results) -> list[Target]:
    """(b)-(d) within 10% of an earlier run given with --baseline (sync and await rows)."""
    baseline = results.baseline
    name = "no regression: (b)-(d) vs the --baseline run"
    if not baseline:
        return [Target(name, "within 10%", "no --baseline given", None, issue="issue 13")]
    before: dict[str, float] = baseline.get("rows", {})
    compared, worst = [], 0.0
    for scenario in ("b", "c", "d"):
        for call in ("sync", "await"):
            row = _row(results, scenario, "feats", call)
            if row is None:
                continue
            old = before.get(f"{scenario}|{row.call}")
            if not old:
                continue
            ratio = row.ns / old
            worst = max(worst, ratio)
            compared.append(f"({scenario}) {call} {ratio:.2f}x")
    if not compared:
        return [Target(name, "within 10%", "no matching rows", None, issue="issue 13")]
    return [
        Target(
            name,
            "≤ 1.10x the baseline",
            ", ".join(compared),
            worst <= 1.10,
            f"baseline {baseline.get('path', '?')} ({baseline.get('date', '?')})",
            "issue 13",
        )
    ]


def _startup_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    fastest = min(
        (r for r in results.startup if r.library in PEER_LIBRARIES),
        key=lambda r: r.ms,
        default=None,
    )
    for row in results.startup:
        if row.library != "feats" or "await" not in row.what:
            continue
        kind = row.what.rsplit(", ", 1)[-1]
        floor = next(
            (r for r in results.startup if r.library == "floor" and r.what.endswith(kind)), None
        )
        detail = "asyncio App, start() to the first evaluation"
        if fastest is not None:
            detail += (
                f"; fastest peer: {fastest.library} {fastest.ms:,.0f} ms, {fastest.rss_mb:.1f} MB"
            )
        name = f"start-up time vs the floor, {row.flags:,} features ({kind})"
        goal = "≤ 1.0x the floor (one HGETALL + json.loads of each record)"
        if floor is None:
            targets.append(
                Target(name, goal, "not measured: no floor row", None, detail, "issue 13")
            )
        else:
            ratio = row.ms / floor.ms if floor.ms > 0 else math.inf
            targets.append(
                Target(
                    name,
                    goal,
                    f"{ratio:.2f}x ({row.ms:,.0f} ms vs {floor.ms:,.0f} ms)",
                    ratio <= 1.0,
                    f"{detail}; the floor's RSS growth {floor.rss_mb:,.1f} MB",
                    "issue 13",
                )
            )
        targets.append(
            Target(
                f"start-up memory, {row.flags:,} features ({kind})",
                "≤ 10 MB resident growth",
                f"{row.rss_mb:,.1f} MB ({row.ms:,.0f} ms)",
                row.rss_mb <= 10.0,
                detail,
                "issue 13",
            )
        )
    return targets


def _exposure_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    on = next((r for r in results.exposures if r.app == "asyncio" and r.exposures), None)
    off = next((r for r in results.exposures if r.app == "asyncio" and not r.exposures), None)
    if on is not None:
        rate = on.in_redis / max(on.seconds + on.drain_seconds, 1e-9)
        targets.append(
            Target(
                "sustained exposures into Redis (asyncio App)",
                "≥ 100,000/s",
                f"{rate:,.0f}/s ({on.dropped:,} dropped)",
                rate >= 100_000 and on.dropped == 0,
                issue="issue 4",
            )
        )
    awaited_on = _row(results, "d", "feats", "await create")
    awaited_off = _row(results, "d", "feats", "await create, exposures off")
    hot_path = "(d) await create, Experiment vs Rollout"
    if results.exposures and not (awaited_on and awaited_off):
        targets.append(
            Target(
                hot_path,
                "≤ 1.15x",
                "not measured: needs the evaluation section's table (d)",
                None,
                issue="issue 13",
            )
        )
    if awaited_on and awaited_off and awaited_off.ns > 0:
        ratio = awaited_on.ns / awaited_off.ns
        detail = "table (d): an Experiment vs the same split as a Rollout, hot path only"
        sync_on = _row(results, "d", "feats", "sync create")
        sync_off = _row(results, "d", "feats", "sync create, exposures off")
        if sync_on and sync_off and sync_off.ns > 0:
            detail += f"; sync create: {sync_on.ns / sync_off.ns:.2f}x"
        targets.append(
            Target(
                hot_path,
                "≤ 1.15x",
                f"{ratio:.2f}x ({_fmt_ns(awaited_on.ns)} vs {_fmt_ns(awaited_off.ns)})",
                ratio <= 1.15,
                detail,
                "issue 13",
            )
        )
    if on is not None and off is not None and off.ns_per_evaluation > 0:
        ratio = on.ns_per_evaluation / off.ns_per_evaluation
        targets.append(
            Target(
                "(d) Experiment vs Rollout, the writer's work counted",
                "≤ 1.4x",
                f"{ratio:.2f}x ({_fmt_ns(on.ns_per_evaluation)} vs "
                f"{_fmt_ns(off.ns_per_evaluation)})",
                ratio <= 1.4,
                "asyncio App, sustained, the wait for the writer to drain counted",
                "issue 13",
            )
        )
    flat = next((r for r in results.exposures if r.app == "sync, flat out"), None)
    if flat is not None:
        lost = flat.recorded - flat.in_redis
        targets.append(
            Target(
                "sync App flat out on one thread: exposures dropped",
                "none",
                f"{flat.dropped:,} dropped of {flat.recorded:,} recorded "
                f"({flat.in_redis:,} in the store)",
                flat.dropped == 0 and lost == 0,
                f"{flat.written:,} written by the writer thread; "
                f"{_fmt_ns(flat.ns_per_evaluation)} per evaluation",
                "issue 13",
            )
        )
    return targets


def _propagation_targets(results: Results) -> list[Target]:
    targets: list[Target] = []
    single = next((run for run in results.propagation if run.apps == 1), None)
    for run in results.propagation:
        if run.apps == 1 and len(results.propagation) > 1:
            continue  # the single-App baseline: no target of its own
        details = [f"{run.missing} missed"] if run.missing else []
        if single is not None:
            details.append(f"one App alone: p99 {fmt(single.p99_ms)} ms")
        details.append(f"writer's set_state p50 {fmt(run.write_ms_p50)} ms")
        details.append(
            f"{run.full_collections} full GCs in the App processes, longest "
            f"{fmt(run.full_collection_max_ms, 0)} ms"
        )
        configured = f"{run.apps} Apps, {run.features:,} feature(s) configured"
        targets.append(
            Target(
                f"fan-out propagation p99, {configured}",
                "≤ 5 ms",
                f"{fmt(run.p99_ms)} ms (p50 {fmt(run.p50_ms)} ms, max {fmt(run.max_ms)} ms)",
                run.p99_ms <= 5.0 and run.missing == 0,
                "; ".join(details),
                "issues 4, 13",
            )
        )
        if run.cpu_seconds <= 0:
            targets.append(
                Target(
                    f"fan-out CPU per applied change and App, {configured}",
                    "≤ 40 µs",
                    "not measured in this run",
                    None,
                    issue="issue 13",
                )
            )
        else:
            targets.append(
                Target(
                    f"fan-out CPU per applied change and App, {configured}",
                    "≤ 40 µs",
                    f"{run.cpu_per_change_us:,.1f} µs",
                    run.cpu_per_change_us <= 40.0,
                    f"{run.cpu_seconds:,.2f} s of CPU in {run.run_seconds:,.1f} s; without the "
                    f"idle rate ({run.idle_cpu_per_app_us_per_second:,.0f} µs/s per App): "
                    f"{run.cpu_per_change_idle_subtracted_us:,.1f} µs",
                    "issue 13",
                )
            )
    return targets


# --------------------------------------------------------------------------- markdown


def _shares(row: EvaluationRow) -> str:
    parts = [f"{name} {share:.1f}%" for name, share in row.shares.items()]
    text = ", ".join(parts)
    if row.exposures is not None:
        text += f"; {row.exposures:,} exposures"
    return text


def _summary_rows(results: Results) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for row in results.evaluation:
        key = (row.library, row.call)
        if key not in seen:
            seen.append(key)
    order = {"feats": 0, "floor": 1}
    return sorted(seen, key=lambda key: order.get(key[0], 2))


def _call_label(library: str, call: str) -> str:
    return f"{library} `{call}`" if library in ("feats",) else library


def _evaluation_md(results: Results) -> list[str]:
    lines = ["## Evaluation cost", ""]
    lines.append(
        "Nanoseconds per call, the median of the timed passes; every pass evaluates each of "
        f"{results.settings.get('users', 0):,} distinct users once. The bare loop "
        f"({results.loop_overhead_ns:.1f} ns per iteration) is subtracted from every row. "
        "The rows of a scenario are timed interleaved, 250 users at a time in rotating order, "
        "so bursts of noise from the rest of the machine hit every row alike. Ratios are to "
        "the floor of the same scenario."
    )
    lines.append("")
    header = ["library", "call", *[f"({s})" for s in SCENARIOS]]
    rows = []
    for library, call in _summary_rows(results):
        cells = [library, f"`{call}`" if library == "feats" else call]
        for scenario in SCENARIOS:
            row = next(
                (
                    r
                    for r in results.evaluation
                    if r.scenario == scenario and r.library == library and r.call == call
                ),
                None,
            )
            cells.append("" if row is None else _fmt_ns(row.ns) + ("" if row.ok else " ⚠"))
        rows.append(cells)
    lines += table(header, rows, "ll" + "r" * len(SCENARIOS))
    lines += ["", "![Evaluation cost per library and scenario](evaluation.png)", ""]
    for scenario in SCENARIOS:
        lines += [f"### {SCENARIO_TITLES[scenario]}", ""]
        floor = _floor(results, scenario)
        rows = []
        for row in sorted(
            (r for r in results.evaluation if r.scenario == scenario),
            key=lambda r: ({"feats": 0, "floor": 1}.get(r.library, 2), r.ns),
        ):
            ratio = f"{row.ns / floor.ns:.2f}x" if floor and floor.ns > 0 else ""
            version = f" {row.version}" if row.version and row.library != "feats" else ""
            sanity = "ok" if row.ok else "CHECK: " + "; ".join(row.problems)
            rows.append(
                [
                    f"{row.library}{version}",
                    f"`{row.call}`" if row.library == "feats" else row.call,
                    _fmt_ns(row.ns),
                    ratio,
                    _shares(row),
                    sanity,
                ]
            )
        lines += table(
            [
                "library",
                "call",
                "per call",
                "x floor",
                "share of users per implementation",
                "sanity",
            ],
            rows,
            "llrrll",
        )
        lines.append("")
    return lines


def _propagation_md(results: Results) -> list[str]:
    if not results.propagation:
        return []
    lines = ["## Propagation", ""]
    first = max(results.propagation, key=lambda run: run.apps)
    lines.append(
        f"One writer (an asyncio App calling `admin.set_state`) and {first.apps} asyncio Apps "
        f"in {first.processes} processes, each App with its own Redis connections; "
        f"{first.changes} changes, one every {first.interval_ms:g} ms. Latency: from the "
        "writer's call (wall clock) to each App's change listener, which runs right after the "
        "App swapped in the new snapshot. Every (App, change) pair is one sample. The first "
        "row is a single App in one process: the same path without fan-out. CPU: what the App "
        "processes spent (every thread, user + system) from all Apps live to all Apps having "
        "applied the last change, per change and App; the idle column takes off the rate "
        "the same processes spent just before with nothing to apply. Full GCs: the App "
        "processes' own (gc.callbacks) while the changes ran."
    )
    lines.append("")
    rows = [
        [
            f"{run.features:,}",
            f"{run.apps}",
            f"{run.processes}",
            f"{run.changes}",
            fmt(run.p50_ms),
            fmt(run.p99_ms),
            fmt(run.max_ms),
            f"{run.samples:,}",
            f"{run.missing:,}",
            fmt(run.write_ms_p50),
            f"{run.cpu_per_change_us:,.1f}",
            f"{run.cpu_per_change_idle_subtracted_us:,.1f}",
            f"{run.full_collections} ({fmt(run.full_collection_max_ms, 0)} ms, "
            f"{fmt(run.full_collection_total_ms, 0)} ms in all)",
        ]
        for run in results.propagation
    ]
    lines += table(
        [
            "features configured",
            "Apps",
            "processes",
            "changes",
            "p50 ms",
            "p99 ms",
            "max ms",
            "samples",
            "missed",
            "writer's set_state p50 ms",
            "CPU µs per change and App",
            "CPU µs, idle rate off",
            "full GCs in App processes (longest, in all)",
        ],
        rows,
        "rrrrrrrrrrrrr",
    )
    lines += ["", "The peers' documented default refresh, for comparison:", ""]
    poll_rows = [
        [
            poll.library,
            "push (streaming)" if poll.default_seconds is None else f"{poll.default_seconds:g} s",
            poll.mechanism,
            poll.source,
        ]
        for poll in results.poll_intervals
    ]
    lines += table(["library", "default", "mechanism", "source"], poll_rows)
    lines += ["", "![Propagation latency CDF](propagation_cdf.png)", ""]
    return lines


def _startup_md(results: Results) -> list[str]:
    if not results.startup:
        return []
    lines = ["## Startup and memory", ""]
    lines.append(
        "Each row is a fresh interpreter that imported and declared everything first; measured "
        "is the wall time and the growth of the resident set from `start()` to the first "
        "evaluation (feats, configuration read from Redis) or from parsing a local document "
        "to the first evaluation (the peers). The floor rows read the same stored records "
        "with one HGETALL and `json.loads` each (redis-py with hiredis, connecting included): "
        "the issue-13 target is feats' asyncio row at most 1.0x its floor, and at most 10 MB."
    )
    lines.append("")
    rows = [
        [
            f"{row.library} {row.version}".strip(),
            f"{row.flags:,}",
            row.what,
            f"{row.ms:,.1f}",
            f"{row.rss_mb:,.1f}",
            row.note,
        ]
        for row in results.startup
    ]
    lines += table(["library", "flags", "what", "ms", "RSS growth MB", "note"], rows, "lrlrrl")
    lines += ["", "![Startup time and memory](startup.png)", ""]
    return lines


def _exposures_md(results: Results) -> list[str]:
    if not results.exposures:
        return []
    lines = ["## Exposures", ""]
    lines.append(
        "One App, scenario (d) evaluated flat out in alternating phases: the experiment "
        "(every create() records an exposure) and the same split as a Rollout ('off'). The "
        "asyncio loop yields every 1,000 calls so the writer task runs; after an 'on' phase "
        "the loop waits for the writer to drain the buffer and that wait counts in the cost "
        "per evaluation and in the rate. Exposures in the store are counted back through "
        "`admin.exposures`. The last row is the sync App evaluating the experiment flat out "
        "on one thread for the whole run, without pauses: its writer thread must keep up "
        "(nothing dropped)."
    )
    lines.append("")
    rows = []
    for run in results.exposures:
        rate = run.in_redis / max(run.seconds + run.drain_seconds, 1e-9) if run.exposures else 0
        rows.append(
            [
                run.app,
                "on" if run.exposures else "off",
                f"{run.seconds:.1f} + {run.drain_seconds:.2f}",
                f"{run.evaluations:,}",
                _fmt_ns(run.ns_per_evaluation),
                f"{run.recorded:,}" if run.exposures else "",
                f"{run.written:,}" if run.exposures else "",
                f"{run.in_redis:,}",
                f"{run.dropped:,}",
                f"{rate:,.0f}" if run.exposures else "",
            ]
        )
    lines += table(
        [
            "App",
            "exposures",
            "seconds evaluating + draining",
            "evaluations",
            "per evaluation",
            "recorded",
            "written",
            "in the store",
            "dropped",
            "exposures/s",
        ],
        rows,
        "llrrrrrrrr",
    )
    lines.append("")
    return lines


def _telemetry_md(results: Results) -> list[str]:
    if not results.telemetry:
        return []
    lines = ["## Telemetry", ""]
    lines.append(
        "Scenario (b), sync create on Apps that differ only in their evaluation listeners "
        "(each subject its own App; slices interleaved), then OpenFeature get_string_value "
        "on FeatsProvider without and with the OpenTelemetry hook. Median ns per evaluation, "
        "loop overhead subtracted."
    )
    lines.append("")
    off = next((row.ns for row in results.telemetry if row.subject == "off"), None)
    plain = next(
        (row.ns for row in results.telemetry if row.subject == "OpenFeature, no hook"), None
    )
    rows = []
    for row in results.telemetry:
        base = plain if row.subject.startswith("OpenFeature") else off
        ratio = f"{row.ns / base:.2f}x" if base else ""
        events = "" if row.events is None else f"{row.events:,}"
        rows.append(
            [row.subject, _fmt_ns(row.ns), ratio, events, "; ".join(row.problems) or "ok", row.note]
        )
    lines += table(
        ["telemetry", "per evaluation", "x off", "events", "sanity", "what"], rows, "lrrrll"
    )
    lines.append("")
    return lines


def _targets_md(results: Results) -> list[str]:
    lines = ["## Targets", ""]
    met = sum(1 for target in results.targets if target.met is True)
    missed = sum(1 for target in results.targets if target.met is False)
    unknown = sum(1 for target in results.targets if target.met is None)
    lines.append(
        f"{met} met, {missed} missed, {unknown} not measured or not applicable. Ratios are to "
        "a floor or baseline measured in this same run."
    )
    if results.profiles:
        lines.append("")
        lines.append(
            "**A profiled run (`--profile`): the profiler slowed what it watched, so these "
            "figures are not results.**"
        )
    lines.append("")
    rows = [
        [
            target.name,
            target.goal,
            target.measured,
            "n/a" if target.met is None else ("met" if target.met else "**missed**"),
            target.issue,
            target.detail,
        ]
        for target in results.targets
    ]
    lines += table(["target", "goal", "measured", "", "from", "detail"], rows)
    lines.append("")
    return lines


def _profiles_md(results: Results) -> list[str]:
    if not results.profiles:
        return []
    lines = ["## Profiles", ""]
    lines.append(
        "Written by `--profile`: one file set per measured process (`.prof` + `.txt` from "
        "cProfile, every thread merged; `.svg` flame graphs from py-spy). Open a `.prof` with "
        "`python -m pstats FILE` or snakeviz."
    )
    lines.append("")
    lines += [f"- [{path}]({path})" for path in results.profiles]
    lines.append("")
    return lines


def _notes_md(results: Results) -> list[str]:
    lines = ["## Peer setups", ""]
    scenarios: dict[tuple[str, str], list[str]] = {}
    for row in results.evaluation:
        if row.library in PEER_LIBRARIES:
            scenarios.setdefault((f"{row.library} {row.version}", row.note), []).append(
                row.scenario
            )
    lines += [
        f"- **{library}** ({', '.join(found)}): {note}"
        for (library, note), found in sorted(
            scenarios.items(),
            key=lambda item: (PEER_LIBRARIES.index(item[0][0].split()[0]), item[1]),
        )
    ]
    lines.append("")
    if results.failures:
        lines += ["## Failures and skips", ""]
        lines += [f"- {f.section}: {f.library}: {f.reason}" for f in results.failures]
        lines.append("")
    return lines


def _header_md(results: Results) -> list[str]:
    machine = results.machine
    settings = results.settings
    lines = ["# feats benchmark results", ""]
    lines.append(
        f"Run {machine.get('date', '?')} on {machine.get('cpu', '?')} "
        f"({machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GB), "
        f"{machine.get('os', '?')}, Python {machine.get('python', '?')}; "
        f"{machine.get('redis', 'no Redis')}."
    )
    lines.append("")
    lines.append(f"Command: `{machine.get('command', 'python -m benchmarks')}`")
    lines.append("")
    versions = ", ".join(
        f"{name} {version}" for name, version in machine.get("versions", {}).items()
    )
    if versions:
        lines += [f"Versions: {versions}.", ""]
    knobs = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "sections")
    lines += [f"Settings: {knobs}.", ""]
    return lines


def _markdown(results: Results) -> str:
    lines = _header_md(results)
    lines += _targets_md(results)
    lines += _evaluation_md(results)
    lines += _startup_md(results)
    lines += stalls.markdown(results)
    lines += loaded.markdown(results)
    lines += _propagation_md(results)
    lines += write_path.markdown(results)
    lines += _exposures_md(results)
    lines += _telemetry_md(results)
    lines += gc_pauses.markdown(results)
    lines += _notes_md(results)
    lines += _profiles_md(results)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- charts


def _charts(results: Results, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    if results.evaluation:
        _evaluation_chart(plt, results, out / "evaluation.png")
        written.append(out / "evaluation.png")
    if results.propagation:
        figure, axes = plt.subplots(figsize=(10, 5))
        for run in results.propagation:
            if not run.quantiles_ms:
                continue
            fractions = [
                step / (len(run.quantiles_ms) - 1) for step in range(len(run.quantiles_ms))
            ]
            axes.plot(
                [max(v, 0.01) for v in run.quantiles_ms],
                fractions,
                label=f"feats, {run.apps} App{'s' if run.apps > 1 else ''}, "
                f"{run.features:,} feature{'s' if run.features > 1 else ''} configured",
            )
        axes.axvline(5, color="grey", linestyle=":", label="target p99: 5 ms")
        for poll in results.poll_intervals:
            if poll.default_seconds is not None:
                axes.axvline(
                    poll.default_seconds * 1000, linestyle="--", alpha=0.6, color="tab:red"
                )
                axes.text(
                    poll.default_seconds * 1000,
                    0.05 + 0.1 * results.poll_intervals.index(poll),
                    f" {poll.library} polls every {poll.default_seconds:g} s",
                    fontsize=8,
                    color="tab:red",
                )
        axes.set_xscale("log")
        axes.set_xlabel("ms from the writer's call to the App's new snapshot (log scale)")
        axes.set_ylabel("fraction of (App, change) samples")
        axes.set_ylim(0, 1.01)
        axes.set_title("Propagation latency CDF")
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=8, loc="center right")
        figure.tight_layout()
        path = out / "propagation_cdf.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    for draw in (stalls.chart, loaded.chart, write_path.chart, gc_pauses.chart):
        drawn = draw(plt, results, out)
        if drawn is not None:
            written.append(drawn)
    if results.startup:
        figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
        labels = [_startup_label(row) for row in results.startup]
        left.barh(labels, [row.ms for row in results.startup], color="tab:blue")
        left.set_xlabel("ms to first evaluation")
        right.barh(labels, [row.rss_mb for row in results.startup], color="tab:orange")
        right.set_xlabel("resident memory growth, MB")
        right.set_yticklabels([])
        flags = results.startup[0].flags
        figure.suptitle(f"Startup with {flags:,} configured flags (lower is better)")
        for axes_ in (left, right):
            axes_.invert_yaxis()
            axes_.grid(axis="x", alpha=0.3)
        figure.tight_layout()
        path = out / "startup.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


SHORT_TITLES = {
    "a": "(a) 50% boolean rollout",
    "b": "(b) CA static, 3-way rollout",
    "c": "(c) no configuration",
    "d": "(d) 3-way experiment",
}


def _series(row: EvaluationRow) -> str:
    """The chart series of a row: sync is_enabled and sync create are one series."""
    if row.library != "feats":
        return row.library
    call = row.call.replace("is_enabled", "call").replace("create", "call")
    return f"feats {call}".replace("sync call", "sync create / is_enabled").replace(
        "await call", "await create / is_enabled"
    )


def _evaluation_chart(plt: Any, results: Results, path: Path) -> None:
    series: list[str] = []
    for row in sorted(results.evaluation, key=lambda r: {"feats": 0, "floor": 1}.get(r.library, 2)):
        if _series(row) not in series:
            series.append(_series(row))
    colors = plt.get_cmap("tab20").colors
    color = {name: colors[index % len(colors)] for index, name in enumerate(series)}
    figure, axes = plt.subplots(figsize=(13, 5.5))
    width, cursor, centers, labelled = 0.8, 0.0, [], set()
    for scenario in SCENARIOS:
        rows = sorted(
            (r for r in results.evaluation if r.scenario == scenario),
            key=lambda r: series.index(_series(r)),
        )
        start = cursor
        for row in rows:
            name = _series(row)
            axes.bar(
                cursor,
                row.ns,
                width,
                color=color[name],
                label=None if name in labelled else name,
            )
            labelled.add(name)
            cursor += 1
        centers.append((start + cursor - 1) / 2)
        cursor += 1.5
    axes.set_yscale("log")
    axes.set_ylabel("ns per evaluation (log scale)")
    axes.set_xticks(centers)
    axes.set_xticklabels([SHORT_TITLES[s] for s in SCENARIOS])
    axes.set_title("Evaluation cost per library and scenario (lower is better)")
    axes.grid(axis="y", which="both", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    ordered = sorted(zip(labels, handles, strict=True), key=lambda pair: series.index(pair[0]))
    axes.legend(
        [handle for _, handle in ordered],
        [label for label, _ in ordered],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _startup_label(row: StartupRow) -> str:
    if row.library != "feats":
        return row.library
    call = "aio" if "await" in row.what else "sync"
    return f"feats {call}, {row.what.rsplit(', ', 1)[-1]}"


# --------------------------------------------------------------------------- entry


def _jsonable(results: Results) -> dict[str, Any]:
    document = dataclasses.asdict(results)
    for row in document["evaluation"]:
        row["ok"] = not row["problems"]
    return document


def write_report(results: Results, out: Path) -> list[Path]:
    """Write results.md, results.json and the charts into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    results.targets = compute_targets(results)
    try:
        paths = _charts(results, out)
    except ImportError as error:
        paths = []
        reason = f"no charts: {error} (pip install -e '.[bench]')"
        if not any(f.section == "report" and f.reason == reason for f in results.failures):
            results.failures.append(Failure("report", "matplotlib", reason))
    markdown = out / "results.md"
    markdown.write_text(_markdown(results), encoding="utf-8")
    document = out / "results.json"
    document.write_text(json.dumps(_jsonable(results), indent=1, ensure_ascii=False) + "\n")
    return [markdown, document, *paths]


def load_results(path: Path) -> Results:
    """Read a results.json back (to redraw the report after changing it, say); files from
    before a section existed read as that section not run."""
    document = json.loads(path.read_text(encoding="utf-8"))
    for row in document["evaluation"]:
        row.pop("ok", None)
    return Results(
        machine=document["machine"],
        settings=document["settings"],
        evaluation=[EvaluationRow(**row) for row in document["evaluation"]],
        loop_overhead_ns=document["loop_overhead_ns"],
        propagation=[PropagationRun(**run) for run in document["propagation"]],
        poll_intervals=[PollRow(**poll) for poll in document["poll_intervals"]],
        startup=[StartupRow(**row) for row in document["startup"]],
        exposures=[ExposureRun(**run) for run in document["exposures"]],
        telemetry=[TelemetryRow(**row) for row in document.get("telemetry", [])],
        stalls=[
            StallRun(**{**run, "phases": [StallPhase(**phase) for phase in run["phases"]]})
            for run in document.get("stalls", [])
        ],
        loaded=[LoadedRun(**run) for run in document.get("loaded", [])],
        write=[
            WriteRun(**{**run, "floors": [LatencyFloor(**floor) for floor in run["floors"]]})
            for run in document.get("write", [])
        ],
        gc=[
            GcRun(**{**run, "rows": [GcRow(**row) for row in run["rows"]]})
            for run in document.get("gc", [])
        ],
        profiles=list(document.get("profiles", [])),
        baseline=document.get("baseline"),
        failures=[Failure(**failure) for failure in document["failures"]],
        sections_seconds=document["sections_seconds"],
    )


def load_baseline(path: Path) -> dict[str, Any]:
    """The evaluation rows of an earlier run's results.json, for the no-regression targets:
    {"path", "date", "rows": {"scenario|call": ns}} (feats rows only)."""
    document = json.loads(path.read_text(encoding="utf-8"))
    rows = {
        f"{row['scenario']}|{row['call']}": float(row["ns"])
        for row in document.get("evaluation", [])
        if row.get("library") == "feats"
    }
    return {"path": str(path), "date": document.get("machine", {}).get("date", "?"), "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.report DIR``: redraw DIR's results.md and charts from its JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=main.__doc__)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    for path in write_report(load_results(args.folder / "results.json"), args.folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
