"""Exposures: sustained experiment evaluations with their exposures written to Redis.

One App declares scenario (d) twice: as an Experiment (every create() records an exposure)
and as the same split configured as a Rollout (no exposures). A loop evaluates one of them
flat out for a short phase, yielding to the event loop every 1,000 calls the way a server
yields between requests, so the App's exposure writer runs meanwhile (the sync App's writer
is a thread and runs whenever it gets the GIL). After an exposures-on phase the loop waits
until the writer has drained the buffer, and that wait counts as the phase's cost. Phases
alternate, on and off, so the machine's noise lands on both. Written exposures are counted
back from the store through the admin (``admin.exposures``, which reads whatever format the
store holds), not taken on the App's word.

Then the sync App evaluates the experiment flat out on one thread for the run's seconds,
without a pause: recorded, written, in the store and dropped say whether its writer thread
kept up (issue 13: none dropped).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

import feats
import feats.aio
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import ExposureRun, Failure, Results
from benchmarks._scenarios import AnyApp, declare, scenario_states
from benchmarks._settings import Settings
from benchmarks._users import User, make_users

__all__ = ["exposure_steps", "run_exposures"]

CHUNK = 1_000
PHASES = 6
"""Phases per mode: the run's seconds are split into this many on/off pairs."""


def exposure_steps(settings: Settings) -> int:
    return 2 * PHASES


@dataclass
class _Tally:
    seconds: float = 0.0
    drain: float = 0.0
    evaluations: int = 0


def _pending(app: AnyApp) -> int:
    return app.status.exposures_buffered


def _accounted(app: AnyApp, before: feats.Status) -> int:
    """Exposures written or dropped since ``before``: a batch the writer has taken from the
    buffer counts only once its write returned, so an empty buffer alone is not enough."""
    now = app.status
    written = now.exposures_written - before.exposures_written
    return written + now.exposures_dropped - before.exposures_dropped


def _run(
    kind: str, on: bool, tally: _Tally, before: feats.Status, after: feats.Status, in_redis: int
) -> ExposureRun:
    spent = tally.seconds + tally.drain
    return ExposureRun(
        app=kind,
        exposures=on,
        seconds=round(tally.seconds, 3),
        evaluations=tally.evaluations,
        ns_per_evaluation=round(spent / max(tally.evaluations, 1) * 1e9, 1),
        recorded=tally.evaluations if on else 0,
        written=after.exposures_written - before.exposures_written if on else 0,
        in_redis=in_redis if on else 0,
        dropped=after.exposures_dropped - before.exposures_dropped if on else 0,
        drain_seconds=round(tally.drain, 3),
        exposures_per_second=round(in_redis / spent) if on and spent > 0 else 0,
    )


async def _aio(
    settings: Settings, url: str, users: Sequence[User], section: Section
) -> list[ExposureRun]:
    namespace = fresh_namespace("exposures-aio")
    client = redis.asyncio.Redis.from_url(url)
    app = feats.aio.App(storage=feats.aio.RedisStorage(redis=client, namespace=namespace))
    handles = declare(app)
    await app.start()
    chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
    phase = settings.exposure_seconds / PHASES
    tallies = {True: _Tally(), False: _Tally()}
    try:
        states = scenario_states(handles)
        for key in ("d", "d-off"):
            await app.admin.set_state(handles.features[key], states[key], author="b", reason="x")
        creates: dict[bool, Callable[[User], Any]] = {
            True: handles.features["d"].create,
            False: handles.features["d-off"].create,
        }
        before = app.status
        for number in range(PHASES):
            for on in (True, False):
                create, tally = creates[on], tallies[on]
                started = time.perf_counter()
                deadline = started + phase
                while time.perf_counter() < deadline:
                    for chunk in chunks:
                        for user in chunk:
                            await create(user)
                        tally.evaluations += len(chunk)
                        await asyncio.sleep(0)
                ended = time.perf_counter()
                while _pending(app) and time.perf_counter() < ended + 30:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                tally.seconds += ended - started
                tally.drain += time.perf_counter() - ended
                section.advance(f"asyncio App, phase {number + 1}, exposures {on}")
        recorded = tallies[True].evaluations
        deadline = time.perf_counter() + 30
        while _accounted(app, before) < recorded and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        after = app.status
        in_redis = (await app.admin.exposures(handles.features["d"])).total
    finally:
        await app.aclose()
        await client.aclose()
        await asyncio.to_thread(delete_namespace, url, namespace)
    return [
        _run("asyncio", True, tallies[True], before, after, in_redis),
        _run("asyncio", False, tallies[False], before, after, in_redis),
    ]


def _sync(settings: Settings, url: str, users: Sequence[User]) -> list[ExposureRun]:
    namespace = fresh_namespace("exposures-sync")
    client = redis.Redis.from_url(url)
    storage = feats.RedisStorage(redis=client, namespace=namespace)
    app = feats.App(storage=storage)
    handles = declare(app)
    app.start()
    chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
    phase = settings.exposure_seconds / PHASES
    tallies = {True: _Tally(), False: _Tally()}
    try:
        states = scenario_states(handles)
        for key in ("d", "d-off"):
            app.admin.set_state(handles.features[key], states[key], author="b", reason="x")
        creates: dict[bool, Callable[[User], Any]] = {
            True: handles.features["d"].create,
            False: handles.features["d-off"].create,
        }
        before = app.status
        for _ in range(PHASES):
            for on in (True, False):
                create, tally = creates[on], tallies[on]
                started = time.perf_counter()
                deadline = started + phase
                while time.perf_counter() < deadline:
                    for chunk in chunks:
                        for user in chunk:
                            create(user)
                        tally.evaluations += len(chunk)
                ended = time.perf_counter()
                while _pending(app) and time.perf_counter() < ended + 30:
                    time.sleep(0.001)
                tally.seconds += ended - started
                tally.drain += time.perf_counter() - ended
        recorded = tallies[True].evaluations
        deadline = time.perf_counter() + 30
        while _accounted(app, before) < recorded and time.perf_counter() < deadline:
            time.sleep(0.001)
        after = app.status
        in_redis = app.admin.exposures(handles.features["d"]).total
    finally:
        app.close()
        client.close()
        delete_namespace(url, namespace)
    return [
        _run("sync", True, tallies[True], before, after, in_redis),
        _run("sync", False, tallies[False], before, after, in_redis),
    ]


def _sync_flat_out(settings: Settings, url: str, users: Sequence[User]) -> ExposureRun:
    """The sync App's experiment evaluated flat out on this thread, no pause, no yield."""
    namespace = fresh_namespace("exposures-flat")
    storage = feats.RedisStorage(redis=redis.Redis.from_url(url), namespace=namespace)
    app = feats.App(storage=storage)
    handles = declare(app)
    app.start()
    try:
        feature = handles.features["d"]
        app.admin.set_state(feature, scenario_states(handles)["d"], author="b", reason="x")
        create = feature.create
        before = app.status
        evaluations = 0
        started = time.perf_counter()
        deadline = started + settings.exposure_seconds
        while time.perf_counter() < deadline:
            for user in users:
                create(user)
            evaluations += len(users)
        ended = time.perf_counter()
        app.flush()
        while _accounted(app, before) < evaluations and time.perf_counter() < ended + 30:
            time.sleep(0.001)
        drained = time.perf_counter()
        after = app.status
        in_store = app.admin.exposures(feature).total
    finally:
        app.close()
        delete_namespace(url, namespace)
    return ExposureRun(
        app="sync, flat out",
        exposures=True,
        seconds=round(ended - started, 3),
        evaluations=evaluations,
        ns_per_evaluation=round((ended - started) / max(evaluations, 1) * 1e9, 1),
        recorded=evaluations,
        written=after.exposures_written - before.exposures_written,
        in_redis=in_store,
        dropped=after.exposures_dropped - before.exposures_dropped,
        drain_seconds=round(drained - ended, 3),
        exposures_per_second=round(in_store / max(drained - started, 1e-9)),
    )


def run_exposures(settings: Settings, url: str | None, section: Section, results: Results) -> None:
    if url is None:
        results.failures.append(Failure("exposures", "feats", "no Redis: section skipped"))
        section.done()
        return
    users = make_users(settings.users)
    results.exposures.extend(asyncio.run(_aio(settings, url, users, section)))
    section.note("sync App")
    results.exposures.extend(_sync(settings, url, users))
    section.note("sync App, flat out")
    results.exposures.append(_sync_flat_out(settings, url, users))
    section.done()
