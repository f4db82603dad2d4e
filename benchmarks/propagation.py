"""Propagation: one writer, many asyncio Apps in several processes, a real Redis in between.

For every change the writer stamps the wall clock just before ``admin.set_state``; every App
stamps it in its change listener, which runs right after its snapshot was swapped. Both run
on this machine, so one clock serves both. ``python -m benchmarks.propagation --worker ...``
is the worker process; the suite starts those itself.

Each worker also measures its CPU time (every thread, ``time.process_time()``) from the
moment its Apps are live to the moment they applied the last change, and, just before, the
rate it spends idle, so the report gives the CPU an App spends per applied change (issue 13
target 3) with and without that idle rate; its full collections are counted with
``gc.callbacks``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

import redis.asyncio

import feats.aio
from benchmarks._child import child_env, command, repo_root
from benchmarks._many import version_key
from benchmarks._measure import percentile, quantiles
from benchmarks._profile import profiled
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import PollRow, PropagationRun, Results
from benchmarks._scenarios import declare, declare_flags
from benchmarks._settings import Settings
from benchmarks.peers import DOCUMENTED_POLL_INTERVALS
from feats import FeatureState, Rollout, Static

__all__ = ["main", "measure_fan_out", "propagation_steps", "run_propagation"]

_READY_TIMEOUT = 300.0


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


async def _worker(
    url: str, namespace: str, apps_count: int, flags: int, idle_seconds: float
) -> None:
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
    # What the live Apps cost with nothing to apply (their writer threads wake every
    # flush_interval, their reads time out and check the epoch): the idle rate the CPU per
    # change is also given without.
    idle_cpu, idle_began = time.process_time(), time.perf_counter()
    await asyncio.sleep(idle_seconds)
    cpu_began, began = time.process_time(), time.perf_counter()
    idle_rate = (cpu_began - idle_cpu) / max(began - idle_began, 1e-9)
    del pauses[:]
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    last = line.split()[1] if line.startswith("done ") else None
    if last is not None:
        await asyncio.gather(
            *(app.wait_for_version(last, timeout=30) for app in apps), return_exceptions=True
        )
    cpu = time.process_time() - cpu_began
    elapsed = time.perf_counter() - began
    report = {
        "logs": logs,
        "gc_ms": pauses,
        "cpu_seconds": cpu,
        "run_seconds": elapsed,
        "idle_cpu_per_second": idle_rate,
        "apps": apps_count,
    }
    print(json.dumps(report), flush=True)
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

    def said(self) -> str:
        """The worker's next line, past what a profiler wrapping it prints ("" at its end)."""
        while True:
            line = self.stdout.readline()
            if not line or (line.strip() and not line.startswith("py-spy>")):
                return line


def _spawn(
    url: str, namespace: str, apps: int, flags: int, idle_seconds: float, name: str
) -> _Worker:
    arguments = ["--worker", "--url", url, "--namespace", namespace, "--apps", str(apps)]
    arguments += ["--flags", str(flags), "--idle-seconds", str(idle_seconds)]
    process = subprocess.Popen(
        command("benchmarks.propagation", arguments, name),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(name),
        cwd=str(repo_root()),
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


async def measure_fan_out(
    url: str, settings: Settings, flags: int, section: Section, label: str = "propagation"
) -> PropagationRun:
    """One writer in this process, ``settings.apps`` Apps in ``settings.processes`` others,
    ``settings.changes`` changes one every ``settings.interval_ms``, ``flags`` features
    configured (0: only the scenario features, one of which changes)."""
    namespace = fresh_namespace(f"{label}-{flags}")
    idle_seconds = 0.5 if settings.quick else 2.0
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
        workers = [
            _spawn(
                url,
                namespace,
                count,
                flags,
                idle_seconds,
                f"{label}-{settings.apps}apps-{flags}features-worker{index}",
            )
            for index, count in enumerate(per)
            if count
        ]
        for worker in workers:
            line = await asyncio.wait_for(asyncio.to_thread(worker.said), _READY_TIMEOUT)
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
        cpu = {"cpu": 0.0, "idle": 0.0, "idle_rate": 0.0, "run": 0.0}
        for worker in workers:
            worker.stdin.write(f"done {last}\n")
            worker.stdin.flush()
        for worker in workers:
            line = await asyncio.wait_for(asyncio.to_thread(worker.said), 120)
            report = json.loads(line)
            logs.extend([(str(v), float(t)) for v, t in app_log] for app_log in report["logs"])
            gc_ms.extend(float(pause) for pause in report["gc_ms"])
            rate = float(report["idle_cpu_per_second"])
            cpu["cpu"] += float(report["cpu_seconds"])
            cpu["idle"] += rate * float(report["run_seconds"])
            cpu["idle_rate"] += rate
            cpu["run"] = max(cpu["run"], float(report["run_seconds"]))
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
    run.full_collection_total_ms = round(sum(gc_ms), 2)
    per_change = 1e6 / max(run.changes * settings.apps, 1)
    run.cpu_seconds = round(cpu["cpu"], 3)
    run.run_seconds = round(cpu["run"], 3)
    run.cpu_per_change_us = round(cpu["cpu"] * per_change, 1)
    run.cpu_per_change_idle_subtracted_us = round((cpu["cpu"] - cpu["idle"]) * per_change, 1)
    run.idle_cpu_per_app_us_per_second = round(cpu["idle_rate"] / settings.apps * 1e6, 1)
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
        events = sorted((version_key(version), stamp) for version, stamp in log)
        cursor = 0
        for version, called, _ in writes:
            wanted = version_key(version)
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
        write_ms_p99=round(percentile(write_ms, 0.99), 3),
        startup_seconds=round(startup, 2),
    )


def run_propagation(settings: Settings, url: str, section: Section, results: Results) -> None:
    """A single App (the baseline: no fan-out), then all Apps with the scenario features
    only, then all Apps with ``fanout_features`` configured."""
    single = settings.with_(apps=1, processes=1)
    for run_settings, flags in ((single, 0), (settings, 0), (settings, settings.fanout_features)):
        results.propagation.append(asyncio.run(measure_fan_out(url, run_settings, flags, section)))
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
    parser.add_argument("--idle-seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    with profiled():
        asyncio.run(_worker(args.url, args.namespace, args.apps, args.flags, args.idle_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
