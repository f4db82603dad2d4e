"""Apps on MemoryStorage, sync and asyncio: propagation, history, rollback, conflicts, lifecycle."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import NamedTuple

import pytest

import feats
import feats.aio
from feats._memory import MemoryLog
from feats._stored import Loaded, parse_version
from tests.unit._models import (
    AcmeProcessor,
    PremiumProcessor,
    Segments,
    User,
    declare_payments,
    declare_payments_aio,
    declare_segments,
    payments_state,
    user,
)

PREMIUM = feats.FeatureState(rules={None: feats.Static("premium")})
APERTURE = feats.FeatureState(rules={None: feats.Static("aperture")})
CANADA = feats.FeatureState(segments=["Country"], rules={"CA": feats.Static("premium")})


def later(one: str, two: str) -> bool:
    return parse_version(two) > parse_version(one)


# -- sync ----------------------------------------------------------------------------------


class Peer(NamedTuple):
    app: feats.App
    processor: feats.Feature
    segments: Segments


def peer(storage: feats.MemoryStorage, start_timeout: float = 5) -> Peer:
    app = feats.App(storage=storage, start_timeout=start_timeout)
    segments = declare_segments(app)
    return Peer(app, declare_payments(app), segments)


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    storage = feats.MemoryStorage()
    one, two = peer(storage), peer(storage)
    with one.app, two.app:
        yield one, two


def test_apps_sharing_a_storage_follow_each_other(peers: tuple[Peer, Peer]) -> None:
    one, two = peers
    version = one.app.admin.set_state(one.processor, PREMIUM, author="ana", reason="outage")
    two.app.wait_for_version(version, timeout=5)
    assert isinstance(two.processor.create(user(1)), PremiumProcessor)
    assert two.processor.explain(user(1)).version == version
    assert two.app.version == version

    back = two.app.admin.set_state(two.processor, APERTURE, author="bo", reason="rollout")
    one.app.wait_for_version(back, timeout=5)
    assert one.processor.find_implementation(user(1)) == "aperture"
    assert later(version, back)


def test_the_writer_sees_its_own_write_at_once(peers: tuple[Peer, Peer]) -> None:
    one, _ = peers
    for state, expected in ((PREMIUM, "premium"), (APERTURE, "aperture"), (None, "acme")):
        version = one.app.admin.set_state(one.processor, state, author="ana", reason="r")
        # No wait_for_version: the admin applied its own acknowledged write.
        assert one.processor.find_implementation(user(1)) == expected
        assert one.processor.explain(user(1)).version == version


def test_history_oldest_first(peers: tuple[Peer, Peer]) -> None:
    one, two = peers
    assert one.app.admin.history(one.processor) == []
    assert one.app.admin.get_state(one.processor) is None
    before = datetime.now(UTC)
    versions = [
        one.app.admin.set_state(one.processor, PREMIUM, author="ana", reason="outage"),
        two.app.admin.set_state("PaymentProcessor", APERTURE, author="bo", reason="cheaper"),
        one.app.admin.set_state(one.processor, None, author="cy", reason="reset"),
    ]
    after = datetime.now(UTC)
    history = two.app.admin.history(two.processor)
    assert [change.version for change in history] == versions
    assert [change.author for change in history] == ["ana", "bo", "cy"]
    assert [change.reason for change in history] == ["outage", "cheaper", "reset"]
    assert [change.state for change in history] == [PREMIUM, APERTURE, None]
    assert all(change.feature == "PaymentProcessor" for change in history)
    assert all(before.timestamp() - 1 <= c.time.timestamp() <= after.timestamp() for c in history)
    assert all(change.time.tzinfo is not None for change in history)
    assert history == sorted(history, key=lambda change: parse_version(change.version))


def test_rollback_writes_a_new_version_equal_to_the_old(peers: tuple[Peer, Peer]) -> None:
    one, two = peers
    first = one.app.admin.set_state(
        one.processor, payments_state(one.segments), author="ana", reason="rules"
    )
    one.app.admin.set_state(one.processor, CANADA, author="bo", reason="premium in CA only")
    rolled = one.app.admin.rollback(one.processor, first, author="cy", reason="undo")
    assert later(first, rolled)
    history = one.app.admin.history(one.processor)
    assert [c.version for c in history][-1] == rolled
    assert len(history) == 3
    assert history[-1].state == history[0].state
    assert history[-1].author == "cy" and history[-1].reason == "undo"
    assert one.app.admin.get_state(one.processor) == history[0].state
    two.app.wait_for_version(rolled, timeout=5)
    assert two.processor.explain(user(1, "FR")).implementation == "acme"
    assert two.processor.explain(user(1, "FR")).version == rolled
    with pytest.raises(feats.NotFoundError, match="no version '1-0'"):
        one.app.admin.rollback(one.processor, "1-0", author="cy", reason="nothing there")


def test_rollback_to_a_reset(peers: tuple[Peer, Peer]) -> None:
    one, _ = peers
    one.app.admin.set_state(one.processor, APERTURE, author="ana", reason="aperture")
    reset = one.app.admin.set_state(one.processor, None, author="ana", reason="reset")
    one.app.admin.set_state(one.processor, PREMIUM, author="ana", reason="premium")
    one.app.admin.rollback(one.processor, reset, author="ana", reason="undo")
    assert one.app.admin.get_state(one.processor) is None
    assert one.processor.find_implementation(user(1)) == "acme"


def test_rollback_keeps_the_rollout_users(peers: tuple[Peer, Peer]) -> None:
    one, _ = peers
    rollout = feats.FeatureState(rules={None: feats.Rollout("UserId", {"aperture": 5, "acme": 95})})
    first = one.app.admin.set_state(one.processor, rollout, author="a", reason="5%")
    before = [one.processor.find_implementation(user(i)) for i in range(2_000)]
    one.app.admin.set_state(one.processor, PREMIUM, author="a", reason="all premium")
    one.app.admin.rollback(one.processor, first, author="a", reason="back to 5%")
    assert [one.processor.find_implementation(user(i)) for i in range(2_000)] == before


def test_expected_version(peers: tuple[Peer, Peer]) -> None:
    one, two = peers
    admin = one.app.admin
    first = admin.set_state(one.processor, PREMIUM, author="a", reason="r", expected_version="")
    with pytest.raises(feats.ConflictError) as caught:
        two.app.admin.set_state(
            two.processor, APERTURE, author="b", reason="r", expected_version=""
        )
    assert caught.value.current == first
    assert "PaymentProcessor" in str(caught.value)
    second = admin.set_state(
        one.processor, APERTURE, author="a", reason="r", expected_version=first
    )
    with pytest.raises(feats.ConflictError, match="expected version"):
        two.app.admin.set_state(
            two.processor, PREMIUM, author="b", reason="stale", expected_version=first
        )
    assert admin.get_state(one.processor) == APERTURE
    assert admin.get_version(one.processor) == second
    assert [c.version for c in admin.history(one.processor)] == [first, second]
    assert issubclass(feats.ConflictError, feats.FeatsError)


def test_a_write_replaces_an_unreadable_stored_state(peers: tuple[Peer, Peer]) -> None:
    one, _ = peers
    admin = one.app.admin
    first = admin.set_state(one.processor, PREMIUM, author="a", reason="r")
    storage = one.app.storage
    assert isinstance(storage, feats.MemoryStorage)
    storage.log.states["PaymentProcessor"] = "{not json"
    with pytest.raises(feats.CodecError):
        admin.get_state(one.processor)
    second = admin.set_state(
        one.processor, APERTURE, author="a", reason="repair", expected_version=first
    )
    assert later(first, second)
    assert admin.get_state(one.processor) == APERTURE


def test_with_starts_and_closes() -> None:
    app = feats.App(storage=feats.MemoryStorage(), start_timeout=5)
    assert app.status.state == "initializing"
    with app as started:
        assert started is app
        assert app.status.live
        assert app._follower is not None and app._follower.running
    assert not app._follower.running


def test_a_closed_app_can_start_again() -> None:
    storage = feats.MemoryStorage()
    one, two = peer(storage), peer(storage)
    with one.app, two.app:
        pass
    with one.app, two.app:
        version = two.app.admin.set_state(two.processor, PREMIUM, author="a", reason="r")
        one.app.wait_for_version(version, timeout=5)
        assert one.processor.find_implementation(user(1)) == "premium"


def test_wait_for_version_times_out() -> None:
    with (
        feats.App(storage=feats.MemoryStorage()) as app,
        pytest.raises(TimeoutError, match="not applied within"),
    ):
        app.wait_for_version("99999999999999-0", timeout=0.05)


class BlockedStorage(feats.MemoryStorage):
    """A storage that answers nothing to load() until released (a hung Redis)."""

    def __init__(self, log: MemoryLog | None = None) -> None:
        super().__init__(log=log)
        self.release = threading.Event()

    def load(self) -> Loaded:
        self.release.wait()
        return super().load()


class FailingStorage(feats.MemoryStorage):
    """A storage whose load() fails until released (Redis down)."""

    def __init__(self, log: MemoryLog | None = None) -> None:
        super().__init__(log=log)
        self.release = threading.Event()

    def load(self) -> Loaded:
        if not self.release.is_set():
            raise feats.StorageError("Redis load failed: connection refused")
        return super().load()


@pytest.mark.parametrize("storage_type", [BlockedStorage, FailingStorage])
def test_start_never_hangs(storage_type: type[BlockedStorage | FailingStorage]) -> None:
    storage = storage_type()
    writer = peer(storage)
    version = writer.app.admin.set_state(writer.processor, PREMIUM, author="a", reason="r")
    reader = peer(storage, start_timeout=0.2)
    started = time.monotonic()
    try:
        reader.app.start()
        assert time.monotonic() - started < 3
        # Defaults answer, and the status says why.
        assert isinstance(reader.processor.create(user(1)), AcmeProcessor)
        assert reader.processor.explain(user(1)).reason == "no configuration: the default answers"
        status = reader.app.status
        assert status.state != "live"
        if storage_type is FailingStorage:
            assert status.state == "stale"
            assert status.error is not None and "connection refused" in status.error
        else:
            assert status.state == "initializing"
        # The App keeps trying: once storage answers, the configuration arrives.
        storage.release.set()
        reader.app.wait_for_version(version, timeout=10)
        assert reader.processor.find_implementation(user(1)) == "premium"
        assert reader.app.status.state == "live"
    finally:
        storage.release.set()
        reader.app.close()


def test_an_unstarted_app_answers_defaults() -> None:
    storage = feats.MemoryStorage()
    writer = peer(storage)
    writer.app.admin.set_state(writer.processor, PREMIUM, author="a", reason="r")
    reader = peer(storage)
    assert reader.processor.find_implementation(user(1)) == "acme"


# -- asyncio -------------------------------------------------------------------------------


class AioPeer(NamedTuple):
    app: feats.aio.App
    processor: feats.aio.Feature
    segments: Segments


def aio_peer(storage: feats.aio.MemoryStorage, start_timeout: float = 5) -> AioPeer:
    app = feats.aio.App(storage=storage, start_timeout=start_timeout)
    segments = declare_segments(app)
    return AioPeer(app, declare_payments_aio(app), segments)


@pytest.fixture
async def aio_peers() -> AsyncIterator[tuple[AioPeer, AioPeer]]:
    storage = feats.aio.MemoryStorage()
    one, two = aio_peer(storage), aio_peer(storage)
    async with one.app, two.app:
        yield one, two


async def test_aio_apps_sharing_a_storage_follow_each_other(
    aio_peers: tuple[AioPeer, AioPeer],
) -> None:
    one, two = aio_peers
    version = await one.app.admin.set_state(one.processor, PREMIUM, author="ana", reason="r")
    assert one.processor.find_implementation(user(1)) == "premium"  # at once, for the writer
    await two.app.wait_for_version(version, timeout=5)
    assert isinstance(await two.processor.create(user(1)), PremiumProcessor)
    assert two.processor.explain(user(1)).version == version
    back = await two.app.admin.set_state(two.processor, APERTURE, author="bo", reason="r")
    await one.app.wait_for_version(back, timeout=5)
    assert one.processor.find_implementation(user(1)) == "aperture"


async def test_aio_history_rollback_and_conflicts(aio_peers: tuple[AioPeer, AioPeer]) -> None:
    one, two = aio_peers
    admin = one.app.admin
    assert await admin.history(one.processor) == []
    assert await admin.get_state(one.processor) is None
    first = await admin.set_state(
        one.processor, PREMIUM, author="ana", reason="outage", expected_version=""
    )
    second = await admin.set_state(
        one.processor, CANADA, author="bo", reason="CA only", expected_version=first
    )
    with pytest.raises(feats.ConflictError):
        await two.app.admin.set_state(
            two.processor, APERTURE, author="cy", reason="stale", expected_version=first
        )
    rolled = await admin.rollback(one.processor, first, author="cy", reason="undo")
    history = await two.app.admin.history(two.processor)
    assert [c.version for c in history] == [first, second, rolled]
    assert [c.author for c in history] == ["ana", "bo", "cy"]
    assert [c.reason for c in history] == ["outage", "CA only", "undo"]
    assert history[2].state == history[0].state == PREMIUM
    assert await admin.get_state(one.processor) == PREMIUM
    assert await admin.get_version(one.processor) == rolled
    await two.app.wait_for_version(rolled, timeout=5)
    assert two.processor.find_implementation(user(1, "FR")) == "premium"


async def test_aio_async_implementations_are_awaited() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    declare_segments(app)

    class PaymentProcessor:
        @app.default
        async def acme(self, user: User) -> AcmeProcessor:
            await asyncio.sleep(0)
            return AcmeProcessor()

        def premium(self, user: User) -> PremiumProcessor:
            return PremiumProcessor()

    def AsyncFlag(user: User) -> bool:
        return False

    async def SlowFlag(user: User) -> bool:
        await asyncio.sleep(0)
        return True

    processor = app.feature(PaymentProcessor)
    slow = app.boolean(SlowFlag)
    flag = app.boolean(AsyncFlag)
    async with app:
        assert isinstance(await processor.create(user(1)), AcmeProcessor)
        assert await slow.is_enabled(user(1)) is True
        assert await flag.is_enabled(user(1)) is False
        await app.admin.set_state(processor, PREMIUM, author="a", reason="r")
        await app.admin.set_state(
            slow, feats.FeatureState(rules={None: feats.Static("disabled")}), author="a", reason="r"
        )
        assert isinstance(await processor.create(user(1)), PremiumProcessor)
        assert await slow.is_enabled(user(1)) is False


async def test_aio_start_and_aclose() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    assert await app.start() is app
    assert app.status.state == "live"
    assert app._follower is not None and app._follower.running
    await app.aclose()
    assert not app._follower.running
    await app.aclose()  # twice is fine


async def test_aio_a_closed_app_can_start_again() -> None:
    storage = feats.aio.MemoryStorage()
    one, two = aio_peer(storage), aio_peer(storage)
    async with one.app:
        pass
    async with one.app, two.app:
        version = await two.app.admin.set_state(two.processor, PREMIUM, author="a", reason="r")
        await one.app.wait_for_version(version, timeout=5)
        assert one.processor.find_implementation(user(1)) == "premium"


async def test_aio_wait_for_version_times_out() -> None:
    async with feats.aio.App(storage=feats.aio.MemoryStorage()) as app:
        with pytest.raises(TimeoutError, match="not applied within"):
            await app.wait_for_version("99999999999999-0", timeout=0.05)


class AioBlockedStorage(feats.aio.MemoryStorage):
    """The asyncio App follows changes on its storage's sync follower: that one hangs."""

    def __init__(self) -> None:
        super().__init__()
        self.hung = BlockedStorage(self.log)
        self.release = self.hung.release

    def follower(self) -> feats.MemoryStorage:
        return self.hung


class AioFailingStorage(feats.aio.MemoryStorage):
    def __init__(self) -> None:
        super().__init__()
        self.failing = FailingStorage(self.log)
        self.release = self.failing.release

    def follower(self) -> feats.MemoryStorage:
        return self.failing


@pytest.mark.parametrize("storage_type", [AioBlockedStorage, AioFailingStorage])
async def test_aio_start_never_hangs(
    storage_type: type[AioBlockedStorage | AioFailingStorage],
) -> None:
    storage = storage_type()
    writer = aio_peer(storage)
    version = await writer.app.admin.set_state(writer.processor, PREMIUM, author="a", reason="r")
    reader = aio_peer(storage, start_timeout=0.2)
    started = time.monotonic()
    try:
        await reader.app.start()
        assert time.monotonic() - started < 3
        assert isinstance(await reader.processor.create(user(1)), AcmeProcessor)
        status = reader.app.status
        assert status.state == ("stale" if storage_type is AioFailingStorage else "initializing")
        storage.release.set()
        await reader.app.wait_for_version(version, timeout=10)
        assert reader.processor.find_implementation(user(1)) == "premium"
        assert reader.app.status.state == "live"
    finally:
        storage.release.set()
        await reader.app.aclose()


async def test_aio_close_while_load_hangs_forever() -> None:
    storage = AioBlockedStorage()
    app = feats.aio.App(storage=storage, start_timeout=0.1)
    await app.start()
    assert app.status.state == "initializing"
    await asyncio.wait_for(app.aclose(), 5)
