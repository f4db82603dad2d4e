"""Event-loop stalls (issue 8): how long an asyncio App's work holds its loop, phase by phase.

The measured process (``python -m benchmarks.stalls --child ...``, started by the suite)
holds one asyncio App with many configured features and a probe task that sleeps 1 ms in a
loop and records by how much each sleep overshot: the longest overshoot in a phase is the
longest stretch something else held the loop (or the GIL) meanwhile. Phases:

- floor: the probe alone (the App declared, not started): the machine's own noise;
- start: ``await app.start()`` and the first evaluation; after start: the background work
  start() set off (the catalog), for a settle period;
- first use: every feature evaluated once, ten per slice with a yield between (a request
  evaluates a few); records that arrived as bytes are decoded and compiled here;
- idle: the App live, nothing happening;
- full reload: the store replaced by another holding a newer record of every feature (a
  new epoch, its change log not following ours: a gap), then the first use after it;
- re-seed: the store restarted empty: the App writes its snapshot back and loads again;
- burst: another process writes a burst of changes as fast as it can.

The parent process does every external thing (seeding, replacing, wiping, writing), so
none of its work runs in the measured process. The App's ``block_ms`` is 250 ms, so an
idle read returns (and notices a replaced or empty store) quickly; it changes how long an
idle read waits, not what the App does per change.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import redis
import redis.asyncio

import feats.aio
from benchmarks._child import Child, answer
from benchmarks._many import USER, declare_many, seed, write_burst, writer
from benchmarks._markdown import table
from benchmarks._measure import percentile
from benchmarks._profile import profiled
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import Results, StallPhase, StallRun, Target
from benchmarks._settings import Settings

__all__ = ["chart", "main", "markdown", "run_stalls", "stall_steps", "targets"]

BLOCK_MS: Final = 250
PROBE_SECONDS: Final = 0.001
SLICE: Final = 10
"""Features evaluated between two yields in the first-use phases."""
TARGET_MS: Final = 5.0
TARGET_PHASES: Final = ("start", "after start", "full reload", "re-seed", "burst")
"""The phases issue 8 bounds (start() and what it set off count as start)."""
_READY_TIMEOUT: Final = 900.0
_PHASE_TIMEOUT: Final = 300.0


def stall_steps(settings: Settings) -> int:
    return 7


# --------------------------------------------------------------------------- the child


class _Probe:
    """Sleeps 1 ms in a loop; records when each sleep began and by how much it overshot."""

    def __init__(self) -> None:
        self.began: list[float] = []
        self.overshoot_ms: list[float] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        began, overshoot = self.began, self.overshoot_ms
        clock, sleep = time.perf_counter, asyncio.sleep
        while not self._stop.is_set():
            started = clock()
            await sleep(PROBE_SECONDS)
            began.append(started)
            overshoot.append((clock() - started - PROBE_SECONDS) * 1000)

    def stop(self) -> None:
        self._stop.set()


class _Collections:
    """Every garbage collection of this process: (when it began, generation, pause ms)."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int, float]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            pause = (time.perf_counter() - self._began) * 1000
            self.seen.append((self._began, info.get("generation", -1), pause))


def _phase(
    name: str,
    probe: _Probe,
    collections: _Collections,
    began: float,
    ended: float,
    note: str = "",
    extra: dict[str, float] | None = None,
) -> dict[str, Any]:
    stalls = [
        overshoot
        for started, overshoot in zip(probe.began, probe.overshoot_ms, strict=False)
        if began <= started < ended
    ]
    full = [
        pause
        for at, generation, pause in collections.seen
        if generation == 2 and began <= at < ended
    ]
    phase = StallPhase(
        phase=name,
        seconds=round(ended - began, 3),
        samples=len(stalls),
        p50_ms=round(percentile(stalls, 0.50), 3),
        p99_ms=round(percentile(stalls, 0.99), 3),
        max_ms=round(max(stalls, default=float("nan")), 3),
        full_collections=len(full),
        full_collection_max_ms=round(max(full, default=0.0), 2),
        note=note,
        extra={key: round(value, 3) for key, value in (extra or {}).items()},
    )
    return asdict(phase)


async def _first_use(handles: Sequence[Any]) -> dict[str, float]:
    """Every feature evaluated once, SLICE per slice, yielding between slices."""
    longest = 0.0
    started = time.perf_counter()
    for start in range(0, len(handles), SLICE):
        began = time.perf_counter()
        for handle in handles[start : start + SLICE]:
            await handle.is_enabled(USER)
        longest = max(longest, time.perf_counter() - began)
        await asyncio.sleep(0)
    return {
        "longest_slice_ms": longest * 1000,
        "evaluations": float(len(handles)),
        "total_ms": (time.perf_counter() - started) * 1000,
    }


async def _until(app: feats.aio.App, until: dict[str, Any], before: feats.Status) -> None:
    """Wait (bounded) until the App got where ``until`` says."""
    started = time.perf_counter()
    deadline = started + _PHASE_TIMEOUT
    version = until.get("version")
    if version is not None:
        await app.wait_for_version(str(version), timeout=_PHASE_TIMEOUT)
    while time.perf_counter() < deadline:
        status = app.status
        if (
            status.reloads >= before.reloads + int(until.get("reloads_more", 0))
            and status.reseeds >= before.reseeds + int(until.get("reseeds_more", 0))
            and (status.live or not until.get("live"))
        ):
            break
        await asyncio.sleep(0.005)  # no event says "re-seeded": poll the status
    else:
        raise TimeoutError(f"the App did not get to {until} within {_PHASE_TIMEOUT:g}s")


async def _child(url: str, namespace: str, features: int, settle: float, floor: float) -> None:
    probe = _Probe()
    collections = _Collections()
    gc.callbacks.append(collections)
    probing = asyncio.create_task(probe.run())
    client = redis.asyncio.Redis.from_url(url)
    storage = feats.aio.RedisStorage(redis=client, namespace=namespace)
    app = feats.aio.App(storage=storage, start_timeout=_READY_TIMEOUT, block_ms=BLOCK_MS)
    handles = declare_many(app, features)
    phases: list[dict[str, Any]] = []

    def window(name: str, began: float, note: str = "", **extra: float) -> None:
        phases.append(
            _phase(name, probe, collections, began, time.perf_counter(), note, dict(extra))
        )

    began = time.perf_counter()
    await asyncio.sleep(floor)
    window("floor", began, "the probe alone: the App declared, not started")
    began = time.perf_counter()
    await app.start()
    started = time.perf_counter()
    first = await handles[0].is_enabled(USER)
    window(
        "start",
        began,
        f"await start() and the first evaluation ({app.status.state})",
        start_ms=(started - began) * 1000,
        first_evaluation_ms=(time.perf_counter() - started) * 1000,
        answer=float(first),
    )
    began = time.perf_counter()
    await asyncio.sleep(settle)
    window("after start", began, "what start() set off in the background (the catalog)")
    began = time.perf_counter()
    used = await _first_use(handles)
    window("first use", began, f"every feature evaluated once, {SLICE} per slice", **used)
    began = time.perf_counter()
    await asyncio.sleep(settle)
    window("idle", began, "the App live, nothing happening")
    answer({"ready": True, "phases": phases, "version": app.version})
    phases = []
    reader = asyncio.get_running_loop()
    before, began = app.status, time.perf_counter()
    while True:
        line = await reader.run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            break
        command: dict[str, Any] = json.loads(line)
        if command["do"] == "begin":
            before = app.status
            began = time.perf_counter()
            answer({"begun": command["phase"]})
        elif command["do"] == "end":
            await _until(app, command.get("until", {}), before)
            waited = (time.perf_counter() - began) * 1000
            await asyncio.sleep(settle)
            status = app.status
            window(
                command["phase"],
                began,
                command.get("note", ""),
                until_ms=waited,
                reloads=float(status.reloads - before.reloads),
                reseeds=float(status.reseeds - before.reseeds),
            )
            answer({"phase": phases[-1], "state": status.state, "version": status.version})
        elif command["do"] == "use":
            began = time.perf_counter()
            used = await _first_use(handles)
            window(command["phase"], began, command.get("note", ""), **used)
            answer({"phase": phases[-1]})
        else:
            break
    probe.stop()
    await probing
    await app.aclose()
    await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stalls")
    parser.add_argument("--child", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--features", type=int, required=True)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--floor", type=float, default=2.0)
    args = parser.parse_args(argv)
    with profiled():
        asyncio.run(_child(args.url, args.namespace, args.features, args.settle, args.floor))
    return 0


# --------------------------------------------------------------------------- the parent


def _keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(match=f"feats:{{{namespace}}}:*", count=1000))


def replace_store(url: str, source: str, target: str) -> None:
    """Atomically make namespace ``target`` hold what ``source`` holds (and nothing else):
    to an App of ``target`` its store was replaced by another one."""
    client = redis.Redis.from_url(url)
    try:
        old, new = _keys(client, target), _keys(client, source)
        here, there = f"feats:{{{source}}}:".encode(), f"feats:{{{target}}}:".encode()
        pipe = client.pipeline(transaction=True)
        for start in range(0, len(old), 1000):
            pipe.delete(*old[start : start + 1000])
        for key in new:
            pipe.rename(key, there + key[len(here) :])
        pipe.execute()
    finally:
        client.close()


def wipe_store(url: str, namespace: str) -> None:
    """Every key of ``namespace`` gone at once: to its Apps, Redis restarted empty."""
    client = redis.Redis.from_url(url)
    try:
        keys = _keys(client, namespace)
        pipe = client.pipeline(transaction=True)
        for start in range(0, len(keys), 1000):
            pipe.delete(*keys[start : start + 1000])
        pipe.execute()
    finally:
        client.close()


def _stored_records(url: str, namespace: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.hlen(f"feats:{{{namespace}}}:states"))
    finally:
        client.close()


async def _external(
    child: Child,
    name: str,
    action: Callable[[], Any],
    until: dict[str, Any],
    note: str,
) -> dict[str, Any]:
    child.send(json.dumps({"do": "begin", "phase": name}))
    await child.areceive(60)
    result = action()
    if asyncio.iscoroutine(result):
        result = await result
    if isinstance(result, str):
        until = {**until, "version": result}
    child.send(json.dumps({"do": "end", "phase": name, "until": until, "note": note}))
    reply = await child.areceive(_PHASE_TIMEOUT + 60)
    phase: dict[str, Any] = reply["phase"]
    return phase


async def _run(settings: Settings, url: str, section: Section) -> StallRun:
    features = settings.stall_features
    settle, floor = (0.3, 0.5) if settings.quick else (1.0, 2.0)
    namespace, scratch = fresh_namespace("stalls"), fresh_namespace("stalls-next")
    run = StallRun(features=features, block_ms=BLOCK_MS)
    child: Child | None = None
    try:
        section.note(f"configuring {features} features")
        await seed(url, namespace, features, "rollouts")
        section.advance(f"{features} features configured")
        section.note(f"configuring the replacement store ({features} newer records)")
        await seed(url, scratch, features, "static")
        section.advance("replacement store configured")
        section.note("start, first use, idle")
        arguments = ["--child", "--url", url, "--namespace", namespace]
        arguments += ["--features", str(features), "--settle", str(settle), "--floor", str(floor)]
        child = Child("benchmarks.stalls", arguments, "stalls-app")
        ready = await child.areceive(_READY_TIMEOUT)
        phases = list(ready["phases"])
        section.advance("start, first use, idle")
        section.note("full reload (a replaced store)")
        phases.append(
            await _external(
                child,
                "full reload",
                lambda: asyncio.to_thread(replace_store, url, scratch, namespace),
                {"reloads_more": 1, "live": True},
                "the store replaced by one with a newer record of every feature (new epoch, "
                "a log that does not follow ours)",
            )
        )
        child.send(json.dumps({"do": "use", "phase": "first use after reload"}))
        phases.append((await child.areceive(_PHASE_TIMEOUT))["phase"])
        section.advance("full reload")
        section.note("re-seed (the store restarted empty)")
        phases.append(
            await _external(
                child,
                "re-seed",
                lambda: asyncio.to_thread(wipe_store, url, namespace),
                {"reseeds_more": 1, "reloads_more": 1, "live": True},
                "every key gone (Redis restarted empty): the App writes its snapshot back "
                "and loads it again",
            )
        )
        stored = await asyncio.to_thread(_stored_records, url, namespace)
        phases[-1]["extra"]["records_back"] = float(stored)
        section.advance("re-seed")
        section.note(f"burst of {settings.burst_changes} changes")
        app, handles = writer(url, namespace, features)
        try:
            phases.append(
                await _external(
                    child,
                    "burst",
                    lambda: write_burst(app, handles, settings.burst_changes),
                    {},
                    f"{settings.burst_changes} changes from another process, 16 in flight",
                )
            )
        finally:
            storage = app.storage
            if isinstance(storage, feats.aio.RedisStorage):
                await storage.redis.aclose()
        section.advance("burst")
        child.send(json.dumps({"do": "quit"}))
        run.phases = [StallPhase(**phase) for phase in phases]
        run.note = f"the store held {stored} records after the re-seed (of {features})"
    finally:
        if child is not None:
            await asyncio.to_thread(child.close)
        for name in (namespace, scratch):
            await asyncio.to_thread(delete_namespace, url, name)
    return run


def run_stalls(settings: Settings, url: str, section: Section, results: Results) -> None:
    results.stalls.append(asyncio.run(_run(settings, url, section)))
    section.done()


# --------------------------------------------------------------------------- the report


def targets(results: Results) -> list[Target]:
    found: list[Target] = []
    for run in results.stalls:
        floor = next((phase for phase in run.phases if phase.phase == "floor"), None)
        for phase in run.phases:
            if phase.phase not in TARGET_PHASES:
                continue
            detail = f"{phase.samples:,} probe wake-ups in {phase.seconds:.2f} s"
            if floor is not None:
                detail += f"; the probe alone: max {floor.max_ms:.2f} ms, p99 {floor.p99_ms:.2f} ms"
            if phase.full_collections:
                detail += (
                    f"; {phase.full_collections} full GC(s), longest "
                    f"{phase.full_collection_max_ms:.1f} ms"
                )
            found.append(
                Target(
                    f"loop stall, {phase.phase}, {run.features:,} features",
                    f"max ≤ {TARGET_MS:g} ms",
                    f"max {phase.max_ms:,.2f} ms (p99 {phase.p99_ms:,.2f} ms)",
                    phase.max_ms <= TARGET_MS,
                    detail,
                    "issue 8",
                )
            )
    return found


def markdown(results: Results) -> list[str]:
    if not results.stalls:
        return []
    lines = ["## Event-loop stalls", ""]
    for run in results.stalls:
        lines.append(
            f"One asyncio App with {run.features:,} configured features in a process of its "
            "own, and a probe task that sleeps 1 ms in a loop: each row is a phase of the "
            "App's life, the figures the probe's overshoot (how long something else held the "
            f"loop). Target: at most {TARGET_MS:g} ms in every bounded phase. The App's "
            f"block_ms is {run.block_ms} ms so idle reads notice a replaced or empty store "
            f"quickly. {run.note}."
        )
        lines.append("")
        rows = [
            [
                phase.phase,
                f"{phase.seconds:,.2f}",
                f"{phase.samples:,}",
                f"{phase.p50_ms:,.3f}",
                f"{phase.p99_ms:,.2f}",
                f"{phase.max_ms:,.2f}",
                f"{phase.full_collections} ({phase.full_collection_max_ms:,.1f} ms)",
                _phase_note(phase),
            ]
            for phase in run.phases
        ]
        lines += table(
            [
                "phase",
                "seconds",
                "wake-ups",
                "p50 ms",
                "p99 ms",
                "max ms",
                "full GCs (longest)",
                "what happened",
            ],
            rows,
            "lrrrrrrl",
        )
        lines += ["", "![Event-loop stalls per phase](stalls.png)", ""]
    return lines


def _phase_note(phase: StallPhase) -> str:
    extra = phase.extra
    parts = [phase.note] if phase.note else []
    if "start_ms" in extra:
        parts.append(
            f"start() {extra['start_ms']:,.0f} ms, first evaluation "
            f"{extra.get('first_evaluation_ms', 0.0):,.2f} ms"
        )
    if "longest_slice_ms" in extra:
        parts.append(
            f"longest slice of {SLICE} evaluations {extra['longest_slice_ms']:,.2f} ms, "
            f"{extra.get('total_ms', 0.0):,.0f} ms in all"
        )
    if "until_ms" in extra:
        parts.append(f"the App was there {extra['until_ms']:,.0f} ms after the phase began")
    if "records_back" in extra:
        parts.append(f"{int(extra['records_back']):,} records back in the store")
    return "; ".join(parts)


def chart(plt: Any, results: Results, out: Path) -> Path | None:
    if not results.stalls or not results.stalls[-1].phases:
        return None
    run = results.stalls[-1]
    names = [phase.phase for phase in run.phases]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    positions = list(range(len(names)))
    axes.barh(
        [p + 0.2 for p in positions],
        [max(phase.max_ms, 0.01) for phase in run.phases],
        0.4,
        label="max",
        color="tab:red",
    )
    axes.barh(
        [p - 0.2 for p in positions],
        [max(phase.p99_ms, 0.01) for phase in run.phases],
        0.4,
        label="p99",
        color="tab:blue",
    )
    axes.axvline(TARGET_MS, color="grey", linestyle=":", label=f"target: {TARGET_MS:g} ms")
    axes.set_yticks(positions)
    axes.set_yticklabels(names)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlabel("overshoot of a 1 ms sleep, ms (log scale)")
    axes.set_title(f"Event-loop stalls per phase, {run.features:,} features (lower is better)")
    axes.grid(axis="x", alpha=0.3, which="both")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = out / "stalls.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
