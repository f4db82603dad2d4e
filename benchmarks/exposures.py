"""Exposures: sustained experiment evaluations with their exposures written to Redis.

A loop evaluates scenario (d) flat out for a few seconds, yielding to the event loop every
1,000 calls the way a server yields between requests, so the App's exposure writer runs
meanwhile (the sync App's writer is a thread and runs whenever it gets the GIL). The same
loop over the same split configured as a Rollout (no exposures) is the "off" run. Written
exposures are counted back from the Redis stream, not taken on the App's word.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

import feats
import feats.aio
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import ExposureRun, Failure, Results
from benchmarks._scenarios import declare, scenario_states
from benchmarks._settings import Settings
from benchmarks._users import User, make_users

__all__ = ["exposure_steps", "run_exposures"]

CHUNK = 1_000


def exposure_steps(settings: Settings) -> int:
    return 4


def _stream_total(url: str, namespace: str) -> int:
    """Exposures in the namespace's stream: the sum of every batch entry's count."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        key = f"feats:{{{namespace}}}:exposures"
        total, after = 0, "-"
        while True:
            entries: Any = client.xrange(key, after, "+", count=1_000)
            if not entries:
                return total
            for entry_id, fields in entries:
                total += int(fields.get("n") or len(json.loads(fields.get("batch", "[]"))))
                after = f"({entry_id}"
    finally:
        client.close()


def _run(
    app_kind: str,
    exposures: bool,
    started: float,
    ended: float,
    drained: float,
    evaluations: int,
    before: feats.Status,
    after: feats.Status,
    in_redis: int,
) -> ExposureRun:
    seconds = ended - started
    written = after.exposures_written - before.exposures_written
    return ExposureRun(
        app=app_kind,
        exposures=exposures,
        seconds=round(seconds, 3),
        evaluations=evaluations,
        ns_per_evaluation=round(seconds / max(evaluations, 1) * 1e9, 1),
        recorded=evaluations if exposures else 0,
        written=written,
        in_redis=in_redis,
        dropped=after.exposures_dropped - before.exposures_dropped,
        drain_seconds=round(drained - ended, 3),
        exposures_per_second=round(written / (drained - started)) if exposures else 0,
    )


async def _aio(
    settings: Settings, url: str, users: Sequence[User], section: Section
) -> list[ExposureRun]:
    runs = []
    for key, on in (("d", True), ("d-off", False)):
        namespace = fresh_namespace("exposures-aio")
        client = redis.asyncio.Redis.from_url(url)
        app = feats.aio.App(storage=feats.aio.RedisStorage(redis=client, namespace=namespace))
        handles = declare(app)
        await app.start()
        try:
            await app.admin.set_state(
                handles.features[key], scenario_states(handles)[key], author="bench", reason="x"
            )
            create = handles.features[key].create
            chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
            before = app.status
            evaluations = 0
            started = time.perf_counter()
            deadline = started + settings.exposure_seconds
            while time.perf_counter() < deadline:
                for chunk in chunks:
                    for user in chunk:
                        await create(user)
                    evaluations += len(chunk)
                    await asyncio.sleep(0)
            ended = time.perf_counter()
            while len(app._core.exposures) and time.perf_counter() < ended + 30:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            drained = time.perf_counter()
            after = app.status
            in_redis = await asyncio.to_thread(_stream_total, url, namespace)
        finally:
            await app.aclose()
            await client.aclose()
            await asyncio.to_thread(delete_namespace, url, namespace)
        runs.append(
            _run("asyncio", on, started, ended, drained, evaluations, before, after, in_redis)
        )
        section.advance(f"asyncio App, exposures {'on' if on else 'off'}")
    return runs


def _sync(
    settings: Settings, url: str, users: Sequence[User], section: Section
) -> list[ExposureRun]:
    runs = []
    for key, on in (("d", True), ("d-off", False)):
        namespace = fresh_namespace("exposures-sync")
        app = feats.App(
            storage=feats.RedisStorage(redis=redis.Redis.from_url(url), namespace=namespace)
        )
        handles = declare(app)
        app.start()
        try:
            app.admin.set_state(
                handles.features[key], scenario_states(handles)[key], author="bench", reason="x"
            )
            create = handles.features[key].create
            chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
            before = app.status
            evaluations = 0
            started = time.perf_counter()
            deadline = started + settings.exposure_seconds
            while time.perf_counter() < deadline:
                for chunk in chunks:
                    for user in chunk:
                        create(user)
                    evaluations += len(chunk)
            ended = time.perf_counter()
            while len(app._core.exposures) and time.perf_counter() < ended + 30:
                time.sleep(0.001)
            drained = time.perf_counter()
            after = app.status
            in_redis = _stream_total(url, namespace)
        finally:
            app.close()
            delete_namespace(url, namespace)
        runs.append(_run("sync", on, started, ended, drained, evaluations, before, after, in_redis))
        section.advance(f"sync App, exposures {'on' if on else 'off'}")
    return runs


def run_exposures(settings: Settings, url: str | None, section: Section, results: Results) -> None:
    if url is None:
        results.failures.append(Failure("exposures", "feats", "no Redis: section skipped"))
        section.done()
        return
    users = make_users(settings.users)
    results.exposures.extend(asyncio.run(_aio(settings, url, users, section)))
    results.exposures.extend(_sync(settings, url, users, section))
    section.done()
