"""RedisStorage with clients that decode responses and clients that don't, sync and asyncio."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis
import redis.asyncio

import feats
import feats.aio

from ._shop import canada_premium, declare, rollout_and_experiment, user

pytestmark = pytest.mark.redis
decoding = pytest.mark.parametrize("decode", [True, False])


@decoding
async def test_aio_admin_and_a_following_app(redis_url: str, namespace: str, decode: bool) -> None:
    writer_client = redis.asyncio.Redis.from_url(redis_url, decode_responses=decode)
    reader_client = redis.asyncio.Redis.from_url(redis_url, decode_responses=not decode)
    writer = feats.aio.App(storage=feats.aio.RedisStorage(writer_client, namespace))
    reader = feats.aio.App(storage=feats.aio.RedisStorage(reader_client, namespace))
    shop, follower = declare(writer), declare(reader)
    canadian, american = user(2, "CA"), user(1, "US")
    async with writer, reader:
        admin = writer.admin
        assert await admin.get_state(shop.PaymentProcessor) is None
        assert await admin.history(shop.PaymentProcessor) == []

        first = await admin.set_state(
            shop.PaymentProcessor,
            canada_premium(shop),
            author="ann",
            reason="CA outage",
            expected_version="",
        )
        assert await admin.get_state(shop.PaymentProcessor) == canada_premium(shop)
        await reader.wait_for_version(first, timeout=5)
        assert await follower.PaymentProcessor.create(canadian) == "premium"

        states = rollout_and_experiment(shop)
        second = await admin.set_state(
            shop.PaymentProcessor,
            states["PaymentProcessor"],
            author="bob",
            reason="rollout",
            expected_version=first,
        )
        with pytest.raises(feats.ConflictError) as conflict:
            await admin.set_state(
                shop.PaymentProcessor, None, author="eve", reason="stale", expected_version=first
            )
        assert conflict.value.current == second
        await reader.wait_for_version(second, timeout=5)
        assert follower.PaymentProcessor.explain(american).reason.startswith(
            "rule Country=US: rollout by UserId"
        )

        back = await admin.rollback(shop.PaymentProcessor, first, author="ann", reason="undo")
        history = await admin.history(shop.PaymentProcessor)
        assert [change.version for change in history] == [first, second, back]
        assert [change.author for change in history] == ["ann", "bob", "ann"]
        assert [change.reason for change in history] == ["CA outage", "rollout", "undo"]
        assert history[2].state == history[0].state == canada_premium(shop)
        assert history[0].time <= history[1].time <= history[2].time
        await reader.wait_for_version(back, timeout=5)
        assert follower.PaymentProcessor.explain(american).implementation == "acme"
        assert follower.PaymentProcessor.explain(canadian).version == back
        # The follower's admin reads the same history through the other decoding.
        assert await reader.admin.history(follower.PaymentProcessor) == history
        assert reader.status.live and writer.status.live
        assert reader.status.skipped == writer.status.skipped == 0
    await writer_client.aclose()
    await reader_client.aclose()


@decoding
def test_sync_admin_and_a_following_app(redis_url: str, namespace: str, decode: bool) -> None:
    writer_client = redis.Redis.from_url(redis_url, decode_responses=decode)
    reader_client = redis.Redis.from_url(redis_url, decode_responses=not decode)
    writer = feats.App(storage=feats.RedisStorage(writer_client, namespace))
    reader = feats.App(storage=feats.RedisStorage(reader_client, namespace))
    shop, follower = declare(writer), declare(reader)
    canadian, american = user(2, "CA"), user(1, "US")
    with writer, reader:
        admin = writer.admin
        assert admin.get_state(shop.PaymentProcessor) is None
        first = admin.set_state(
            shop.PaymentProcessor,
            canada_premium(shop),
            author="ann",
            reason="CA outage",
            expected_version="",
        )
        reader.wait_for_version(first, timeout=5)
        assert follower.PaymentProcessor.create(canadian) == "premium"
        with pytest.raises(feats.ConflictError):
            admin.set_state(
                shop.PaymentProcessor, None, author="eve", reason="stale", expected_version=""
            )
        second = admin.set_state(
            shop.ImageProcessing,
            rollout_and_experiment(shop)["ImageProcessing"],
            author="ops",
            reason="DDOS",
        )
        reader.wait_for_version(second, timeout=5)
        assert not follower.ImageProcessing.is_enabled(american)
        # A rollback to the state it has changes nothing, so it writes nothing.
        same = admin.rollback(shop.PaymentProcessor, first, author="ann", reason="same again")
        assert same == first
        reset = admin.set_state(shop.PaymentProcessor, None, author="ann", reason="reset")
        back = admin.rollback(shop.PaymentProcessor, first, author="ann", reason="back again")
        reader.wait_for_version(back, timeout=5)
        history = admin.history(shop.PaymentProcessor)
        assert [change.version for change in history] == [first, reset, back]
        assert reader.admin.history(follower.PaymentProcessor) == history
        assert admin.get_state(shop.PaymentProcessor) == canada_premium(shop)
        assert follower.PaymentProcessor.explain(canadian).version == back
        assert reader.status.live and reader.status.skipped == 0
    writer_client.close()
    reader_client.close()


def test_a_full_connection_pool_says_so_when_writing(redis_url: str, namespace: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, max_connections=1)
    client = redis.Redis(connection_pool=pool)
    app = feats.App(storage=feats.RedisStorage(client, namespace))
    shop = declare(app)
    held = cast(Any, pool).get_connection()  # redis-py leaves it untyped
    try:
        with pytest.raises(feats.StorageError) as raised:
            app.admin.set_state(shop.PaymentProcessor, canada_premium(shop), author="t", reason="")
        assert "connection pool is exhausted" in str(raised.value)
        assert "max_connections" in str(raised.value)
        assert "read failed" not in str(raised.value)
    finally:
        pool.release(held)
    assert app.admin.history(shop.PaymentProcessor) == []  # nothing written
    client.close()
    pool.disconnect()


async def test_a_full_asyncio_connection_pool_says_so_when_writing(
    redis_url: str, namespace: str
) -> None:
    pool = redis.asyncio.ConnectionPool.from_url(redis_url, max_connections=1)
    client = redis.asyncio.Redis(connection_pool=pool)
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, namespace))
    shop = declare(app)
    held = await cast(Any, pool).get_connection()
    try:
        with pytest.raises(feats.StorageError) as raised:
            await app.admin.set_state(
                shop.PaymentProcessor, canada_premium(shop), author="t", reason=""
            )
        assert "connection pool is exhausted" in str(raised.value)
    finally:
        await pool.release(held)
    assert await app.admin.history(shop.PaymentProcessor) == []
    await client.aclose()
    await pool.disconnect()


def test_commands_sent_as_one_buffer_answer_in_order_and_an_error_spoils_no_later_reply(
    redis_url: str, namespace: str
) -> None:
    from feats._io import sent_as_one_buffer

    client = redis.Redis.from_url(redis_url)
    key, text = f"{namespace}:n", f"{namespace}:text"
    client.set(text, "not a number")
    big = "x" * 200_000
    replies = sent_as_one_buffer(client, [("SET", key, big), ("STRLEN", key), ("PING",)])
    assert replies == [b"OK", 200_000, b"PONG"]
    with pytest.raises(redis.ResponseError):
        sent_as_one_buffer(client, [("INCR", text), ("PING",), ("ECHO", "late")])
    # The connection that had replies left unread was dropped, not reused.
    assert sent_as_one_buffer(client, [("ECHO", "next")]) == [b"next"]
    assert client.echo("plain") == b"plain"
    client.delete(key, text)
    client.close()
