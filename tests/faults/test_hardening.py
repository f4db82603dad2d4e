"""What an attacker with write access to Redis, or an asyncio service misusing an App, could
once do to feats, each reproduced against a real redis-server: a bad entry hiding a good one
in the same read, a poisoned stored value taking every feature down, a re-seed blocked by
one record, a write half done, a cancelled start leaving threads behind, an epoch of
megabytes read at every check, a client used on a second event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
import redis

import feats
import feats.aio
from feats._layout import Keys
from tests.servers import RedisServer
from tests.servers._common import as_str

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    User,
    aio_app,
    async_client,
    canada_gets,
    poll,
    sync_app,
    sync_client,
)
from .conftest import Measure

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_WEIGHT = 10**400


def record(state: Any, feature: str = "Checkout", **overrides: Any) -> str:
    document: dict[str, Any] = {
        "schema": 1,
        "feature": feature,
        "state": state,
        "author": "intruder",
        "reason": "hand edit",
        "time": time.time(),
    }
    document.update(overrides)
    return json.dumps(document)


def huge_weight_record() -> str:
    rollout = {"type": "rollout", "segment": "UserId", "weights": {"express": 1, "oneclick": 1}}
    text = record({"segments": [], "rules": [{"key": None, "selector": rollout}]})
    return text.replace('"express": 1', f'"express": {HUGE_WEIGHT}')


def canada_record(implementation: str) -> str:
    state = {
        "segments": ["Country"],
        "rules": [
            {"key": ["CA"], "selector": {"type": "static", "implementation": implementation}}
        ],
    }
    return record(state)


def head_of(raw: redis.Redis, keys: Keys) -> str:
    last = raw.xrevrange(keys.log, count=1)
    return as_str(last[0][0]) if last else "0-0"


# -- a bad entry after a good one in the same read --------------------------------------


@pytest.mark.parametrize("bad", [DEEP, "huge weight"], ids=["deeply nested", "400-digit weight"])
@pytest.mark.parametrize("shell", ["sync", "aio"])
async def test_a_good_change_is_served_though_a_bad_entry_follows_it(
    server: RedisServer, namespace: str, shell: str, bad: str
) -> None:
    keys = Keys(namespace)
    raw = sync_client(server.url)
    writer = sync_app(sync_client(server.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    bad_record = huge_weight_record() if bad == "huge weight" else bad

    def inject_both() -> str:
        # One MULTI/EXEC: the tail reads both entries in one XREAD.
        with raw.pipeline(transaction=True) as pipe:
            good_id = f"{int(first.split('-')[0]) + 10}-0"
            pipe.xadd(
                keys.log,
                {
                    "feature": "Checkout",
                    "record": canada_record("oneclick"),
                    "prev": head_of(raw, keys),
                },
                id=good_id,
            )
            pipe.xadd(
                keys.log,
                {"feature": "Checkout", "record": bad_record, "prev": good_id},
                id=f"{int(first.split('-')[0]) + 11}-0",
            )
            pipe.execute()
        return f"{int(first.split('-')[0]) + 11}-0"

    if shell == "sync":
        model = sync_app(sync_client(server.url), namespace)
        with model.app:
            model.app.wait_for_version(first, timeout=5)
            skipped = model.app.status.skipped
            last = inject_both()
            model.app.wait_for_version(last, timeout=RECOVERY_BOUND)
            assert model.Checkout.find_implementation(CANADIAN) == "oneclick"
            status = model.app.status
    else:
        aio = aio_app(async_client(server.url), namespace)
        async with aio.app:
            await aio.app.wait_for_version(first, timeout=5)
            skipped = aio.app.status.skipped
            last = inject_both()
            await aio.app.wait_for_version(last, timeout=RECOVERY_BOUND)
            assert aio.Checkout.find_implementation(CANADIAN) == "oneclick"
            status = aio.app.status
    assert status.live and status.version == last
    assert status.skipped == skipped + 1, status.problems
    raw.close()


# -- one poisoned value in the states hash ----------------------------------------------


def declare_two(app: feats.App | feats.aio.App) -> tuple[Any, Any]:
    class Country:
        def user(self, user: User) -> str:
            return user.country

    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    class Checkout:
        @feats.App.default
        def classic(self, user: User) -> str:
            return "classic"

        def express(self, user: User) -> str:
            return "express"

        def oneclick(self, user: User) -> str:
            return "oneclick"

    def Banner(user: User) -> bool:
        return False

    app.segment(Country)
    app.segment(UserId)
    return app.feature(Checkout), app.boolean(Banner)


BANNER_ON = feats.FeatureState(rules={None: feats.Static("enabled")})


@pytest.mark.parametrize("poison", [DEEP, "huge weight"], ids=["deeply nested", "400-digit weight"])
def test_a_poisoned_value_affects_only_its_own_feature(
    server: RedisServer, namespace: str, poison: str, measure: Measure
) -> None:
    keys = Keys(namespace)
    raw = sync_client(server.url)
    operator = feats.App(storage=feats.RedisStorage(sync_client(server.url), namespace))
    checkout, banner = declare_two(operator)
    operator.admin.set_state(checkout, canada_gets("express"), author="o", reason="r")
    operator.admin.set_state(banner, BANNER_ON, author="o", reason="r")
    raw.hset(keys.states, "Checkout", huge_weight_record() if poison == "huge weight" else poison)

    app = feats.App(
        storage=feats.RedisStorage(sync_client(server.url), namespace, block_ms=500), block_ms=500
    )
    app_checkout, app_banner = declare_two(app)
    with app:
        assert app.status.live
        # The healthy feature loads and answers; the poisoned one answers its default.
        assert app_banner.is_enabled(CANADIAN) is True
        assert app_checkout.find_implementation(CANADIAN) == "classic"
        assert any("Checkout" in problem.where for problem in app.status.problems)
        # Changes to the other feature still arrive.
        version = operator.admin.set_state(banner, None, author="o", reason="off")
        written = time.monotonic()
        app.wait_for_version(version, timeout=RECOVERY_BOUND)
        measure("another feature's change applied after (s)", time.monotonic() - written)
        assert app_banner.is_enabled(CANADIAN) is False
        # The admin still reads and writes: writing a state for the poisoned feature repairs it.
        assert operator.admin.get_state(banner) is None
        assert set(operator.admin.configurations()) == {"Banner"}
        repaired = operator.admin.set_state(
            checkout, canada_gets("oneclick"), author="o", reason="fix"
        )
        app.wait_for_version(repaired, timeout=RECOVERY_BOUND)
        assert app_checkout.find_implementation(CANADIAN) == "oneclick"
        assert app.status.live
    raw.close()


# -- re-seeding an empty store ----------------------------------------------------------


def test_odd_records_cannot_keep_the_healthy_ones_from_being_reseeded(
    server: RedisServer, namespace: str
) -> None:
    keys = Keys(namespace)
    raw = sync_client(server.url)
    model = sync_app(sync_client(server.url), namespace)
    version = model.app.admin.set_state(
        model.Checkout, canada_gets("express"), author="o", reason="r"
    )
    # Records no strict reader accepts, written around the admin under other names.
    for name, text, older in (
        (
            "NanTime",
            record(None, feature="NanTime").replace('"time": ', '"time": NaN, "t": '),
            "1-0",
        ),
        ("Surrogate", record(None, feature="Surrogate", author="\ud800"), "2-0"),
    ):
        raw.hset(keys.states, name, text)
        raw.hset(keys.versions, name, older)
    with model.app:
        model.app.wait_for_version(version, timeout=5)
        server.restart_empty()
        poll(
            lambda: model.app.status.reseeds >= 1 and model.app.status.live,
            timeout=RECOVERY_BOUND,
            what="re-seed",
        )
        assert as_str(raw.hget(keys.versions, "Checkout")) == version
        assert model.Checkout.find_implementation(CANADIAN) == "express"
    raw.close()


# -- a write that cannot complete writes nothing ----------------------------------------


@pytest.mark.parametrize("shell", ["sync", "aio"])
async def test_a_write_that_would_fail_half_way_writes_nothing(
    server: RedisServer, namespace: str, shell: str
) -> None:
    keys = Keys(namespace)
    raw = sync_client(server.url)
    model = sync_app(sync_client(server.url), namespace)
    first = model.app.admin.set_state(
        model.Checkout, canada_gets("express"), author="o", reason="r"
    )
    raw.delete(keys.history("Checkout"))
    raw.set(keys.history("Checkout"), "not a stream")
    log_length = raw.xlen(keys.log)
    if shell == "sync":
        with pytest.raises(feats.StorageError, match="WRONGTYPE") as failed:
            model.app.admin.set_state(
                model.Checkout,
                canada_gets("oneclick"),
                author="o",
                reason="r",
                expected_version=first,
            )
    else:
        aio = aio_app(async_client(server.url), namespace)
        with pytest.raises(feats.StorageError, match="WRONGTYPE") as failed:
            await aio.app.admin.set_state(
                aio.Checkout,
                canada_gets("oneclick"),
                author="o",
                reason="r",
                expected_version=first,
            )
    assert failed.value.reachable
    assert raw.xlen(keys.log) == log_length
    assert as_str(raw.hget(keys.versions, "Checkout")) == first
    # Once the key is fixed, the same compare-and-set goes through: nothing moved.
    raw.delete(keys.history("Checkout"))
    second = model.app.admin.set_state(
        model.Checkout, canada_gets("oneclick"), author="o", reason="r", expected_version=first
    )
    assert second != first
    raw.close()


# -- a cancelled start ------------------------------------------------------------------


async def test_a_cancelled_start_leaves_nothing_running(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    aio = aio_app(async_client(server.url), namespace, start_timeout=30)
    server.stop()  # nothing answers: start() waits for its timeout
    task = asyncio.create_task(aio.app.start())
    for _ in range(1_000):  # until start() has set its threads off and waits for a load
        if aio.app._follower is not None:
            break
        await asyncio.sleep(0)
    assert aio.app._follower is not None and not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    follower = aio.app._follower
    assert follower is not None
    cancelled = time.monotonic()
    assert await asyncio.to_thread(follower.join, 5)
    measure("background threads ended after the cancel (s)", time.monotonic() - cancelled)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(aio.app.__aenter__(), 0.2)
    assert aio.app._follower is not None
    assert await asyncio.to_thread(aio.app._follower.join, 5)
    # A later start() starts afresh and loads.
    server.start()
    version = await aio.app.admin.set_state(
        aio.Checkout, canada_gets("express"), author="o", reason="r"
    )
    async with aio.app:
        await aio.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        assert aio.Checkout.find_implementation(CANADIAN) == "express"


# -- an epoch of megabytes ---------------------------------------------------------------


def test_an_oversized_epoch_is_refused_without_being_read(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    keys = Keys(namespace)
    raw = sync_client(server.url)
    model = sync_app(sync_client(server.url), namespace, block_ms=100)
    version = model.app.admin.set_state(
        model.Checkout, canada_gets("express"), author="o", reason="r"
    )
    raw.set(keys.epoch, "e" * 5_000_000)
    with model.app:
        model.app.wait_for_version(version, timeout=5)
        sent = int(raw.info("stats")["total_net_output_bytes"])
        checks = model.app.status.confirmed_at or 0.0
        # Ten idle BLOCKs, each followed by an epoch check.
        poll(
            lambda: (model.app.status.confirmed_at or 0) > checks + 1.0,
            timeout=10,
            what="idle checks",
        )
        sent = int(raw.info("stats")["total_net_output_bytes"]) - sent
        measure("bytes Redis sent over 10 idle epoch checks of a 5 MB epoch", sent)
        assert sent < 1_000_000
        refused = [p for p in model.app.status.problems if p.where == "the store's epoch"]
        assert len(refused) == 1 and "5000000 bytes" in refused[0].message
        assert model.Checkout.find_implementation(CANADIAN) == "express"
    raw.close()


# -- two event loops ---------------------------------------------------------------------


def test_an_asyncio_app_outlives_its_first_event_loop(server: RedisServer, namespace: str) -> None:
    client = async_client(server.url)
    aio = aio_app(client, namespace)
    writer = sync_app(sync_client(server.url), namespace)

    async def first() -> None:
        await aio.app.start()
        await aio.app.admin.get_state(aio.Checkout)  # its client now belongs to this loop
        # Its connections end with this loop (the client stays this loop's).
        await client.connection_pool.disconnect()

    asyncio.run(first())

    async def second() -> None:
        version = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="r"
        )
        # Evaluation and waiting work under any loop: the App follows changes on threads.
        await aio.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        assert await aio.Checkout.create(CANADIAN) == "oneclick"
        # Its asyncio client cannot: a clear error instead of a hang or a crash.
        with pytest.raises(feats.FeatsError, match="another event loop"):
            await aio.app.admin.get_state(aio.Checkout)
        await aio.app.aclose()

    asyncio.run(second())


def test_an_asyncio_client_is_refused_on_a_second_loop_while_its_first_runs(
    server: RedisServer, namespace: str
) -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="first-loop", daemon=True)
    thread.start()
    client = async_client(server.url)
    aio = aio_app(client, namespace)

    async def first() -> None:
        await aio.app.start()
        await aio.app.admin.get_state(aio.Checkout)  # its client now belongs to this loop

    try:
        asyncio.run_coroutine_threadsafe(first(), loop).result(10)

        async def second() -> None:
            assert await aio.Checkout.create(CANADIAN) == "classic"  # evaluation works anywhere
            with pytest.raises(feats.FeatsError, match="another one, still running"):
                await aio.app.admin.get_state(aio.Checkout)

        asyncio.run(second())
        # The first loop keeps its client: it still answers there.
        asyncio.run_coroutine_threadsafe(aio.app.admin.get_state(aio.Checkout), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(aio.app.aclose(), loop).result(10)
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


# -- what a raising segment leaves in logs and explanations --------------------------------


def test_a_raising_segment_is_logged_by_type_and_a_masked_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = feats.App()

    class Email:
        def user(self, user: User) -> str:
            raise ValueError(
                "no consent from jane.doe@example.com for account 12345678901234 " + "x" * 200
            )

    @app.feature
    class Mailer:
        @app.default
        def none(self, user: User) -> str:
            return "none"

        def weekly(self, user: User) -> str:
            return "weekly"

    app.segment(Email)
    with app:
        app.admin.set_state(
            "Mailer",
            feats.FeatureState(rules={None: feats.Rollout("Email", {"weekly": 1})}),
            author="t",
            reason="",
        )
        # Declared with the decorator form, which mypy does not apply (python/mypy#3135).
        assert Mailer.find_implementation(User(1, "US")) == "none"  # type: ignore[attr-defined]
        reason = Mailer.explain(User(1, "US")).reason  # type: ignore[attr-defined]
    logged = " ".join(record.getMessage() for record in caplog.records)
    for text in (reason, logged):
        assert "ValueError" in text
        assert "jane.doe" not in text and "12345678901234" not in text
        assert "x" * 100 not in text
    assert threading.active_count() >= 1
