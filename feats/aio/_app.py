"""The asyncio App: the core with a tail task, so evaluations never wait on the network."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from types import TracebackType
from typing import Any

from .._base import AppBase
from .._catalog import CatalogPublisher
from .._handles import FeatureHandleBase
from .._layout import encode_exposures
from .._stored import version_at_least
from .._tail import CheckEpoch, Load, Read, Reseed, Tail, Wait
from ._admin import Admin
from ._storage import MemoryStorage, Storage

__all__ = ["App", "Boolean", "Feature"]

logger = logging.getLogger("feats")

_started: weakref.WeakSet[App] = weakref.WeakSet()
FORKED = (
    "this process was forked after start(): the tail task stayed with the parent's event "
    "loop; call `await app.start()` in the child to follow changes again"
)


class Feature(FeatureHandleBase):
    """A declared feature of an asyncio App; ``async def`` implementations are awaited."""

    __slots__ = ()

    async def create(self, *args: Any) -> Any:
        """Call the implementation configured for these inputs (records experiment exposures)."""
        if len(args) != self._arity:
            self._arguments(args)
        name = self._core.compiled[self.name].use(args)
        # Most features have no async implementation: an empty set skips the lookup.
        if self._awaited and name in self._awaited:
            return await self._impls[name](*args)
        return self._impls[name](*args)

    async def used_implementation(self, implementation: str, *args: Any) -> None:
        """Record that these inputs used ``implementation`` (chosen by find_implementation)."""
        self._record_use(implementation, args)


class Boolean(Feature):
    """A declared on/off feature of an asyncio App."""

    __slots__ = ()

    async def is_enabled(self, *args: Any) -> bool:
        # create() inlined: one coroutine per call instead of two.
        if len(args) != self._arity:
            self._arguments(args)
        name = self._core.compiled[self.name].use(args)
        # "enabled" and "disabled" are constants: answer them without a call.
        if name == "enabled":
            return True
        if name == "disabled":
            return False
        if self._awaited and name in self._awaited:
            return bool(await self._impls[name](*args))
        return bool(self._impls[name](*args))


class App(AppBase[Feature, Boolean]):
    """A feats App whose tail is an asyncio task; evaluations never touch the network."""

    _allow_async = True
    _feature_handle = Feature
    _boolean_handle = Boolean

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        start_timeout: float = 5.0,
        block_ms: int = 2_000,
        flush_interval: float = 0.05,
        exposure_capacity: int = 100_000,
        reseed: bool = True,
    ) -> None:
        """``reseed``: when the store lost configuration this App still serves (Redis
        restarted empty, a failover lost writes), write it back from the snapshot; with
        False, or if the ACL forbids it, keep serving it and report it as ``diverged``."""
        super().__init__(exposure_capacity=exposure_capacity)
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.start_timeout = start_timeout
        self.reseed = reseed
        self.flush_interval = flush_interval
        self._block_ms = block_ms
        self.admin = Admin(self)
        self._catalog = CatalogPublisher(self.registry)
        self._running = False
        self._tasks: list[asyncio.Task[None]] = []
        self._first_load = asyncio.Event()
        self._advanced = asyncio.Condition()
        self._forked = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> App:
        """Load configuration (waiting at most ``start_timeout``) and start following it.

        If storage does not answer in time, defaults answer and the tail keeps retrying.
        """
        if self._running:
            return self
        self._running = True
        if self._core.state == "closed":
            self._core.set_state("initializing")
        self._forked = False
        self._first_load = asyncio.Event()
        self._advanced = asyncio.Condition()
        _started.add(self)
        tail = Tail(self._core, block_ms=self.storage.block_ms(self._block_ms), reseed=self.reseed)
        self._tasks = [
            asyncio.create_task(self._tail_loop(tail), name="feats-tail"),
            asyncio.create_task(self._flush_loop(), name="feats-exposures"),
        ]
        try:
            await asyncio.wait_for(self._first_load.wait(), self.start_timeout)
        except TimeoutError:
            logger.warning(
                "feats: no configuration after %.1fs (%s); serving defaults and retrying",
                self.start_timeout,
                self._core.error or "no answer",
            )
        return self

    async def aclose(self) -> None:
        """Stop following changes and flush what exposures remain."""
        if not self._running:
            return
        self._running = False
        _started.discard(self)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # Python 3.11's asyncio.wait_for, which redis-py sends commands through, swallows
            # a cancellation that lands as the send completes: cancel until the task ends.
            while not task.done():
                await asyncio.wait({task}, timeout=0.05)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._flush()
        await self.storage.interrupt()
        self._core.set_state("closed")

    async def __aenter__(self) -> App:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def wait_for_version(self, version: str, timeout: float | None = None) -> None:
        """Wait until this App has applied every change up to ``version``."""
        if self._forked:
            raise RuntimeError(FORKED)
        async with self._advanced:
            try:
                await asyncio.wait_for(
                    self._advanced.wait_for(lambda: version_at_least(self._core.head, version)),
                    timeout,
                )
            except TimeoutError:
                raise TimeoutError(f"version {version} not applied within {timeout}s") from None

    # -- the tasks ---------------------------------------------------------------------

    async def _tail_loop(self, tail: Tail) -> None:
        storage = self.storage
        while True:
            action = tail.next_action()
            try:
                if isinstance(action, Read):
                    tail.on_entries(await storage.read(action.after, action.block_ms))
                elif isinstance(action, Load):
                    epoch = self._core.epoch
                    tail.on_loaded(await storage.load())
                    if self._core.epoch != epoch:
                        # Another store (or one that lost everything): publish afresh.
                        self._catalog = CatalogPublisher(self.registry)
                    await self._publish_catalog()
                    self._first_load.set()
                elif isinstance(action, CheckEpoch):
                    if action.head and hasattr(storage, "epoch_and_head"):
                        tail.on_epoch(*await storage.epoch_and_head())
                    else:
                        tail.on_epoch(await storage.get_epoch())
                    await self._publish_catalog()
                elif isinstance(action, Reseed):
                    tail.on_reseeded(await storage.reseed(action.items, action.epoch))
                elif isinstance(action, Wait):
                    await asyncio.sleep(action.seconds)
                    tail.on_waited()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                tail.on_error(error)
            async with self._advanced:
                self._advanced.notify_all()

    async def _publish_catalog(self) -> None:
        """Publish the declarations for tools that lack the code (the CLI); never fatal."""
        now = time.time()
        if not self._catalog.due(now):
            return
        try:
            generation, identity, document = self._catalog.entry()
            await self.storage.publish_catalog(identity, document)
        except Exception as error:
            self._catalog.failed(now)
            logger.warning("feats: could not publish the catalog: %s", error)
        else:
            self._catalog.published(now, generation)

    async def _flush(self) -> None:
        buffer = self._core.exposures
        while len(buffer):
            batch = buffer.take(5_000)
            try:
                await self.storage.add_exposures(encode_exposures(batch))
            except Exception:
                buffer.put_back(batch)
                return
            buffer.written += len(batch)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self._flush()

    def _after_fork_in_child(self) -> None:
        """No task survives fork(): say so loudly (stale, logged) rather than serve a
        silently frozen snapshot, and let the next start() begin afresh."""
        self._running = False
        self._forked = True
        self._tasks = []
        after_fork = getattr(self.storage, "after_fork", None)
        if after_fork is not None:
            after_fork()
        self._core.set_state("stale", FORKED)


def _forked_in_child() -> None:
    for app in list(_started):
        _started.discard(app)
        app._after_fork_in_child()


os.register_at_fork(after_in_child=_forked_in_child)
