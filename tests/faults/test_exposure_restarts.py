"""Every exposure is counted through restarts (issue 13): Redis stopped with SIGTERM and
started again on the same port and AOF directory while an App records a three-way
experiment, and the App itself closed and replaced on the same namespace.

``admin.exposures`` (what ``feats exposures`` reads) must count exactly what the Apps
answered, per implementation, and the stream must hold each user's unit exactly once: none
lost while Redis was down (the buffer keeps them; each phase stays far below its bound,
``exposure_capacity`` = 100,000 split by weight, about 33,000 per arm), none written twice.

Redis is stopped while no batch is in flight. A batch it applied without answering (stopped
mid-write) is sent again: writing is at least once, as the last test shows on a relay that
swallows the reply (that batch is counted twice, nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from types import TracebackType

import feats
from feats._exposures import ExposureReport, exposures_in
from feats._layout import Keys
from tests.servers import RedisServer
from tests.servers._common import LOOPBACK

from ._model import (
    IMPLEMENTATIONS,
    RECOVERY_BOUND,
    AioModel,
    SyncModel,
    User,
    aio_app,
    apoll,
    async_client,
    poll,
    sync_app,
    sync_client,
)
from .conftest import Measure

PHASE = 600
"""Distinct users exposed per phase (before, during and after an outage)."""
FLUSHED = 10.0
"""Seconds within which a running writer sends what is buffered (it tries every 50 ms)."""
COUNTRIES = ("US", "CA", "GB")

Exposure = tuple[str, str, str, str | None]


def three_way() -> feats.FeatureState:
    return feats.FeatureState(
        segments=[],
        rules={None: feats.Experiment("UserId", {"express": 1, "oneclick": 1, "classic": 1})},
    )


def users(phase: int) -> list[User]:
    """The users of one phase: ids no other phase uses."""
    return [User(phase * PHASE + i, COUNTRIES[i % 3]) for i in range(PHASE)]


def expose(model: SyncModel, people: Iterable[User], assigned: dict[str, str]) -> None:
    """``create`` for each user (one exposure each), remembering what the App answered."""
    for person in people:
        assigned[str(person.id)] = model.Checkout.create(person)


async def aexpose(model: AioModel, people: Iterable[User], assigned: dict[str, str]) -> None:
    for person in people:
        assigned[str(person.id)] = await model.Checkout.create(person)


def stored_exposures(url: str, namespace: str) -> list[Exposure]:
    """Every exposure in the namespace's stream, one by one, read with a client of its own."""
    storage = feats.RedisStorage(sync_client(url), namespace)
    found: list[Exposure] = []
    after = "0-0"
    while page := storage.read_exposures(after, 1_000):
        for entry in page:
            found.extend(exposures_in(entry))
        after = page[-1].id
    return found


def check_counted(
    report: ExposureReport, stored: list[Exposure], assigned: dict[str, str], version: str
) -> None:
    """The report counts exactly what the Apps answered; the stream holds each unit once."""
    answers = Counter(assigned.values())
    assert set(answers) == set(IMPLEMENTATIONS), answers  # a three-way split: all arms used
    assert report.total == len(assigned), (report.total, len(assigned))
    assert {item.implementation: item.exposures for item in report.implementations} == answers
    assert report.versions == (version,)
    assert report.skipped == 0
    units = Counter(unit for _, _, unit, _ in stored)
    duplicated = [unit for unit, count in units.items() if count > 1]
    assert not duplicated, f"{len(duplicated)} units written more than once: {duplicated[:5]}"
    assert {unit: implementation for _, implementation, unit, _ in stored} == assigned
    assert {(feature, v) for feature, _, _, v in stored} == {("Checkout", version)}


def test_sync_exposures_are_all_counted_through_a_redis_restart(
    aof_server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(aof_server.url), namespace)  # never started: its admin
    version = writer.app.admin.set_state(
        writer.Checkout, three_way(), author="ops", reason="experiment"
    )
    reader = sync_app(sync_client(aof_server.url), namespace)  # the writer thread flushes
    assigned: dict[str, str] = {}
    with reader.app:
        reader.app.wait_for_version(version, timeout=5)
        expose(reader, users(0), assigned)
        poll(
            lambda: reader.app.status.exposures_written == PHASE,
            timeout=FLUSHED,
            what="the first phase written",
        )
        assert reader.app.status.exposures_buffered == 0  # nothing in flight at the stop
        aof_server.stop()  # SIGTERM: Redis fsyncs its AOF and exits
        poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        # Well within what the buffer keeps: even all in one arm, within its share.
        assert reader.app.status.exposure_capacity // 3 > PHASE
        expose(reader, users(1), assigned)
        reader.app.flush()  # fails while Redis is down: back to the buffer, not raised

        def kept() -> bool:
            # The writer thread keeps trying too: its batch is out of the buffer only while
            # an attempt is failing.
            status = reader.app.status
            return status.exposures_buffered == PHASE and status.exposures_written == PHASE

        poll(kept, timeout=FLUSHED, what="the outage's exposures all back in the buffer")
        assert reader.app.status.exposures_dropped == 0
        restarting = time.monotonic()
        aof_server.start()  # the same port and directory: the AOF comes back
        poll(
            lambda: reader.app.status.exposures_written == 2 * PHASE,
            timeout=RECOVERY_BOUND,
            what="the writer thread to send the outage's exposures",
        )
        measure("outage's exposures written, from the restart (s)", time.monotonic() - restarting)
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        expose(reader, users(2), assigned)
    status = reader.app.status  # closed: it flushed what was left
    assert status.state == "closed"
    assert (status.exposures_written, status.exposures_buffered) == (3 * PHASE, 0), status
    assert status.exposures_dropped == 0
    report = writer.app.admin.exposures(writer.Checkout)
    check_counted(report, stored_exposures(aof_server.url, namespace), assigned, version)
    measure("exposures counted", report.total)


async def test_aio_exposures_are_all_counted_through_a_redis_restart(
    aof_server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = aio_app(async_client(aof_server.url), namespace)  # never started: its admin
    version = await writer.app.admin.set_state(
        writer.Checkout, three_way(), author="ops", reason="experiment"
    )
    # A flush interval far beyond the test: only flush() and aclose() write, so what the
    # store holds at each step is known exactly.
    reader = aio_app(async_client(aof_server.url), namespace, flush_interval=3600)
    assigned: dict[str, str] = {}
    async with reader.app:
        await reader.app.wait_for_version(version, timeout=5)
        await aexpose(reader, users(0), assigned)
        assert reader.app.status.exposures_buffered == PHASE
        await reader.app.flush()
        status = reader.app.status
        assert (status.exposures_written, status.exposures_buffered) == (PHASE, 0), status
        await aof_server.astop()  # SIGTERM: Redis fsyncs its AOF and exits
        await apoll(lambda: reader.app.status.stale, timeout=10, what="stale")
        assert reader.app.status.exposure_capacity // 3 > PHASE  # well within the bound
        await aexpose(reader, users(1), assigned)
        await reader.app.flush()  # fails while Redis is down: back to the buffer, not raised
        status = reader.app.status
        assert (status.exposures_written, status.exposures_buffered) == (PHASE, PHASE), status
        assert status.exposures_dropped == 0
        await asyncio.to_thread(aof_server.start)  # the same port and directory
        # The AOF brought back exactly what was written before the stop.
        assert (await writer.app.admin.exposures(writer.Checkout)).total == PHASE
        await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        await aexpose(reader, users(2), assigned)
    status = reader.app.status  # closed: aclose() flushed the outage's and the last phase
    assert status.state == "closed"
    assert (status.exposures_written, status.exposures_buffered) == (3 * PHASE, 0), status
    assert status.exposures_dropped == 0
    report = await writer.app.admin.exposures(writer.Checkout)
    stored = await asyncio.to_thread(stored_exposures, aof_server.url, namespace)
    check_counted(report, stored, assigned, version)
    measure("exposures counted", report.total)


def test_sync_exposures_add_up_across_app_restarts(aof_server: RedisServer, namespace: str) -> None:
    writer = sync_app(sync_client(aof_server.url), namespace)
    version = writer.app.admin.set_state(
        writer.Checkout, three_way(), author="ops", reason="experiment"
    )
    assigned: dict[str, str] = {}
    first = sync_app(sync_client(aof_server.url), namespace)
    with first.app:
        first.app.wait_for_version(version, timeout=5)
        expose(first, users(0), assigned)
    assert first.app.status.exposures_written == PHASE
    assert writer.app.admin.exposures(writer.Checkout).total == PHASE
    # The next deploy: a new App on the same namespace, with its own client.
    second = sync_app(sync_client(aof_server.url), namespace)
    with second.app:
        second.app.wait_for_version(version, timeout=5)
        # Assignments are sticky across Apps (find_implementation records nothing).
        assert {
            str(person.id): second.Checkout.find_implementation(person) for person in users(0)
        } == assigned
        expose(second, users(1), assigned)
    assert second.app.status.exposures_written == PHASE
    # The first App started again after its close.
    with first.app:
        first.app.wait_for_version(version, timeout=5)
        expose(first, users(2), assigned)
    assert first.app.status.exposures_written == 2 * PHASE
    assert first.app.status.exposures_dropped == second.app.status.exposures_dropped == 0
    report = writer.app.admin.exposures(writer.Checkout)
    check_counted(report, stored_exposures(aof_server.url, namespace), assigned, version)


async def test_aio_exposures_add_up_across_app_restarts(
    aof_server: RedisServer, namespace: str
) -> None:
    writer = aio_app(async_client(aof_server.url), namespace)
    version = await writer.app.admin.set_state(
        writer.Checkout, three_way(), author="ops", reason="experiment"
    )
    assigned: dict[str, str] = {}
    first = aio_app(async_client(aof_server.url), namespace)
    async with first.app:
        await first.app.wait_for_version(version, timeout=5)
        await aexpose(first, users(0), assigned)
    assert first.app.status.exposures_written == PHASE
    assert (await writer.app.admin.exposures(writer.Checkout)).total == PHASE
    second = aio_app(async_client(aof_server.url), namespace)
    async with second.app:
        await second.app.wait_for_version(version, timeout=5)
        assert {
            str(person.id): second.Checkout.find_implementation(person) for person in users(0)
        } == assigned
        await aexpose(second, users(1), assigned)
    assert second.app.status.exposures_written == PHASE
    async with first.app:
        await first.app.wait_for_version(version, timeout=5)
        await aexpose(first, users(2), assigned)
    assert first.app.status.exposures_written == 2 * PHASE
    assert first.app.status.exposures_dropped == second.app.status.exposures_dropped == 0
    report = await writer.app.admin.exposures(writer.Checkout)
    stored = await asyncio.to_thread(stored_exposures, aof_server.url, namespace)
    check_counted(report, stored, assigned, version)


class RepliesLost:
    """A loopback relay to a server that always forwards requests, and forwards replies
    only while ``replies`` is set: a write is applied and its sender never hears of it,
    which is what Redis stopped between applying a pipeline and answering it does."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.replies = threading.Event()
        self.replies.set()
        self._listener = socket.create_server((LOOPBACK, 0))
        self.url = f"redis://{LOOPBACK}:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, name="relay", daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                for source, sink, gated in ((client, upstream, False), (upstream, client, True)):
                    thread = threading.Thread(
                        target=self._pump, args=(source, sink, gated), name="relay", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        try:
            while data := source.recv(65536):
                if not gated or self.replies.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        for side in (source, sink):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> RepliesLost:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close would not)
        self._listener.close()
        with self._lock:
            for side in self._sockets:
                with contextlib.suppress(OSError):
                    side.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(5)
        with self._lock:
            for side in self._sockets:
                side.close()


def test_sync_a_batch_whose_reply_is_lost_is_sent_again_and_none_is_lost(
    server: RedisServer, namespace: str
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    version = writer.app.admin.set_state(
        writer.Checkout, three_way(), author="ops", reason="experiment"
    )
    watch = sync_client(server.url)
    assigned: dict[str, str] = {}
    with RepliesLost(server.address) as relay:
        reader = sync_app(sync_client(relay.url), namespace, flush_interval=3600)
        with reader.app:
            reader.app.wait_for_version(version, timeout=5)
            expose(reader, users(0), assigned)
            reader.app.flush()  # answered: the writer now holds a connection through the relay
            assert reader.app.status.exposures_written == PHASE
            expose(reader, users(1), assigned)
            relay.replies.clear()
            reader.app.flush()  # applied; no reply comes, so it ends at the socket timeout
            assert watch.xlen(Keys(namespace).exposures) == 2  # the second batch is stored
            assert reader.app.status.exposures_buffered == PHASE  # and kept to be sent again
            relay.replies.set()
        # Closed: the kept batch was sent again, on a new connection.
        assert reader.app.status.exposures_written == 2 * PHASE
    # Writing is at least once: Redis applied the unanswered batch, and it was sent again.
    report = writer.app.admin.exposures(writer.Checkout)
    assert report.total == 3 * PHASE and report.skipped == 0
    stored = stored_exposures(server.url, namespace)
    copies = Counter(unit for _, _, unit, _ in stored)
    resent = {str(user.id) for user in users(1)}
    assert {unit for unit, count in copies.items() if count == 2} == resent
    assert {unit for unit, count in copies.items() if count == 1} == set(assigned) - resent
    assert {unit: implementation for _, implementation, unit, _ in stored} == assigned
