"""What the fault scenarios share: the shop's Checkout, Apps wired to a server, evaluation probes.

Every scenario follows one shape: an App follows a namespace while a probe evaluates it
without pause; a fault is injected; the probe must see no exception and the last good
configuration answering; status and explain() must say stale; after the fault the next
change must reach the App within a bound, and the time it took is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from redis.backoff import ExponentialBackoff

import feats
import feats.aio
from feats._base import AppBase
from feats._cli._shop import User as User
from feats._cli._shop import declare as declare_shop
from feats._handles import FeatureHandleBase, SegmentHandle

F = TypeVar("F", bound=FeatureHandleBase)
B = TypeVar("B", bound=FeatureHandleBase)
A = TypeVar("A", bound=AppBase[Any, Any])

BLOCK_MS = 500
"""Short BLOCKs keep the tests quick: the tail's socket timeout is then 1.5 s."""
RECOVERY_BOUND = 15.0
"""Seconds within which the next change must reach an App after a fault ends (generous: the
measured figures, printed at the end of the run, are what the README quotes)."""
IMPLEMENTATIONS = ("express", "oneclick", "classic")
COUNTRIES = ("CA", "US", "GB")


CANADIAN = User(7, "CA")
AMERICAN = User(8, "US")


@dataclass(frozen=True)
class Model(Generic[A, F]):
    app: A
    Checkout: F
    Country: SegmentHandle
    UserId: SegmentHandle


SyncModel = Model[feats.App, feats.Feature]
AioModel = Model[feats.aio.App, feats.aio.Feature]


def declare(app: AppBase[F, B]) -> tuple[F, SegmentHandle, SegmentHandle]:
    """A Country and a UserId segment, and Checkout with three implementations: the shop's
    (feats/_cli/_shop.py), Country's OPTIONS being CA, US and GB."""
    shop = declare_shop(app, ("Country", "UserId", "Checkout"), country_options=COUNTRIES)
    return shop.Checkout, shop.Country, shop.UserId


def canada_gets(implementation: str) -> feats.FeatureState:
    """Canadians get ``implementation``, everyone else the default."""
    return feats.FeatureState(
        segments=["Country"],
        rules={("CA",): feats.Static(implementation), None: feats.Static("classic")},
    )


def nth_state(n: int) -> feats.FeatureState:
    return canada_gets(IMPLEMENTATIONS[n % 2])


def _careful(kwargs: dict[str, Any], retry: Any) -> dict[str, Any]:
    """A client as a careful user configures one: socket timeouts, a few quick retries."""
    return {
        "socket_timeout": 2.0,
        "socket_connect_timeout": 2.0,
        "retry": retry,
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        **kwargs,
    }


_clients: list[redis.Redis | redis.asyncio.Redis] = []
"""Every client the helpers below made during the current test: ``close_clients`` closes
them when it ends (a socket left to the garbage collector is a ResourceWarning, an error)."""


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    retry = redis.retry.Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
    client = redis.Redis.from_url(url, **_careful(kwargs, retry))
    _clients.append(client)
    return client


def async_client(url: str, **kwargs: Any) -> redis.asyncio.Redis:
    retry = redis.asyncio.retry.Retry(ExponentialBackoff(cap=0.5, base=0.05), 3)
    client = redis.asyncio.Redis.from_url(url, **_careful(kwargs, retry))
    _clients.append(client)
    return client


async def close_clients() -> None:
    """Close the clients this test made, on the event loop the fixture runs on."""
    while _clients:
        client = _clients.pop()
        if isinstance(client, redis.asyncio.Redis):
            # One used on another loop (a thread's) cannot be closed from this one: that
            # loop's own aclose() was the test's job.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), 5)
        else:
            client.close()


def sync_app(
    client: Any, namespace: str, *, storage: dict[str, Any] | None = None, **kwargs: Any
) -> SyncModel:
    """A sync App on ``client`` (``storage``: RedisStorage options), the model declared."""
    params: dict[str, Any] = {"block_ms": BLOCK_MS, "start_timeout": 5.0, **kwargs}
    options = {"block_ms": params["block_ms"], **(storage or {})}
    app = feats.App(storage=feats.RedisStorage(client, namespace, **options), **params)
    return SyncModel(app, *declare(app))


def aio_app(
    client: Any, namespace: str, *, storage: dict[str, Any] | None = None, **kwargs: Any
) -> AioModel:
    params: dict[str, Any] = {"block_ms": BLOCK_MS, "start_timeout": 5.0, **kwargs}
    options = {"block_ms": params["block_ms"], **(storage or {})}
    app = feats.aio.App(storage=feats.aio.RedisStorage(client, namespace, **options), **params)
    return AioModel(app, *declare(app))


@dataclass
class Probe:
    """Counts evaluations, exceptions and answers other than the expected one."""

    expected: str | None = None
    evaluations: int = 0
    exceptions: list[BaseException] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def check(self, answer: str) -> None:
        self.evaluations += 1
        if self.expected is not None and answer != self.expected:
            self.mismatches.append(answer)

    def assert_clean(self) -> None:
        assert not self.exceptions, self.exceptions[:3]
        assert not self.mismatches, self.mismatches[:10]
        assert self.evaluations > 0


@contextlib.contextmanager
def probing(model: SyncModel, user: User = CANADIAN) -> Iterator[Probe]:
    """Evaluate ``model.Checkout`` on a thread until the block ends (create, find, explain)."""
    probe = Probe()
    stop = threading.Event()
    checkout = model.Checkout

    def run() -> None:
        while not stop.is_set():
            try:
                answer = checkout.create(user)
                assert checkout.find_implementation(user) in IMPLEMENTATIONS
                checkout.explain(user)
                probe.check(answer)
            except BaseException as error:
                probe.exceptions.append(error)
            stop.wait(0.001)

    thread = threading.Thread(target=run, name="probe", daemon=True)
    thread.start()
    try:
        yield probe
    finally:
        stop.set()
        thread.join(5)


@contextlib.asynccontextmanager
async def aio_probing(model: AioModel, user: User = CANADIAN) -> AsyncIterator[Probe]:
    """The asyncio probe: a task evaluating between every other task's turns."""
    probe = Probe()
    evaluated = asyncio.Event()
    checkout = model.Checkout

    async def run() -> None:
        while True:
            try:
                answer = await checkout.create(user)
                assert checkout.find_implementation(user) in IMPLEMENTATIONS
                checkout.explain(user)
                probe.check(answer)
                evaluated.set()
            except asyncio.CancelledError:
                raise
            except BaseException as error:
                probe.exceptions.append(error)
            await asyncio.sleep(0.001)

    task = asyncio.create_task(run(), name="probe")
    # The App follows changes on threads of its own, so the block may never await long
    # enough for the probe to run: it evaluates at least once before the block starts.
    await asyncio.wait_for(evaluated.wait(), 5)
    try:
        yield probe
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def poll(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.01
) -> float:
    """Wait (bounded) until ``condition()`` holds; returns how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - started


async def apoll(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.01
) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - started


def assert_stale(model: SyncModel | AioModel, user: User = CANADIAN) -> None:
    status = model.app.status
    assert status.state == "stale", status
    assert status.error, status
    assert status.lag is not None and status.lag >= 0, status
    assert model.Checkout.explain(user).stale


def assert_live(model: SyncModel | AioModel, user: User = CANADIAN) -> None:
    status = model.app.status
    assert status.state == "live", status
    assert status.lag == 0.0, status
    assert not model.Checkout.explain(user).stale
