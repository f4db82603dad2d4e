"""Write to visible, idle (issue 13 target 4): one writer, one App in another process.

First the floors, measured from this (the writer's) process on the same kind of client, in
interleaved rounds so the machine's noise lands on each alike: a loopback round trip
(PING), a bare Lua compare-and-set, feats' read and write scripts called through the
storage directly, ``admin.preview`` (read, plan and validation without the write) and
``admin.set_state`` with nobody following. Then the run: ``write_changes`` changes, one every
20 ms, to one App in another process: the writer's ``set_state`` time, and the time from its
call to the App's change listener (the propagation section's single-App path).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import redis.asyncio

import feats.aio
from benchmarks._markdown import fmt, table
from benchmarks._measure import percentile
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import LatencyFloor, Results, Target, WriteRun
from benchmarks._scenarios import declare
from benchmarks._settings import Settings
from benchmarks.propagation import measure_fan_out
from feats import FeatureState, Replace, Rollout

__all__ = ["chart", "markdown", "run_write", "targets", "write_steps"]

INTERVAL_MS: Final = 20.0
SET_STATE_TARGET_MS: Final = 0.3
VISIBLE_TARGET_MS: Final = 0.5
PING: Final = "loopback round trip (PING)"
CAS: Final = "bare Lua compare-and-set (EVAL: HGET, compare, HSET)"
# What a compare-and-set needs at least: one read, one comparison, one write, in one script.
_CAS_SCRIPT: Final = """
local current = redis.call('HGET', KEYS[1], 'version') or ''
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2])
return 1
"""


def write_steps(settings: Settings) -> int:
    return 1 + settings.write_changes + 2


def _state(index: int) -> FeatureState:
    share = 1 + index % 98
    split = {"acme": 100 - share - 1, "premium": share, "aperture": 1}
    return FeatureState(rules={None: Rollout("UserId", split)})


async def _floors(url: str, rounds: int) -> list[LatencyFloor]:
    namespace = fresh_namespace("write-floors")
    client = redis.asyncio.Redis.from_url(url)
    storage = feats.aio.RedisStorage(redis=client, namespace=namespace)
    app = feats.aio.App(storage=storage)
    feature = declare(app).features["b"]
    cas_key = f"feats:{{{namespace}}}:bench-cas"
    counter = [0]
    try:
        await app.admin.set_state(feature, _state(0), author="bench", reason="floor")
        await client.hset(cas_key, "version", "0")

        async def ping() -> None:
            await client.ping()

        async def cas() -> None:
            value = counter[0]
            done = await client.eval(_CAS_SCRIPT, 1, cas_key, str(value), str(value + 1))
            if done != 1:
                raise RuntimeError("the compare-and-set floor lost its own race")
            counter[0] = value + 1

        async def current() -> None:
            await storage.current(feature.name)

        async def write() -> None:
            held = await storage.current(feature.name)
            if held is None:
                raise RuntimeError("the floor feature has no record")
            version, record = held
            text = record.decode() if isinstance(record, bytes) else record
            started = time.perf_counter()
            written, _ = await storage.write(feature.name, text, version)
            timed[-1] = time.perf_counter() - started
            if not written:
                raise RuntimeError("the write-script floor lost its own race")

        async def preview() -> None:
            await app.admin.preview(feature, Replace(_state(counter[0])))

        async def set_state() -> None:
            await app.admin.set_state(feature, _state(counter[0]), author="b", reason="floor")

        subjects: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
            (PING, "the asyncio client's own overhead included", ping),
            (CAS, "the least a conditional write costs", cas),
            ("feats' read script (storage.current)", "what a write reads first", current),
            (
                "feats' write script (storage.write)",
                "the stored record written back as it is: log, history, versions",
                write,
            ),
            ("admin.preview", "read + plan + validation, nothing written", preview),
            ("admin.set_state, nobody following", "read, plan, validate, write", set_state),
        ]
        samples: dict[str, list[float]] = {name: [] for name, _, _ in subjects}
        timed: list[float] = [0.0]
        for number in range(rounds + 5):
            for offset in range(len(subjects)):
                name, _, call = subjects[(number + offset) % len(subjects)]
                timed[-1] = -1.0
                started = time.perf_counter()
                await call()
                elapsed = time.perf_counter() - started if timed[-1] < 0 else timed[-1]
                if number >= 5:  # the first rounds warm connections and caches
                    samples[name].append(elapsed * 1000)
        return [
            LatencyFloor(
                what=name,
                p50_ms=round(percentile(samples[name], 0.50), 4),
                p99_ms=round(percentile(samples[name], 0.99), 4),
                samples=len(samples[name]),
                note=note,
            )
            for name, note, _ in subjects
        ]
    finally:
        await client.aclose()
        await asyncio.to_thread(delete_namespace, url, namespace)


def run_write(settings: Settings, url: str, section: Section, results: Results) -> None:
    rounds = 200 if settings.quick else 1_000
    section.note(f"floors, {rounds} rounds")
    floors = asyncio.run(_floors(url, rounds))
    section.advance("floors")
    single = settings.with_(
        apps=1, processes=1, changes=settings.write_changes, interval_ms=INTERVAL_MS
    )
    run = asyncio.run(measure_fan_out(url, single, 0, section, label="write"))
    results.write.append(
        WriteRun(
            changes=run.changes,
            interval_ms=run.interval_ms,
            set_state_p50_ms=run.write_ms_p50,
            set_state_p99_ms=run.write_ms_p99,
            visible_p50_ms=run.p50_ms,
            visible_p99_ms=run.p99_ms,
            visible_max_ms=run.max_ms,
            missing=run.missing,
            floors=floors,
        )
    )
    section.done()


# --------------------------------------------------------------------------- the report


def _floor(run: WriteRun, what: str) -> LatencyFloor | None:
    return next((floor for floor in run.floors if floor.what == what), None)


def targets(results: Results) -> list[Target]:
    found = []
    for run in results.write:
        ping, cas = _floor(run, PING), _floor(run, CAS)
        floors = ", ".join(
            f"{label} p50 {fmt(floor.p50_ms, 3)} ms"
            for label, floor in (("PING", ping), ("bare CAS", cas))
            if floor is not None
        )
        for name, p50, goal, missing in (
            ("writer's set_state p50, idle", run.set_state_p50_ms, SET_STATE_TARGET_MS, 0),
            ("write to visible p50, idle", run.visible_p50_ms, VISIBLE_TARGET_MS, run.missing),
        ):
            detail = floors
            if ping is not None and ping.p50_ms > 0:
                detail += f"; {p50 / ping.p50_ms:.1f}x the round trip"
            if missing:
                detail += f"; {missing} changes never seen"
            found.append(
                Target(
                    f"{name}, {run.changes} changes",
                    f"≤ {goal:g} ms",
                    f"{fmt(p50, 3)} ms",
                    p50 <= goal and not missing,
                    detail,
                    "issue 13",
                )
            )
    return found


def markdown(results: Results) -> list[str]:
    if not results.write:
        return []
    lines = ["## Write to visible, idle", ""]
    for run in results.write:
        lines.append(
            f"One writer (an asyncio App's `admin.set_state`) and one asyncio App in another "
            f"process; {run.changes} changes, one every {run.interval_ms:g} ms, the machine "
            "otherwise idle. Visible: from the writer's call to the App's change listener. "
            "The floors were measured from the writer's process just before, in interleaved "
            "rounds."
        )
        lines.append("")
        rows = [
            [
                floor.what,
                fmt(floor.p50_ms, 3),
                fmt(floor.p99_ms, 3),
                f"{floor.samples:,}",
                floor.note,
            ]
            for floor in run.floors
        ]
        rows.append(
            [
                "**admin.set_state, one App following**",
                fmt(run.set_state_p50_ms, 3),
                fmt(run.set_state_p99_ms, 3),
                f"{run.changes:,}",
                f"target p50 ≤ {SET_STATE_TARGET_MS:g} ms",
            ]
        )
        rows.append(
            [
                "**write to visible (the App's listener)**",
                fmt(run.visible_p50_ms, 3),
                fmt(run.visible_p99_ms, 3),
                f"{run.changes - run.missing:,}",
                f"target p50 ≤ {VISIBLE_TARGET_MS:g} ms; max {fmt(run.visible_max_ms, 2)} ms",
            ]
        )
        lines += table(["what", "p50 ms", "p99 ms", "samples", "note"], rows, "lrrrl")
        lines += ["", "![Write path: floors, set_state and write to visible](write.png)", ""]
    return lines


def chart(plt: Any, results: Results, out: Path) -> Path | None:
    if not results.write:
        return None
    run = results.write[-1]
    labels = [floor.what for floor in run.floors]
    values = [floor.p50_ms for floor in run.floors]
    labels += ["admin.set_state, one App following", "write to visible"]
    values += [run.set_state_p50_ms, run.visible_p50_ms]
    figure, axes = plt.subplots(figsize=(10, 4.5))
    colors = ["tab:grey"] * len(run.floors) + ["tab:blue", "tab:green"]
    axes.barh(labels, values, color=colors)
    axes.axvline(SET_STATE_TARGET_MS, color="tab:blue", linestyle=":", label="set_state target")
    axes.axvline(VISIBLE_TARGET_MS, color="tab:green", linestyle=":", label="visible target")
    axes.invert_yaxis()
    axes.set_xlabel("p50, ms")
    axes.set_title("Write path, idle: floors, set_state, write to visible (lower is better)")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = out / "write.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
