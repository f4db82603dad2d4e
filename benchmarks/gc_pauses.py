"""Garbage collection (issue 13 target 5): the cost of a full collection beside an App.

The measured process (``python -m benchmarks.gc_pauses --child ...``) times ``gc.collect()``
(the median of a few, after one that clears what garbage there was) at each stage: the
interpreter with feats imported (the floor), the App declared with many features, the App
started with every feature evaluated (compiled), and the same after ``gc.freeze()`` (what
moving the snapshot out of the collector's way would give). Between the last two, another
process writes a burst of changes while ``gc.callbacks`` count the collections the App's
own work triggers: a full (generation 2) one is what the target forbids.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import redis.asyncio

import feats.aio
from benchmarks._child import Child, answer
from benchmarks._many import USER, declare_many, seed, write_burst, writer
from benchmarks._markdown import fmt, table
from benchmarks._measure import rss_bytes
from benchmarks._profile import profiled
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import GcRow, GcRun, Results, Target
from benchmarks._settings import Settings
from feats._tail import FREEZE_SETTLED_SECONDS

__all__ = ["chart", "gc_steps", "main", "markdown", "run_gc", "targets"]

COLLECT_TARGET_MS: Final = 5.0
ROUNDS: Final = 5
_MB: Final = 1024 * 1024
_READY_TIMEOUT: Final = 900.0


def gc_steps(settings: Settings) -> int:
    return 3


# --------------------------------------------------------------------------- the child


def _collect(what: str) -> dict[str, Any]:
    gc.collect()
    pauses = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        gc.collect()
        pauses.append((time.perf_counter() - started) * 1000)
    row = GcRow(
        what=what,
        collect_ms=round(statistics.median(pauses), 3),
        collect_max_ms=round(max(pauses), 3),
        tracked_objects=len(gc.get_objects()),
        rss_mb=round(rss_bytes() / _MB, 1),
    )
    return asdict(row)


class _Collections:
    """Collections the interpreter starts by itself: count per generation, full pauses."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.full_ms: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        generation = info.get("generation", 0)
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.counts[generation] += 1
        if generation == 2:
            self.full_ms.append((time.perf_counter() - self._began) * 1000)


async def _child(url: str, namespace: str, features: int) -> None:
    rows = [_collect("interpreter with feats imported, no App (the floor)")]
    client = redis.asyncio.Redis.from_url(url)
    storage = feats.aio.RedisStorage(redis=client, namespace=namespace)
    app = feats.aio.App(storage=storage, start_timeout=_READY_TIMEOUT)
    handles = declare_many(app, features)
    rows.append(_collect(f"App declared with {features:,} features, not started"))
    await app.start()
    for start in range(0, len(handles), 100):
        for handle in handles[start : start + 100]:
            await handle.is_enabled(USER)
        await asyncio.sleep(0)
    rows.append(_collect(f"App started, {features:,} features just compiled"))
    # The App's writer freezes the heap once compiling has settled (feats._tail): give it
    # the time it waits, then measure what a long-running process sees.
    await asyncio.sleep(FREEZE_SETTLED_SECONDS + 1.0)
    rows.append(_collect(f"App started, {features:,} features evaluated (compiled), settled"))
    answer({"ready": True, "rows": rows, "thresholds": list(gc.get_threshold())})
    loop = asyncio.get_running_loop()
    collections = _Collections()
    began = time.perf_counter()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "begin":
        gc.callbacks.append(collections)
        began = time.perf_counter()
        answer({"begun": True})
        line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.startswith("done "):
        await app.wait_for_version(line.split()[1], timeout=120)
    elapsed = time.perf_counter() - began
    if collections in gc.callbacks:
        gc.callbacks.remove(collections)
    gc.freeze()
    rows.append(_collect("the same after gc.freeze() (what an App could do after a load)"))
    gc.unfreeze()
    answer(
        {
            "rows": rows,
            "burst_seconds": elapsed,
            "counts": collections.counts,
            "full_ms": collections.full_ms,
        }
    )
    await app.aclose()
    await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gc_pauses")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--features", type=int, required=True)
    args = parser.parse_args(argv)
    with profiled():
        asyncio.run(_child(args.url, args.namespace, args.features))
    return 0


# --------------------------------------------------------------------------- the parent


async def _run(settings: Settings, url: str, section: Section) -> GcRun:
    features = settings.gc_features
    namespace = fresh_namespace("gc")
    child: Child | None = None
    try:
        section.note(f"configuring {features} features")
        await seed(url, namespace, features, "rollouts")
        section.advance(f"{features} features configured")
        arguments = ["--child", "--url", url, "--namespace", namespace]
        child = Child("benchmarks.gc_pauses", [*arguments, "--features", str(features)], "gc-app")
        ready = await child.areceive(_READY_TIMEOUT)
        section.advance("App started, every feature evaluated")
        app, handles = writer(url, namespace, features)
        try:
            child.send("begin")
            await child.areceive(60)
            section.note(f"burst of {settings.burst_changes} changes")
            last = await write_burst(app, handles, settings.burst_changes)
        finally:
            storage = app.storage
            if isinstance(storage, feats.aio.RedisStorage):
                await storage.redis.aclose()
        child.send(f"done {last}")
        report = await child.areceive(180)
        section.advance("burst")
    finally:
        if child is not None:
            await asyncio.to_thread(child.close)
        await asyncio.to_thread(delete_namespace, url, namespace)
    full = [float(pause) for pause in report["full_ms"]]
    counts = [int(count) for count in report["counts"]]
    return GcRun(
        features=features,
        rows=[GcRow(**row) for row in report["rows"]],
        burst_changes=settings.burst_changes,
        burst_seconds=round(float(report["burst_seconds"]), 3),
        burst_full_collections=counts[2],
        burst_full_collection_max_ms=round(max(full, default=0.0), 2),
        burst_full_collection_total_ms=round(sum(full), 2),
        burst_young_collections=counts[0] + counts[1],
        thresholds=[int(value) for value in ready["thresholds"]],
    )


def run_gc(settings: Settings, url: str, section: Section, results: Results) -> None:
    results.gc.append(asyncio.run(_run(settings, url, section)))
    section.done()


# --------------------------------------------------------------------------- the report


def _compiled(run: GcRun) -> GcRow | None:
    return next((row for row in run.rows if "settled" in row.what), None)


def targets(results: Results) -> list[Target]:
    found = []
    for run in results.gc:
        row, floor = _compiled(run), run.rows[0] if run.rows else None
        if row is not None:
            detail = f"{row.tracked_objects:,} objects tracked"
            if floor is not None:
                detail += (
                    f"; the floor (no App): {fmt(floor.collect_ms, 2)} ms, "
                    f"{floor.tracked_objects:,} objects; the App's share "
                    f"{fmt(row.collect_ms - floor.collect_ms, 2)} ms"
                )
            frozen = next((r for r in run.rows if "freeze" in r.what), None)
            if frozen is not None:
                detail += f"; after gc.freeze(): {fmt(frozen.collect_ms, 2)} ms"
            found.append(
                Target(
                    f"full gc.collect() beside one App, {run.features:,} compiled features",
                    f"≤ {COLLECT_TARGET_MS:g} ms",
                    f"{fmt(row.collect_ms, 2)} ms (max of {ROUNDS}: {fmt(row.collect_max_ms, 2)})",
                    row.collect_ms <= COLLECT_TARGET_MS,
                    detail,
                    "issue 13",
                )
            )
        found.append(
            Target(
                f"full collections triggered by a burst of {run.burst_changes:,} changes",
                "none",
                f"{run.burst_full_collections} (longest {fmt(run.burst_full_collection_max_ms, 1)}"
                " ms)",
                run.burst_full_collections == 0,
                f"{run.burst_young_collections} young collections in "
                f"{run.burst_seconds:.2f} s; thresholds {tuple(run.thresholds)}",
                "issue 13",
            )
        )
    return found


def markdown(results: Results) -> list[str]:
    if not results.gc:
        return []
    lines = ["## Garbage collection", ""]
    for run in results.gc:
        lines.append(
            "A process of its own holding one asyncio App; each row times a full "
            f"`gc.collect()` (the median of {ROUNDS}, after one that cleared the garbage "
            f"there was). Target: at most {COLLECT_TARGET_MS:g} ms with {run.features:,} "
            f"compiled features. Then a burst of {run.burst_changes:,} changes from another "
            f"process: {run.burst_full_collections} full collection(s) started by the "
            f"interpreter itself (longest {fmt(run.burst_full_collection_max_ms, 1)} ms, "
            f"{fmt(run.burst_full_collection_total_ms, 1)} ms in all) and "
            f"{run.burst_young_collections} young ones, in {run.burst_seconds:.2f} s."
        )
        lines.append("")
        rows = [
            [
                row.what,
                fmt(row.collect_ms, 2),
                fmt(row.collect_max_ms, 2),
                f"{row.tracked_objects:,}",
                fmt(row.rss_mb, 1),
            ]
            for row in run.rows
        ]
        lines += table(
            ["process holds", "gc.collect() ms", "max ms", "objects tracked", "RSS MB"],
            rows,
            "lrrrr",
        )
        lines += ["", "![Full collection cost](gc.png)", ""]
    return lines


def chart(plt: Any, results: Results, out: Path) -> Path | None:
    if not results.gc or not results.gc[-1].rows:
        return None
    run = results.gc[-1]
    figure, axes = plt.subplots(figsize=(10, 3.5))
    axes.barh([row.what for row in run.rows], [row.collect_ms for row in run.rows])
    axes.axvline(COLLECT_TARGET_MS, color="grey", linestyle=":", label="target: 5 ms")
    axes.invert_yaxis()
    axes.set_xlabel("full gc.collect(), ms (median)")
    axes.set_title("A full garbage collection beside one App (lower is better)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = out / "gc.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
