"""Redis killed with SIGKILL and restarted: with AOF (resume) and without (an empty store).

An empty store never flips users to defaults: the first App that reconnects holding a
snapshot writes it back, atomically and keeping its versions, and exactly one App does.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import feats
import feats.aio
from feats._layout import Keys
from tests.servers import RedisServer
from tests.servers._common import command

from ._model import (
    AMERICAN,
    CANADIAN,
    RECOVERY_BOUND,
    SyncModel,
    aio_app,
    aio_probing,
    apoll,
    assert_live,
    assert_stale,
    async_client,
    canada_gets,
    poll,
    probing,
    sync_app,
    sync_client,
)
from .conftest import Measure


def test_sigkill_with_aof_resumes_from_the_last_id(
    aof_server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(aof_server.url), namespace)
    reader = sync_app(sync_client(aof_server.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        assert_live(reader)
        assert reader.app.status.reloads == 1
        killed = time.monotonic()
        aof_server.kill()
        measure(
            "stale after kill (s)", poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        )
        assert_stale(reader)
        assert reader.Checkout.find_implementation(CANADIAN) == "express"
        assert reader.Checkout.explain(CANADIAN).version == first
        aof_server.restart()
        restarted = time.monotonic()
        measure("down (s)", restarted - killed)
        measure(
            "live after restart (s)",
            poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live"),
        )
        # Resumed from the last id: no full reload was needed.
        assert reader.app.status.reloads == 1
        probe.expected = None
        second = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="ops", reason="after"
        )
        acked = time.monotonic()
        reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        measure("next change applied after ack (s)", time.monotonic() - acked)
        measure("next change applied after restart (s)", time.monotonic() - restarted)
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        assert_live(reader)
    probe.assert_clean()
    measure("evaluations during the run", probe.evaluations)


async def test_aio_sigkill_with_aof_resumes_from_the_last_id(
    aof_server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = aio_app(async_client(aof_server.url), namespace)
    reader = aio_app(async_client(aof_server.url), namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        assert_live(reader)
        await aof_server.akill()
        measure(
            "stale after kill (s)",
            await apoll(lambda: reader.app.status.stale, timeout=10, what="stale"),
        )
        assert_stale(reader)
        assert reader.Checkout.explain(CANADIAN).version == first
        await aof_server.arestart()
        restarted = time.monotonic()
        measure(
            "live after restart (s)",
            await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live"),
        )
        assert reader.app.status.reloads == 1
        probe.expected = None
        second = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="ops", reason="after"
        )
        acked = time.monotonic()
        await reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        measure("next change applied after ack (s)", time.monotonic() - acked)
        measure("next change applied after restart (s)", time.monotonic() - restarted)
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
    probe.assert_clean()


def test_sigkill_without_persistence_reseeds_the_empty_store(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace)
    watch = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    epoch = watch.get(keys.epoch)
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        server.kill()
        poll(lambda: reader.app.status.stale, timeout=10, what="stale")
        assert_stale(reader)
        server.restart()  # no persistence: it comes back empty, a new epoch to come
        restarted = time.monotonic()
        measure(
            "live (re-seeded) after restart (s)",
            poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live"),
        )
        status = reader.app.status
        assert status.reseeds == 1 and status.diverged == (), status
        # The store has the configuration back, under the same version; users never moved.
        assert watch.hget(keys.versions, "Checkout") == first
        assert watch.get(keys.epoch) not in (None, epoch)
        assert watch.xlen(keys.log) == 1
        assert reader.Checkout.explain(CANADIAN).version == first
        assert writer.app.admin.get_state(writer.Checkout) == canada_gets("express")
        # The catalog entry the wipe took is published again (the CLI needs it).
        poll(
            lambda: "Checkout" in writer.app.admin.catalog().registry().features,
            timeout=RECOVERY_BOUND,
            what="the catalog republished",
        )
        probe.expected = None
        # Versions survived, so a compare-and-set against the old one still succeeds.
        second = writer.app.admin.set_state(
            writer.Checkout,
            canada_gets("oneclick"),
            author="ops",
            reason="after",
            expected_version=first,
        )
        acked = time.monotonic()
        reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        measure("next change applied after ack (s)", time.monotonic() - acked)
        measure("next change applied after restart (s)", time.monotonic() - restarted)
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        assert_live(reader)
    probe.assert_clean()
    watch.close()


async def test_aio_sigkill_without_persistence_reseeds_the_empty_store(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = aio_app(async_client(server.url), namespace)
    reader = aio_app(async_client(server.url), namespace)
    watch = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    first = await writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    async with reader.app, aio_probing(reader) as probe:
        await reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        await server.akill()
        await apoll(lambda: reader.app.status.stale, timeout=10, what="stale")
        assert_stale(reader)
        await server.arestart()
        measure(
            "live (re-seeded) after restart (s)",
            await apoll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live"),
        )
        assert reader.app.status.reseeds == 1
        assert watch.hget(keys.versions, "Checkout") == first
        probe.expected = None
        second = await writer.app.admin.set_state(
            writer.Checkout,
            canada_gets("oneclick"),
            author="ops",
            reason="after",
            expected_version=first,
        )
        await reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
    probe.assert_clean()
    watch.close()


def reloaded_and_live(model: SyncModel) -> bool:
    status = model.app.status
    return status.live and status.reloads >= 2


def test_of_many_apps_exactly_one_reseeds(server: RedisServer, namespace: str) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    readers = [sync_app(sync_client(server.url), namespace) for _ in range(6)]
    watch = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    version = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    for reader in readers:
        reader.app.start()
    try:
        for reader in readers:
            reader.app.wait_for_version(version, timeout=5)
        server.restart_empty()
        for reader in readers:
            poll(
                partial(reloaded_and_live, reader),
                timeout=RECOVERY_BOUND,
                what="every reader live again",
            )
        assert sum(reader.app.status.reseeds for reader in readers) == 1
        assert watch.xlen(keys.log) == 1  # one atomic write, no duplicates
        assert watch.hget(keys.versions, "Checkout") == version
        for reader in readers:
            assert reader.Checkout.explain(CANADIAN).version == version
            assert reader.Checkout.find_implementation(CANADIAN) == "express"
    finally:
        for reader in readers:
            reader.app.close()
    watch.close()


def test_without_reseed_the_app_keeps_serving_and_reports_diverged(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace, reseed=False)
    watch = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        server.restart_empty()
        poll(
            lambda: reader.app.status.diverged == ("Checkout",),
            timeout=RECOVERY_BOUND,
            what="diverged",
        )
        assert_stale(reader)
        assert "lost" in (reader.app.status.error or "")
        assert reader.app.status.reseeds == 0
        assert watch.hlen(keys.states) == 0  # nobody wrote it back
        assert reader.Checkout.explain(CANADIAN).version == first
        probe.expected = None
        # A new write (an admin without a snapshot, a `feats import`) heals it.
        writer2 = sync_app(sync_client(server.url), namespace)
        second = writer2.app.admin.set_state(
            writer2.Checkout, canada_gets("oneclick"), author="ops", reason="after"
        )
        started = time.monotonic()
        reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        measure("live after the next write (s)", time.monotonic() - started)
        assert reader.app.status.diverged == ()
        assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
    probe.assert_clean()
    watch.close()


def test_export_then_import_into_an_empty_store(server: RedisServer, namespace: str) -> None:
    admin_app = sync_app(sync_client(server.url), namespace)
    admin = admin_app.app.admin
    versions = [
        admin.set_state(admin_app.Checkout, canada_gets(name), author="ops", reason=name)
        for name in ("express", "oneclick", "express")
    ]
    rollout = feats.FeatureState(
        segments=["Country"],
        rules={
            ("CA",): feats.Rollout("UserId", {"express": 30, "oneclick": 70}),
            None: feats.Static("classic"),
        },
    )
    versions.append(admin.set_state(admin_app.Checkout, rollout, author="ops", reason="split"))
    stored = admin.get_state(admin_app.Checkout)
    history = admin.history(admin_app.Checkout)
    backup = admin.export_backup()
    assert [f["feature"] for f in backup["features"]] == ["Checkout"]
    assert len(backup["features"][0]["history"]) == 3

    server.restart_empty()
    fresh = sync_app(sync_client(server.url), namespace)
    result = fresh.app.admin.import_backup(backup, author="ops", reason="restore")
    assert result.mode == "restored" and result.features == ("Checkout",)
    # Exactly as it was: the version, the salted split (same users, same buckets), history.
    assert fresh.app.admin.get_version(fresh.Checkout) == versions[-1]
    assert fresh.app.admin.get_state(fresh.Checkout) == stored
    assert [c.version for c in fresh.app.admin.history(fresh.Checkout)] == versions
    assert fresh.app.admin.history(fresh.Checkout) == history

    reader = sync_app(sync_client(server.url), namespace)
    with reader.app:
        assert reader.Checkout.explain(AMERICAN).version == versions[-1]
        assigned = {reader.Checkout.find_implementation(type(CANADIAN)(i, "CA")) for i in range(50)}
        assert assigned == {"express", "oneclick"}
        # Importing into a configured store writes only what differs, as new versions.
        again = reader.app.admin.import_backup(backup, author="ops", reason="again")
        assert again.mode == "written" and again.features == () and again.unchanged == ("Checkout",)
        reader.app.admin.set_state(reader.Checkout, canada_gets("oneclick"), author="x", reason="y")
        third = reader.app.admin.import_backup(backup, author="ops", reason="undo")
        assert third.mode == "written" and third.features == ("Checkout",)
        assert reader.app.admin.get_state(reader.Checkout) == stored
        latest = reader.app.admin.history(reader.Checkout)[-1]
        assert (latest.author, latest.reason, latest.version) == (
            "ops",
            "undo",
            third.versions["Checkout"],
        )


async def test_aio_export_then_import(server: RedisServer, namespace: str) -> None:
    admin_app = aio_app(async_client(server.url), namespace)
    version = await admin_app.app.admin.set_state(
        admin_app.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    backup = await admin_app.app.admin.export_backup(history=False)
    assert "history" not in backup["features"][0]
    await server.arestart_empty()
    fresh = aio_app(async_client(server.url), namespace)
    result = await fresh.app.admin.import_backup(backup, author="ops", reason="restore")
    assert result.mode == "restored"
    assert await fresh.app.admin.get_version(fresh.Checkout) == version
    assert await fresh.app.admin.get_state(fresh.Checkout) == canada_gets("express")


def test_import_refuses_a_malformed_backup(server: RedisServer, namespace: str) -> None:
    model = sync_app(sync_client(server.url), namespace)
    for document in (
        "not json",
        {"format": "other"},
        {"format": "feats-backup", "format_version": 99, "features": []},
        {"format": "feats-backup", "format_version": 1, "features": [{"feature": "Checkout"}]},
        {
            "format": "feats-backup",
            "format_version": 1,
            "features": [{"feature": "Checkout", "version": "1-0", "record": {"schema": 7}}],
        },
    ):
        try:
            model.app.admin.import_backup(document, author="a", reason="r")
        except feats.CodecError:
            continue
        raise AssertionError(f"accepted {document!r}")
    assert model.app.admin.configurations() == {}


def test_a_store_that_lost_its_last_writes_gets_them_back(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    """A failover to a replica that missed the last write: same epoch, an older log. The
    Apps that applied it notice when they reconnect, keep it, and write it back."""
    writer = sync_app(sync_client(server.url), namespace)
    reader = sync_app(sync_client(server.url), namespace)
    raw = sync_client(server.url, decode_responses=True)
    keys = Keys(namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="1"
    )
    second = writer.app.admin.set_state(
        writer.Checkout, canada_gets("oneclick"), author="o", reason="2"
    )
    with reader.app, probing(reader) as probe:
        reader.app.wait_for_version(second, timeout=5)
        probe.expected = "oneclick"
        entries: Any = raw.xrange(keys.log, max=first)
        [(first_id, first_fields)] = entries
        history = keys.history("Checkout")
        with raw.pipeline(transaction=True) as pipe:  # the lagging replica's data set
            pipe.delete(keys.log, history)
            pipe.xadd(keys.log, first_fields, id=first_id)
            pipe.xadd(history, {"record": first_fields["record"]}, id=first_id)
            pipe.hset(keys.states, "Checkout", first_fields["record"])
            pipe.hset(keys.versions, "Checkout", first_id)
            pipe.execute()
        command(raw, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # the failover
        started = time.monotonic()
        poll(lambda: reader.app.status.reseeds == 1, timeout=RECOVERY_BOUND, what="re-seeded")
        poll(lambda: reader.app.status.live, timeout=RECOVERY_BOUND, what="live")
        measure("lost write restored after the reconnection (s)", time.monotonic() - started)
        # Back under its own version: Apps that never saw it get it, CAS still works.
        assert raw.hget(keys.versions, "Checkout") == second
        assert writer.app.admin.get_state(writer.Checkout) == canada_gets("oneclick")
        probe.expected = None
        third = writer.app.admin.set_state(
            writer.Checkout, canada_gets("express"), author="o", reason="3", expected_version=second
        )
        reader.app.wait_for_version(third, timeout=RECOVERY_BOUND)
    probe.assert_clean()
    raw.close()
