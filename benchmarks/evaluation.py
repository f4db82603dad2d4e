"""Evaluation cost: ns per call for feats, the plain-function floor and the peers, per scenario."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

import feats
import feats.aio
from benchmarks._guard import loopback_only
from benchmarks._measure import (
    gc_paused,
    loop_overhead_ns,
    sanity,
    time_async_ns,
    time_sync_ns,
)
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import EvaluationRow, Failure, Results
from benchmarks._scenarios import (
    AnyApp,
    answer_of,
    build_floor,
    declare,
    scenario_states,
)
from benchmarks._settings import Settings
from benchmarks._users import User, make_users
from benchmarks.peers import SCENARIOS, PeerCase, build_peer_cases

__all__ = ["evaluation_steps", "run_evaluation"]

FEATS_VERSION = feats.__version__
CHUNK = 250
"""Users per timed slice: long enough for the clock, short next to the machine's noise."""


def evaluation_steps(settings: Settings) -> int:
    return 1 + len(SCENARIOS) * (settings.repeat + 1)


def _pending(app: AnyApp) -> int:
    """Exposures recorded and not yet written (the buffer between hot path and writer)."""
    return app.status.exposures_buffered


def _sync_storage(url: str | None, namespace: str) -> feats.Storage:
    if url is None:
        return feats.MemoryStorage()
    return feats.RedisStorage(redis=redis.Redis.from_url(url), namespace=namespace)


def _aio_storage(url: str | None, namespace: str) -> feats.aio.Storage:
    if url is None:
        return feats.aio.MemoryStorage()
    return feats.aio.RedisStorage(redis=redis.asyncio.Redis.from_url(url), namespace=namespace)


def _row(
    scenario: str,
    library: str,
    call: str,
    version: str,
    runs: list[float],
    overhead: float,
    users: Sequence[User],
    answers: Sequence[str],
    note: str = "",
    exposures: int | None = None,
) -> EvaluationRow:
    net = sorted(max(run - overhead, 0.0) for run in runs)
    shares, problems = sanity(scenario, users, answers)
    return EvaluationRow(
        scenario=scenario,
        library=library,
        call=call,
        version=version,
        ns=round(statistics.median(net), 1),
        runs=[round(run, 1) for run in net],
        shares={name: round(share, 2) for name, share in shares.items()},
        problems=problems,
        note=note,
        exposures=exposures,
    )


@dataclass
class _Subject:
    library: str
    call: str
    version: str
    note: str
    fn: Callable[[User], Any]
    is_async: bool = False
    exposures: Callable[[], int] | None = None
    runs: list[float] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


class _Apps:
    """A sync and an asyncio App, each with the scenarios declared and configured."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.storage = "Redis" if url is not None else "MemoryStorage"
        self.namespaces = (fresh_namespace("eval-sync"), fresh_namespace("eval-aio"))
        self.sync = feats.App(storage=_sync_storage(url, self.namespaces[0]))
        self.aio = feats.aio.App(storage=_aio_storage(url, self.namespaces[1]))
        self.sync_handles = declare(self.sync)
        self.aio_handles = declare(self.aio)
        self.stored: dict[str, feats.FeatureState | None] = {}
        # Apps on the same stores, held in app.snapshot() for the whole run: what the
        # per-request pin costs (held on Apps of their own, so the rows above stay unpinned).
        self.pinned_sync = feats.App(
            storage=_shared_sync(self.sync.storage, url, self.namespaces[0])
        )
        self.pinned_aio = feats.aio.App(
            storage=_shared_aio(self.aio.storage, url, self.namespaces[1])
        )
        self.pinned_sync_handles = declare(self.pinned_sync)
        self.pinned_aio_handles = declare(self.pinned_aio)

    async def start(self) -> None:
        self.sync.start()
        await self.aio.start()
        for scenario, state in scenario_states(self.sync_handles).items():
            feature = self.sync_handles.features[scenario]
            self.sync.admin.set_state(feature, state, author="bench", reason="scenario")
            self.stored[scenario] = self.sync.admin.get_state(feature)
        for scenario, state in scenario_states(self.aio_handles).items():
            feature = self.aio_handles.features[scenario]
            await self.aio.admin.set_state(feature, state, author="bench", reason="scenario")
        self.pinned_sync.start()
        await self.pinned_aio.start()
        if self.sync.version is not None:
            self.pinned_sync.wait_for_version(self.sync.version, timeout=30)
        if self.aio.version is not None:
            await self.pinned_aio.wait_for_version(self.aio.version, timeout=30)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (untimed) until both exposure writers caught up, so no pass drops any."""
        deadline = time.monotonic() + timeout
        # The buffer has no event to wait on: poll it.
        apps = (self.sync, self.aio, self.pinned_sync, self.pinned_aio)
        while any(_pending(app) for app in apps) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self.pinned_sync.close()
        await self.pinned_aio.aclose()
        self.sync.close()
        await self.aio.aclose()
        # The Apps leave their clients to their owner: close them, or their sockets wait for
        # the garbage collector (a ResourceWarning).
        for storage in (self.sync.storage, self.aio.storage):
            client = getattr(storage, "redis", None)
            if isinstance(client, redis.asyncio.Redis):
                await client.aclose()
            elif isinstance(client, redis.Redis):
                client.close()
        if self.url is not None:
            for namespace in self.namespaces:
                await asyncio.to_thread(delete_namespace, self.url, namespace)


def _shared_sync(storage: feats.Storage, url: str | None, namespace: str) -> feats.Storage:
    """Another storage on the same store: a second App that reads what the first wrote."""
    if isinstance(storage, feats.MemoryStorage):
        return feats.MemoryStorage(log=storage.log)
    return _sync_storage(url, namespace)


def _shared_aio(storage: feats.aio.Storage, url: str | None, namespace: str) -> feats.aio.Storage:
    if isinstance(storage, feats.aio.MemoryStorage):
        return feats.aio.MemoryStorage(log=storage.log)
    return _aio_storage(url, namespace)


def _feats_subjects(apps: _Apps, scenario: str, floor_log: deque[Any]) -> list[_Subject]:
    sync_feature = apps.sync_handles.features[scenario]
    aio_feature = apps.aio_handles.features[scenario]
    call = "is_enabled" if scenario == "a" else "create"
    sync_note = f"sync App on {apps.storage}"
    aio_note = f"asyncio App on {apps.storage}; awaited back to back in one coroutine"
    if scenario == "d":
        sync_note += "; its exposure writer thread runs during the passes"
        aio_note += "; its exposure writer task runs between passes"
    floor_note = "one dict lookup, the same xxh3 hash, the call"
    if scenario == "d":
        floor_note += ", an append of the exposure to a deque"
    subjects = [
        _Subject("feats", f"sync {call}", FEATS_VERSION, sync_note, getattr(sync_feature, call)),
        _Subject(
            "feats", f"await {call}", FEATS_VERSION, aio_note, getattr(aio_feature, call), True
        ),
        _Subject(
            "feats",
            "find_implementation",
            FEATS_VERSION,
            "records no exposure" if scenario == "d" else "",
            sync_feature.find_implementation,
        ),
        _Subject(
            "floor",
            "plain function",
            "",
            floor_note,
            build_floor(scenario, apps.stored.get(scenario), floor_log),
        ),
    ]
    pinned_note = "inside app.snapshot() (one configuration per request): what the pin costs"
    subjects += [
        _Subject(
            "feats",
            f"sync {call} in app.snapshot()",
            FEATS_VERSION,
            pinned_note,
            getattr(apps.pinned_sync_handles.features[scenario], call),
        ),
        _Subject(
            "feats",
            f"await {call} in app.snapshot()",
            FEATS_VERSION,
            pinned_note,
            getattr(apps.pinned_aio_handles.features[scenario], call),
            True,
        ),
    ]
    if scenario == "d":
        # The same split as a Rollout: what recording exposures costs on the hot path.
        off_note = "the same three-way split configured as a Rollout: no exposures"
        subjects += [
            _Subject(
                "feats",
                "sync create, exposures off",
                FEATS_VERSION,
                off_note,
                apps.sync_handles.features["d-off"].create,
            ),
            _Subject(
                "feats",
                "await create, exposures off",
                FEATS_VERSION,
                off_note,
                apps.aio_handles.features["d-off"].create,
                True,
            ),
        ]
    return subjects


def _peer_subjects(scenario: str, results: Results) -> tuple[list[_Subject], list[PeerCase]]:
    cases, failures = build_peer_cases(scenario)
    for failure in failures:
        results.failures.append(
            Failure(f"evaluation ({scenario})", failure.library, failure.reason)
        )
    subjects = [
        _Subject(
            case.library, "evaluate", case.version, case.note, case.evaluate, False, case.exposures
        )
        for case in cases
    ]
    return subjects, cases


async def _answers(subject: _Subject, users: Sequence[User]) -> list[str]:
    if subject.is_async:
        return [answer_of(await subject.fn(user)) for user in users]
    return [answer_of(subject.fn(user)) for user in users]


async def _round(subjects: Sequence[_Subject], users: Sequence[User]) -> None:
    """One timed pass of every subject over every user, finely interleaved.

    The users go in slices of CHUNK; each slice is timed for every subject in turn (the order
    rotating from slice to slice), so a burst of noise from the rest of the machine, which
    lasts far longer than a slice, lands on every subject alike instead of on whichever
    subject's whole pass it happened to overlap.
    """
    totals = [0] * len(subjects)
    chunks = [users[start : start + CHUNK] for start in range(0, len(users), CHUNK)]
    with gc_paused():
        for number, chunk in enumerate(chunks):
            for offset in range(len(subjects)):
                index = (number + offset) % len(subjects)
                subject = subjects[index]
                if subject.is_async:
                    totals[index] += await time_async_ns(subject.fn, chunk)
                else:
                    totals[index] += time_sync_ns(subject.fn, chunk)
    for subject, total in zip(subjects, totals, strict=True):
        subject.runs.append(total / len(users))


async def _scenario(
    scenario: str,
    apps: _Apps,
    settings: Settings,
    users: Sequence[User],
    overhead: float,
    section: Section,
    results: Results,
) -> None:
    subjects = _feats_subjects(apps, scenario, deque(maxlen=100_000))
    cases: list[PeerCase] = []
    if settings.peers:
        section.note(f"({scenario}) setting up the peers")
        peers, cases = _peer_subjects(scenario, results)
        subjects += peers
    try:
        for subject in list(subjects):
            section.note(f"({scenario}) {subject.library} {subject.call}: answers")
            try:
                subject.answers = await _answers(subject, users)
            except Exception as error:
                results.failures.append(
                    Failure(f"evaluation ({scenario})", subject.library, _reason(error))
                )
                subjects.remove(subject)
        await apps.drain()
        section.advance(f"({scenario}) answers checked")
        for round_ in range(settings.repeat):
            section.note(f"({scenario}) timing, round {round_ + 1} of {settings.repeat}")
            await _round(subjects, users)
            await apps.drain()
            section.advance(f"({scenario}) round {round_ + 1} of {settings.repeat}")
    finally:
        for case in cases:
            try:
                case.close()
            except Exception as error:
                results.failures.append(
                    Failure(f"evaluation ({scenario})", case.library, f"close: {_reason(error)}")
                )
    for subject in subjects:
        results.evaluation.append(
            _row(
                scenario,
                subject.library,
                subject.call,
                subject.version,
                subject.runs,
                overhead,
                users,
                subject.answers,
                subject.note,
                subject.exposures() if subject.exposures is not None else None,
            )
        )


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


async def _run(
    settings: Settings,
    url: str | None,
    users: Sequence[User],
    overhead: float,
    section: Section,
    results: Results,
) -> None:
    apps = _Apps(url)
    await apps.start()
    try:
        with loopback_only() as guard, apps.pinned_sync.snapshot(), apps.pinned_aio.snapshot():
            for scenario in SCENARIOS:
                await _scenario(scenario, apps, settings, users, overhead, section, results)
    finally:
        await apps.close()
    for attempt in guard.attempts:
        results.failures.append(Failure("evaluation", "network guard", attempt))


def run_evaluation(settings: Settings, url: str | None, section: Section, results: Results) -> None:
    """Every scenario: feats (sync, awaited, find_implementation), the floor, the peers."""
    users = make_users(settings.users)
    overhead = loop_overhead_ns(users, max(settings.repeat, 5))
    results.loop_overhead_ns = round(overhead, 2)
    section.advance("loop overhead")
    asyncio.run(_run(settings, url, users, overhead, section, results))
    section.done()
