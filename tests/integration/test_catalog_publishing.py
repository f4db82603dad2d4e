"""Catalog publishing (issue 13): an App sends its catalog entry only when the store lacks
one of the same identity (another process of the same deploy already stored it: only the
``seen:`` heartbeat goes out), and ``start()`` does not wait for the publication, which
runs on the App's writer thread after the first load.

What the store holds is read back field by field: an entry written again would carry this
process's pid, host and a new ``seen`` time, so it cannot pass for the other process's.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import redis
import redis.asyncio

import feats
import feats.aio
from feats._base import AppBase
from feats._catalog import SEEN_PREFIX, CatalogPublisher, encode_entry
from feats._layout import Keys

from ._shop import declare, user

pytestmark = pytest.mark.redis

BOUND = 10.0
"""Seconds any wait of these tests may take."""
OTHER_PID = 4_000_001  # above any Linux pid_max: no process of this machine has it
OTHER_HOST = "another-host"


@pytest.fixture
def watch(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def other_entry(watch: redis.Redis, namespace: str) -> tuple[str, str]:
    """Store the catalog entry another process of the same deploy (the same declarations)
    published an hour ago; ``(identity, entry)``."""
    other = feats.App()  # only its declarations are used
    declare(other)
    identity, document = encode_entry(
        other.registry, seen=time.time() - 3600, host=OTHER_HOST, pid=OTHER_PID
    )
    watch.hset(Keys(namespace).catalog, identity, document)
    return identity, document


def wait_for_heartbeat(
    watch: redis.Redis, namespace: str, identity: str, *, unlike: str | None = None
) -> dict[str, Any]:
    """This process's ``seen:<identity>`` heartbeat, once the App wrote it (bounded);
    ``unlike``: one written before, which does not count."""
    deadline = time.monotonic() + BOUND
    while True:
        raw = watch.hget(Keys(namespace).catalog, SEEN_PREFIX + identity)
        if raw is not None and raw != unlike:
            beat: dict[str, Any] = json.loads(raw)
            if beat["pid"] == os.getpid():
                return beat
        assert time.monotonic() < deadline, (
            f"no heartbeat of this process for {identity} after {BOUND}s: "
            f"{watch.hkeys(Keys(namespace).catalog)}"
        )
        time.sleep(0.01)


def check_only_a_heartbeat_was_sent(
    watch: redis.Redis, namespace: str, identity: str, document: str
) -> None:
    # The heartbeat and the entry go out in one HSET: once the heartbeat is there, an
    # entry sent again would be too.
    beat = wait_for_heartbeat(watch, namespace, identity)
    assert beat["host"] == socket.gethostname()
    stored = watch.hgetall(Keys(namespace).catalog)
    assert set(stored) == {identity, SEEN_PREFIX + identity}  # the same identity: shared
    assert stored[identity] == document  # the other process's entry, untouched
    assert json.loads(stored[identity])["pid"] == OTHER_PID


def test_sync_app_finding_its_entry_stored_sends_only_a_heartbeat(
    redis_url: str, namespace: str, watch: redis.Redis
) -> None:
    identity, document = other_entry(watch, namespace)
    client = redis.Redis.from_url(redis_url)
    app = feats.App(storage=feats.RedisStorage(client, namespace))
    declare(app)
    try:
        with app:
            check_only_a_heartbeat_was_sent(watch, namespace, identity, document)
            # The admin's reading merges the heartbeat: the deploy is seen running now.
            (entry,) = app.admin.catalog().entries
            assert (entry.identity, entry.host) == (identity, socket.gethostname())
            assert entry.pid == os.getpid() and entry.seen > time.time() - BOUND
    finally:
        client.close()


async def test_aio_app_finding_its_entry_stored_sends_only_a_heartbeat(
    redis_url: str, namespace: str, watch: redis.Redis
) -> None:
    identity, document = other_entry(watch, namespace)
    client = redis.asyncio.Redis.from_url(redis_url)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, namespace))
    declare(app)
    try:
        async with app:
            await asyncio.to_thread(
                check_only_a_heartbeat_was_sent, watch, namespace, identity, document
            )
    finally:
        await client.aclose()


def test_an_app_whose_entry_is_missing_sends_it(
    redis_url: str, namespace: str, watch: redis.Redis
) -> None:
    """The counterpart: another deploy's entry (other declarations) is no reason to skip
    this one's; it is sent, beside the other, which stays as it was."""
    smaller = feats.App()
    declare(smaller)

    @smaller.boolean
    def OnlyInTheOtherDeploy(user: object) -> bool:
        return False

    foreign, foreign_document = encode_entry(smaller.registry, host=OTHER_HOST, pid=OTHER_PID)
    watch.hset(Keys(namespace).catalog, foreign, foreign_document)
    client = redis.Redis.from_url(redis_url)
    app = feats.App(storage=feats.RedisStorage(client, namespace))
    declare(app)
    try:
        with app:
            identity, _ = encode_entry(app.registry)
            assert identity != foreign
            wait_for_heartbeat(watch, namespace, identity)
            stored = watch.hgetall(Keys(namespace).catalog)
            assert set(stored) == {foreign, identity, SEEN_PREFIX + identity}
            assert stored[foreign] == foreign_document
            mine = json.loads(stored[identity])
            assert (mine["identity"], mine["pid"]) == (identity, os.getpid())
    finally:
        client.close()


class Gate:
    """Holds the App's catalog publication until released (bounded), noting when it began."""

    def __init__(self, publisher: CatalogPublisher, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.timed_out = False
        real = publisher.entry

        def held(breathe: Callable[[], None] = lambda: None) -> tuple[str, str]:
            self.entered.set()
            if not self.release.wait(BOUND):
                self.timed_out = True
            return real(breathe)

        monkeypatch.setattr(publisher, "entry", held)


def gate(app: AppBase[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Gate:
    return Gate(app._publisher, monkeypatch)


def test_sync_start_returns_without_waiting_for_the_catalog(
    redis_url: str, namespace: str, watch: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis.Redis.from_url(redis_url)
    app = feats.App(storage=feats.RedisStorage(client, namespace))
    shop = declare(app)
    held = gate(app, monkeypatch)
    try:
        with app:
            # start() has returned, live, while the publication it began is held: were
            # start() waiting for it, it would still be waiting (until the gate gave up).
            assert app.status.state == "live"
            assert held.entered.wait(BOUND), "the App never began publishing its catalog"
            assert watch.exists(Keys(namespace).catalog) == 0
            assert shop.AllowedPriorities.find_implementation(user(1)) == "no_priority"
            held.release.set()
            identity, _ = encode_entry(app.registry)
            wait_for_heartbeat(watch, namespace, identity)
            assert json.loads(watch.hget(Keys(namespace).catalog, identity) or "{}")["pid"] == (
                os.getpid()
            )
        assert not held.timed_out
    finally:
        held.release.set()
        client.close()


async def test_aio_start_returns_without_waiting_for_the_catalog(
    redis_url: str, namespace: str, watch: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, namespace))
    declare(app)
    held = gate(app, monkeypatch)
    try:
        async with app:
            assert app.status.state == "live"
            assert await asyncio.to_thread(held.entered.wait, BOUND)
            assert watch.exists(Keys(namespace).catalog) == 0
            # Tools that need the catalog at once publish it themselves.
            identity = await app.admin.publish_catalog()
            assert watch.hexists(Keys(namespace).catalog, identity)
            written = watch.hget(Keys(namespace).catalog, identity)
            beat = cast(str, watch.hget(Keys(namespace).catalog, SEEN_PREFIX + identity))
            held.release.set()
            # The App then finds it stored: only its own heartbeat follows.
            await asyncio.to_thread(
                lambda: wait_for_heartbeat(watch, namespace, identity, unlike=beat)
            )
            assert watch.hget(Keys(namespace).catalog, identity) == written
        assert not held.timed_out
    finally:
        held.release.set()
        await client.aclose()
