"""RedisStorage on fakeredis, sync and asyncio, with decode_responses True and False.

The write and load paths are Lua scripts, so fakeredis needs its ``lua`` extra (lupa).
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fakeredis
import pytest

import feats
import feats.aio
from feats._exposures import exposures_in
from feats._layout import Keys
from feats._stored import RawEntry
from tests.unit._models import (
    PremiumProcessor,
    declare_payments,
    declare_payments_aio,
    declare_segments,
    payments_state,
    user,
)

PREMIUM = feats.FeatureState(rules={None: feats.Static("premium")})
EXPERIMENT = feats.FeatureState(
    rules={None: feats.Experiment("UserId", {"acme": 1, "premium": 1, "aperture": 1})}
)
BLOCK_MS = 100

decode = pytest.mark.parametrize("decode_responses", [True, False], ids=["str", "bytes"])


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def namespace() -> str:
    return f"unit-{uuid.uuid4().hex[:8]}"


def sync_app(server: fakeredis.FakeServer, namespace: str, decode_responses: bool) -> feats.App:
    client = fakeredis.FakeRedis(server=server, decode_responses=decode_responses)
    storage = feats.RedisStorage(redis=client, namespace=namespace, block_ms=BLOCK_MS)
    return feats.App(storage=storage, start_timeout=5, block_ms=BLOCK_MS)


def aio_app(server: fakeredis.FakeServer, namespace: str, decode_responses: bool) -> feats.aio.App:
    client = fakeredis.FakeAsyncRedis(server=server, decode_responses=decode_responses)
    # fakeredis's asyncio client has no sync twin feats could make: the App's tail gets one.
    tail = fakeredis.FakeRedis(server=server, decode_responses=decode_responses)
    storage = feats.aio.RedisStorage(
        redis=client, namespace=namespace, block_ms=BLOCK_MS, tail_redis=tail
    )
    return feats.aio.App(storage=storage, start_timeout=5, block_ms=BLOCK_MS)


def keys_of(server: fakeredis.FakeServer) -> set[str]:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    return {str(key) for key in client.keys("*")}


def exposures(server: fakeredis.FakeServer, namespace: str) -> list[list[Any]]:
    client = fakeredis.FakeRedis(server=server, decode_responses=True)
    found: list[list[Any]] = []
    for entry_id, fields in client.xrange(Keys(namespace).exposures) or []:
        assert fields is not None
        entry = RawEntry(str(entry_id), {str(k): str(v) for k, v in fields.items()})
        found += [list(exposure) for exposure in exposures_in(entry)]
    return found


# -- sync ----------------------------------------------------------------------------------


@pytest.fixture
def sync_pair(
    server: fakeredis.FakeServer, namespace: str, request: pytest.FixtureRequest
) -> Iterator[tuple[feats.App, feats.App]]:
    decode_responses: bool = request.param
    writer = sync_app(server, namespace, decode_responses)
    reader = sync_app(server, namespace, not decode_responses)
    with writer, reader:
        yield writer, reader


pair = pytest.mark.parametrize("sync_pair", [True, False], ids=["str", "bytes"], indirect=True)


@pair
def test_sync_admin_round_trip(
    sync_pair: tuple[feats.App, feats.App], server: fakeredis.FakeServer, namespace: str
) -> None:
    writer, _ = sync_pair
    segments = declare_segments(writer)
    processor = declare_payments(writer)
    state = payments_state(segments)
    assert writer.admin.get_state(processor) is None
    assert writer.admin.history(processor) == []

    first = writer.admin.set_state(processor, state, author="ana", reason="rules")
    stored = writer.admin.get_state(processor)
    assert stored is not None
    assert stored.segments == ("Country",) and stored.rules[("CA",)] == feats.Static("premium")
    second = writer.admin.set_state(
        processor, PREMIUM, author="bo", reason="all premium", expected_version=first
    )
    with pytest.raises(feats.ConflictError):
        writer.admin.set_state(processor, None, author="cy", reason="x", expected_version=first)
    rolled = writer.admin.rollback(processor, first, author="cy", reason="undo")

    history = writer.admin.history(processor)
    assert [c.version for c in history] == [first, second, rolled]
    assert [(c.author, c.reason) for c in history] == [
        ("ana", "rules"),
        ("bo", "all premium"),
        ("cy", "undo"),
    ]
    assert history[2].state == history[0].state == stored
    assert writer.admin.get_state(processor) == stored
    assert writer.storage.get_epoch() is not None

    prefix = f"feats:{{{namespace}}}:"
    assert keys_of(server) and all(key.startswith(prefix) for key in keys_of(server))


@pair
def test_sync_app_follows_a_change(sync_pair: tuple[feats.App, feats.App]) -> None:
    writer, reader = sync_pair
    declare_segments(writer)
    declare_segments(reader)
    writing, reading = declare_payments(writer), declare_payments(reader)
    assert reading.find_implementation(user(1)) == "acme"
    version = writer.admin.set_state(writing, PREMIUM, author="ana", reason="outage")
    assert writing.find_implementation(user(1)) == "premium"
    reader.wait_for_version(version, timeout=5)
    assert isinstance(reading.create(user(1)), PremiumProcessor)
    assert reading.explain(user(1)).version == version
    assert reader.status.state == "live"
    reset = writer.admin.set_state(writing, None, author="ana", reason="over")
    reader.wait_for_version(reset, timeout=5)
    assert reading.find_implementation(user(1)) == "acme"


@decode
def test_sync_app_loads_what_is_there(
    server: fakeredis.FakeServer, namespace: str, decode_responses: bool
) -> None:
    writer = sync_app(server, namespace, decode_responses)
    processor = declare_payments(writer)
    declare_segments(writer)
    version = writer.admin.set_state(processor, PREMIUM, author="a", reason="r")
    reader = sync_app(server, namespace, decode_responses)
    reading = declare_payments(reader)
    with reader:
        assert reader.version == version
        assert reading.find_implementation(user(1)) == "premium"


@decode
def test_sync_exposures_are_written(
    server: fakeredis.FakeServer, namespace: str, decode_responses: bool
) -> None:
    app = sync_app(server, namespace, decode_responses)
    declare_segments(app)
    processor = declare_payments(app)
    with app:
        version = app.admin.set_state(processor, EXPERIMENT, author="a", reason="r")
        chosen = [processor.find_implementation(user(i)) for i in range(3)]
        for i in range(3):
            processor.create(user(i))
    # Stored grouped per implementation: compared without order.
    assert sorted(exposures(server, namespace)) == sorted(
        ["PaymentProcessor", chosen[i], str(i), version] for i in range(3)
    )


# -- asyncio -------------------------------------------------------------------------------


@pytest.fixture
async def aio_pair(
    server: fakeredis.FakeServer, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[feats.aio.App, feats.aio.App]]:
    decode_responses: bool = request.param
    writer = aio_app(server, namespace, decode_responses)
    reader = aio_app(server, namespace, not decode_responses)
    async with writer, reader:
        yield writer, reader


aio_pair_param = pytest.mark.parametrize(
    "aio_pair", [True, False], ids=["str", "bytes"], indirect=True
)


@aio_pair_param
async def test_aio_admin_round_trip(aio_pair: tuple[feats.aio.App, feats.aio.App]) -> None:
    writer, _ = aio_pair
    segments = declare_segments(writer)
    processor = declare_payments_aio(writer)
    state = payments_state(segments)
    assert await writer.admin.get_state(processor) is None
    first = await writer.admin.set_state(processor, state, author="ana", reason="rules")
    stored = await writer.admin.get_state(processor)
    assert stored is not None and stored.rules[None] == feats.Static("acme")
    second = await writer.admin.set_state(
        processor, PREMIUM, author="bo", reason="all premium", expected_version=first
    )
    with pytest.raises(feats.ConflictError):
        await writer.admin.set_state(processor, None, author="x", reason="x", expected_version="")
    rolled = await writer.admin.rollback(processor, first, author="cy", reason="undo")
    history = await writer.admin.history(processor)
    assert [c.version for c in history] == [first, second, rolled]
    assert [c.author for c in history] == ["ana", "bo", "cy"]
    assert history[2].state == stored
    assert await writer.storage.get_epoch() is not None


@aio_pair_param
async def test_aio_app_follows_a_change(aio_pair: tuple[feats.aio.App, feats.aio.App]) -> None:
    writer, reader = aio_pair
    declare_segments(writer)
    declare_segments(reader)
    writing, reading = declare_payments_aio(writer), declare_payments_aio(reader)
    version = await writer.admin.set_state(writing, PREMIUM, author="ana", reason="outage")
    await reader.wait_for_version(version, timeout=5)
    assert isinstance(await reading.create(user(1)), PremiumProcessor)
    assert reading.explain(user(1)).version == version
    assert reader.status.state == "live"


@decode
async def test_aio_exposures_are_written(
    server: fakeredis.FakeServer, namespace: str, decode_responses: bool
) -> None:
    app = aio_app(server, namespace, decode_responses)
    declare_segments(app)
    processor = declare_payments_aio(app)
    async with app:
        version = await app.admin.set_state(processor, EXPERIMENT, author="a", reason="r")
        chosen = processor.find_implementation(user(7))
        await processor.used_implementation(chosen, user(7))
    assert exposures(server, namespace) == [["PaymentProcessor", chosen, "7", version]]


@decode
async def test_sync_writer_aio_reader(
    server: fakeredis.FakeServer, namespace: str, decode_responses: bool
) -> None:
    writer = sync_app(server, namespace, decode_responses)
    writing = declare_payments(writer)
    reader = aio_app(server, namespace, decode_responses)
    reading = declare_payments_aio(reader)
    async with reader:
        version = writer.admin.set_state(writing, PREMIUM, author="a", reason="r")
        await reader.wait_for_version(version, timeout=5)
        assert reading.find_implementation(user(1)) == "premium"
