"""Least privilege and TLS: an App user that can read configuration and write only its own
exposures and catalog entry; an admin user; a throwaway CA and rediss://."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

import feats
from feats._layout import WRITE_SCRIPT, Keys, write_call
from tests.servers import RedisServer, make_tls_material
from tests.servers._common import command
from tests.servers.acl import admin_acl, app_acl

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    User,
    aio_app,
    assert_stale,
    async_client,
    canada_gets,
    poll,
    probing,
    sync_app,
    sync_client,
)
from .conftest import Measure

NAMESPACE = "shop"


ACL = [
    "user default on nopass ~* &* +@all",  # the test's own eyes, not used by feats
    app_acl(NAMESPACE, "app-secret"),
    admin_acl(NAMESPACE, "admin-secret"),
]


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    with RedisServer(name="acl", acl_lines=ACL) as server:
        yield server


def test_the_app_user_follows_and_cannot_change_configuration(
    acl_server: RedisServer, measure: Measure
) -> None:
    admin = sync_app(
        sync_client(acl_server.url, username="feats-admin", password="admin-secret"), NAMESPACE
    )
    app = sync_app(
        sync_client(acl_server.url, username="feats-app", password="app-secret"), NAMESPACE
    )
    raw_app = sync_client(acl_server.url, username="feats-app", password="app-secret")
    keys = Keys(NAMESPACE)
    experiment = feats.FeatureState(
        segments=[], rules={None: feats.Experiment("UserId", {"express": 50, "oneclick": 50})}
    )
    first = admin.app.admin.set_state(admin.Checkout, experiment, author="ops", reason="test")
    with app.app:
        app.app.wait_for_version(first, timeout=5)
        # It follows changes, publishes its catalog entry and writes its exposures.
        for i in range(20):
            app.Checkout.create(User(i, "US"))
        poll(lambda: app.app.status.exposures_written == 20, timeout=5, what="exposures")
        assert admin.app.admin.exposures(admin.Checkout).total == 20
        # The catalog goes out from the writer thread soon after the first load.
        poll(
            lambda: "Checkout" in admin.app.admin.catalog().registry().features,
            timeout=5,
            what="the catalog entry",
        )
        second = admin.app.admin.set_state(
            admin.Checkout, canada_gets("express"), author="ops", reason="next"
        )
        app.app.wait_for_version(second, timeout=RECOVERY_BOUND)
        assert app.Checkout.find_implementation(CANADIAN) == "express"
        # It cannot change configuration: not through feats, not by hand.
        with pytest.raises(feats.StorageError, match=r"NOPERM|no permissions"):
            app.app.admin.set_state(app.Checkout, canada_gets("oneclick"), author="x", reason="y")
        script_keys, args = write_call(keys, "Checkout", "{}", None)
        attempts: list[tuple[str | bytes | int, ...]] = [
            ("EVAL", WRITE_SCRIPT, len(script_keys), *script_keys, *args),
            ("HSET", keys.states, "Checkout", "{}"),
            ("XADD", keys.log, "*", "feature", "Checkout", "record", "{}", "prev", second),
            ("SET", keys.epoch, "mine"),
            ("DEL", keys.states),
            ("FLUSHALL",),
            ("GET", "feats:{other}:epoch"),
        ]
        for attempt in attempts:
            with pytest.raises(redis.exceptions.NoPermissionError):
                command(raw_app, *attempt)
        assert admin.app.admin.get_version(admin.Checkout) == second
        assert app.app.status.live
    measure("forbidden commands refused", len(attempts) + 1)
    raw_app.close()


def test_an_app_that_may_not_reseed_keeps_serving_until_an_admin_restores(
    acl_server: RedisServer, measure: Measure
) -> None:
    admin = sync_app(
        sync_client(acl_server.url, username="feats-admin", password="admin-secret"), NAMESPACE
    )
    app = sync_app(
        sync_client(acl_server.url, username="feats-app", password="app-secret"), NAMESPACE
    )
    first = admin.app.admin.set_state(
        admin.Checkout, canada_gets("express"), author="ops", reason="before"
    )
    backup = admin.app.admin.export_backup()
    with app.app, probing(app) as probe:
        app.app.wait_for_version(first, timeout=5)
        probe.expected = "express"
        acl_server.restart_empty()  # the ACL file survives, the data does not
        poll(
            lambda: app.app.status.diverged == ("Checkout",),
            timeout=RECOVERY_BOUND,
            what="diverged",
        )
        assert_stale(app)
        status = app.app.status
        assert status.reseeds == 0
        assert any("re-seeding" in problem.where for problem in status.problems)
        assert any(
            "NOPERM" in problem.message or "permission" in problem.message
            for problem in status.problems
        )
        result = admin.app.admin.import_backup(backup, author="ops", reason="restore")
        assert result.mode == "restored"
        poll(lambda: app.app.status.live, timeout=RECOVERY_BOUND, what="live")
        assert app.Checkout.explain(CANADIAN).version == first
    probe.assert_clean()


def test_tls_with_a_throwaway_ca(tmp_path: Path, measure: Measure) -> None:
    material = make_tls_material(tmp_path / "tls")
    with RedisServer(name="tls", tls=True, tls_material=material) as server:
        assert server.url.startswith("rediss://")
        tls = material.client_kwargs()
        writer = sync_app(sync_client(server.url, **tls), "tls")
        reader = sync_app(sync_client(server.url, **tls), "tls")
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("express"), author="o", reason="r"
        )
        with reader.app:
            reader.app.wait_for_version(version, timeout=5)
            assert reader.app.status.live
            second = writer.app.admin.set_state(
                writer.Checkout, canada_gets("oneclick"), author="o", reason="r"
            )
            reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
            assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
        # Without the CA the server's certificate is not trusted.
        untrusted = redis.Redis.from_url(server.url, socket_timeout=2)
        with pytest.raises(redis.ConnectionError):
            untrusted.ping()
        untrusted.close()


async def test_aio_tls_with_a_throwaway_ca(tmp_path: Path) -> None:
    material = make_tls_material(tmp_path / "tls")
    with RedisServer(name="tls", tls=True, tls_material=material) as server:
        tls = material.client_kwargs()
        writer = aio_app(async_client(server.url, **tls), "tls")
        reader = aio_app(async_client(server.url, **tls), "tls")
        version = await writer.app.admin.set_state(
            writer.Checkout, canada_gets("express"), author="o", reason="r"
        )
        async with reader.app:
            await reader.app.wait_for_version(version, timeout=5)
            second = await writer.app.admin.set_state(
                writer.Checkout, canada_gets("oneclick"), author="o", reason="r"
            )
            await reader.app.wait_for_version(second, timeout=RECOVERY_BOUND)
            assert reader.Checkout.find_implementation(CANADIAN) == "oneclick"
