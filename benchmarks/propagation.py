"""Propagation: one writer, many asyncio Apps in several processes, a real Redis in between.

For every change the writer stamps the wall clock just before ``admin.set_state``; every App
stamps it in its change listener, which runs right after its snapshot was swapped. Both run
on this machine, so one clock serves both. ``python -m benchmarks.propagation --worker ...``
is the worker process; the suite starts those itself.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis.asyncio

import feats.aio
from benchmarks._measure import percentile, quantiles
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import PollRow, PropagationRun, Results
from benchmarks._scenarios import declare, declare_flags
from benchmarks._settings import Settings
from benchmarks.peers import DOCUMENTED_POLL_INTERVALS
from feats import FeatureState, Rollout, Static
from feats._stored import parse_version

__all__ = ["main", "propagation_steps", "run_propagation"]

_READY_TIMEOUT = 300.0
_REPO = Path(__file__).resolve().parent.parent


def propagation_steps(settings: Settings) -> int:
    return 3 * (settings.changes + 2)


# --------------------------------------------------------------------------- the worker


def _app(url: str, namespace: str, flags: int) -> feats.aio.App:
    storage = feats.aio.RedisStorage(redis=redis.asyncio.Redis.from_url(url), namespace=namespace)
    app = feats.aio.App(storage=storage, start_timeout=60.0)
    declare(app)
    declare_flags(app, flags)
    return app


async def _close(app: feats.aio.App) -> None:
    """Close the App, then the client it was given (an App leaves that to its owner)."""
    await app.aclose()
    client = getattr(app.storage, "redis", None)
    if isinstance(client, redis.asyncio.Redis):
        await client.aclose()


def _watch_full_collections() -> list[float]:
    """Durations (ms) of this process's full garbage collections from now on.

    25 Apps in one process hold 25 heaps' worth of objects, and a full collection walks
    them all: the report shows these pauses beside the latency tail they cause.
    """
    pauses: list[float] = []
    started: list[float] = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(round((time.perf_counter() - started[0]) * 1000, 2))

    gc.callbacks.append(callback)
    return pauses


async def _worker(url: str, namespace: str, apps_count: int, flags: int) -> None:
    apps = [_app(url, namespace, flags) for _ in range(apps_count)]
    logs: list[list[tuple[str, float]]] = []
    for app in apps:
        log: list[tuple[str, float]] = []
        logs.append(log)

        def stamp(
            version: str, features: tuple[str, ...], log: list[tuple[str, float]] = log
        ) -> None:
            log.append((version, time.time()))

        app.add_listener(stamp)
    await asyncio.gather(*(app.start() for app in apps))
    pauses = _watch_full_collections()
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    last = line.split()[1] if line.startswith("done ") else None
    if last is not None:
        await asyncio.gather(
            *(app.wait_for_version(last, timeout=30) for app in apps), return_exceptions=True
        )
    print(json.dumps({"logs": logs, "gc_ms": pauses}), flush=True)
    await asyncio.gather(*(_close(app) for app in apps), return_exceptions=True)


# --------------------------------------------------------------------------- the parent


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    apps: int

    @property
    def stdin(self) -> IO[str]:
        assert self.process.stdin is not None
        return self.process.stdin

    @property
    def stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout


def _spawn(url: str, namespace: str, apps: int, flags: int) -> _Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "benchmarks.propagation",
        "--worker",
        "--url",
        url,
        "--namespace",
        namespace,
        "--apps",
        str(apps),
        "--flags",
        str(flags),
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(_REPO),
    )
    return _Worker(process, apps)


def _state(index: int, boolean: bool) -> FeatureState:
    """A different state for every change, so every one really changes the snapshot."""
    share = 1 + index % 98
    if boolean:
        return FeatureState(
            rules={None: Rollout("UserId", {"enabled": share, "disabled": 100 - share})}
        )
    return FeatureState(
        rules={None: Rollout("UserId", {"acme": 100 - share, "premium": share, "aperture": 1})}
    )


async def _one_run(url: str, settings: Settings, flags: int, section: Section) -> PropagationRun:
    namespace = fresh_namespace(f"propagation-{flags}")
    writer = _app(url, namespace, flags)
    await writer.start()
    flag_names = [f"flag_{index}" for index in range(flags)]
    workers: list[_Worker] = []
    try:
        for name in flag_names:
            await writer.admin.set_state(
                name, FeatureState(rules={None: Static("enabled")}), author="bench", reason="seed"
            )
        section.advance(f"{flags} features configured")
        started = time.perf_counter()
        per = [settings.apps // settings.processes] * settings.processes
        for index in range(settings.apps % settings.processes):
            per[index] += 1
        workers = [_spawn(url, namespace, count, flags) for count in per if count]
        for worker in workers:
            line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), _READY_TIMEOUT)
            if line.strip() != "ready":
                raise RuntimeError(f"a propagation worker failed to start (said {line!r})")
        startup = time.perf_counter() - started
        section.advance(f"{settings.apps} Apps started in {len(workers)} processes")
        writes: list[tuple[str, float, float]] = []
        interval = settings.interval_ms / 1000
        origin = time.perf_counter()
        for index in range(settings.changes):
            delay = origin + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = flag_names[index % flags] if flags else "PaymentProcessor"
            state = _state(index, bool(flags))
            called = time.time()
            version = await writer.admin.set_state(target, state, author="bench", reason="change")
            writes.append((version, called, time.time() - called))
            section.advance(f"{flags} features: change {index + 1} of {settings.changes}")
        last = writes[-1][0]
        logs: list[list[tuple[str, float]]] = []
        gc_ms: list[float] = []
        for worker in workers:
            worker.stdin.write(f"done {last}\n")
            worker.stdin.flush()
        for worker in workers:
            line = await asyncio.wait_for(asyncio.to_thread(worker.stdout.readline), 120)
            report = json.loads(line)
            logs.extend([(str(v), float(t)) for v, t in app_log] for app_log in report["logs"])
            gc_ms.extend(float(pause) for pause in report["gc_ms"])
    finally:
        for worker in workers:
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=10)
            worker.stdin.close()
            worker.stdout.close()
        await _close(writer)
        await asyncio.to_thread(delete_namespace, url, namespace)
    run = _summarise(settings, flags, writes, logs, startup)
    run.full_collections = len(gc_ms)
    run.full_collection_max_ms = max(gc_ms, default=0.0)
    return run


def _summarise(
    settings: Settings,
    flags: int,
    writes: Sequence[tuple[str, float, float]],
    logs: Sequence[Sequence[tuple[str, float]]],
    startup: float,
) -> PropagationRun:
    latencies: list[float] = []
    missing = 0
    for log in logs:
        events = sorted((parse_version(version), stamp) for version, stamp in log)
        cursor = 0
        for version, called, _ in writes:
            wanted = parse_version(version)
            while cursor < len(events) and events[cursor][0] < wanted:
                cursor += 1
            if cursor == len(events):
                missing += 1
                continue
            latencies.append((events[cursor][1] - called) * 1000)
    write_ms = sorted(duration * 1000 for _, _, duration in writes)
    return PropagationRun(
        features=max(flags, 1),
        apps=settings.apps,
        processes=min(settings.processes, settings.apps),
        changes=len(writes),
        interval_ms=settings.interval_ms,
        p50_ms=round(percentile(latencies, 0.50), 3),
        p99_ms=round(percentile(latencies, 0.99), 3),
        max_ms=round(max(latencies, default=float("nan")), 3),
        samples=len(latencies),
        missing=missing,
        quantiles_ms=[round(value, 3) for value in quantiles(latencies)],
        write_ms_p50=round(percentile(write_ms, 0.5), 3),
        startup_seconds=round(startup, 2),
    )


def run_propagation(settings: Settings, url: str, section: Section, results: Results) -> None:
    """A single App (the baseline: no fan-out), then all Apps with the scenario features
    only, then all Apps with ``fanout_features`` configured."""
    single = settings.with_(apps=1, processes=1)
    for run_settings, flags in ((single, 0), (settings, 0), (settings, settings.fanout_features)):
        results.propagation.append(asyncio.run(_one_run(url, run_settings, flags, section)))
    for poll in DOCUMENTED_POLL_INTERVALS.values():
        results.poll_intervals.append(
            PollRow(poll.library, poll.mechanism, poll.default_seconds, poll.source)
        )
    section.done()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.propagation")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--apps", type=int, required=True)
    parser.add_argument("--flags", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(_worker(args.url, args.namespace, args.apps, args.flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
