"""The asyncio App: handles whose create() is awaited, on the shared core and Follower."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

from .._base import AppBase
from .._breath import SWITCH_INTERVAL
from .._exposures import encode_exposures
from .._handles import FeatureClassBase, FeatureHandle, P, R, Ts
from .._snapshot import Evaluation
from .._stored import version_at_least
from ._admin import Admin
from ._storage import MemoryStorage, Storage

__all__ = ["App", "Boolean", "Feature", "FeatureClass"]

_started: weakref.WeakSet[App] = weakref.WeakSet()
FORKED = (
    "this process was forked after start(): the tail stayed with the parent; call "
    "`await app.start()` in the child to follow changes again"
)


class Feature(FeatureHandle):
    """A declared feature of an asyncio App (what ``@app.feature`` gives); ``async def``
    implementations are awaited."""

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

    def _class_functions(self) -> dict[str, Callable[..., Any]]:
        handle, name, arity, impls, awaited = (
            self,
            self.name,
            self._arity,
            self._impls,
            self._awaited,
        )

        async def create(*args: Any) -> Any:
            if len(args) != arity:
                handle._arguments(args)
            chosen = handle._core.compiled[name].use(args)
            if awaited and chosen in awaited:
                return await impls[chosen](*args)
            return impls[chosen](*args)

        return {
            **super()._class_functions(),
            "create": create,
            "used_implementation": self.used_implementation,
        }


class Boolean(Feature, Generic[*Ts]):
    """A declared on/off feature of an asyncio App; ``Boolean[User]`` takes a User."""

    __slots__ = ()

    if TYPE_CHECKING:
        # The inherited methods, typed by the function @app.boolean declared.
        async def create(self, *args: *Ts) -> bool: ...
        def find_implementation(self, *args: *Ts) -> str: ...
        def explain(self, *args: *Ts) -> Evaluation: ...
        async def used_implementation(self, implementation: str, *args: *Ts) -> None: ...

    async def is_enabled(self, *args: *Ts) -> bool:
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


LOOP_EXPOSURE_BATCHES = 4
"""Batches an asyncio App's loop takes and encodes per round trip: about 2 ms of its time."""
STOP_WRITING_SECONDS = 5.0
"""How long closing waits for the loop's exposure write in flight before cancelling it."""


class App(AppBase[Feature, Boolean]):
    """A feats App for asyncio: evaluations never touch the network, and the background work
    (following changes, writing exposures) runs on threads of its own, so a busy event loop
    neither delays a change nor is held up by a full load."""

    _allow_async = True
    _feature_handle = Feature
    _boolean_handle = Boolean

    def boolean(self, function: Callable[[*Ts], bool | Awaitable[bool]]) -> Boolean[*Ts]:
        """Declare an on/off feature: the function's result is the ``default`` implementation
        (an ``async def`` is awaited)."""
        handle: Boolean[*Ts] = self._declare_boolean(function)
        return handle

    def __init__(
        self,
        storage: Storage | None = None,
        *,
        start_timeout: float = 5.0,
        block_ms: int = 2_000,
        flush_interval: float = 0.05,
        exposure_capacity: int = 100_000,
        reseed: bool = True,
        freeze_gc: bool = True,
        switch_interval: float | None = SWITCH_INTERVAL,
    ) -> None:
        """``reseed``: when the store lost configuration this App still serves (Redis
        restarted empty, a failover lost writes), write it back from the snapshot; with
        False, or if the ACL forbids it, keep serving it and report it as ``diverged``.
        ``freeze_gc``: keep long-lived objects out of full garbage collections (gc.freeze()
        after a full load, and once many features were compiled; see README).
        ``switch_interval``: the interpreter's thread switch interval while the App runs
        (sys.setswitchinterval), if nothing else changed it from Python's 5 ms: at 2 ms a
        change reaches an App whose loop is busy in 2-4 ms rather than 5-10 (see README);
        None leaves it alone."""
        super().__init__(
            start_timeout=start_timeout,
            block_ms=block_ms,
            flush_interval=flush_interval,
            exposure_capacity=exposure_capacity,
            reseed=reseed,
            freeze_gc=freeze_gc,
            switch_interval=switch_interval,
        )
        self.storage: Storage = storage if storage is not None else MemoryStorage()
        self.admin = Admin(
            self.storage, self.registry, applied=self._core.apply_write, known=self._core.held
        )
        self._waiters: list[tuple[str, asyncio.Future[None]]] = []
        self._waiters_lock = threading.Lock()
        self._forked = False
        self._exposure_task: asyncio.Task[None] | None = None
        self._exposures_stopping = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> App:
        """Load configuration (waiting at most ``start_timeout``) and start following it.

        If storage does not answer in time, defaults answer and the tail keeps retrying.
        Cancelled, it stops what it started.
        """
        if self._running:
            return self
        self._running = True
        self._forked = False
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None] = loop.create_future()
        follower = self._follow(
            self.storage.follower(),
            advanced=self._wake_waiters,
            loaded=lambda: _settle_threadsafe(first),
        )
        _started.add(self)
        self._exposures_stopping = asyncio.Event()
        self._exposure_task = loop.create_task(
            self._write_exposures(self._exposures_stopping), name="feats-exposures"
        )
        try:
            await asyncio.wait_for(asyncio.shield(first), self.start_timeout)
        except TimeoutError:
            self._no_configuration_yet()
        except BaseException:
            # Cancelled (or wait_for around `async with app`): leave nothing running.
            self._running = False
            _started.discard(self)
            follower.stop()
            await asyncio.shield(self._stop_writing_exposures())
            raise
        return self

    async def _write_exposures(self, stopping: asyncio.Event) -> None:
        """Exposures written from this App's event loop, a few batches at a time.

        The writer thread writes them too, but behind a loop evaluating flat out it hardly
        gets the interpreter: every loop iteration gives it up and takes it straight back,
        so the thread's turn never comes. A task runs whenever the loop yields. Told to
        stop, it ends after the write in flight (never cancelled in one).
        """
        buffer = self._core.exposures
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.flush_interval)
            while not stopping.is_set() and (batches := buffer.take_batches(LOOP_EXPOSURE_BATCHES)):
                try:
                    await self.storage.add_exposures([encode_exposures(b) for b in batches])
                except BaseException:
                    # Failed (the thread's own client may still reach storage, from any
                    # loop), or cancelled with its loop: they go back, at least once.
                    buffer.unsent(batches)
                    raise
                buffer.sent(batches)

    async def _stop_writing_exposures(self) -> None:
        """Stop the loop's writer; on its own loop, wait for the write in flight."""
        task, self._exposure_task = self._exposure_task, None
        if task is None or task.done():
            return
        loop = task.get_loop()
        if loop is asyncio.get_running_loop():
            self._exposures_stopping.set()
            done, _ = await asyncio.wait([task], timeout=STOP_WRITING_SECONDS)
            if not done:
                task.cancel()
                await asyncio.wait([task])
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._exposures_stopping.set)

    async def aclose(self) -> None:
        """Stop following changes and flush what exposures remain."""
        if not self._running:
            return
        self._running = False
        _started.discard(self)
        await self._stop_writing_exposures()
        follower = self._follower
        if follower is not None:
            follower.stop()
            # Joined and flushed on a worker thread: the event loop never waits on them.
            await asyncio.to_thread(follower.join, self._block_ms / 1000 + 1)
            await asyncio.to_thread(follower.close)
        self._core.set_state("closed")

    async def flush(self) -> None:
        """Write the exposures recorded so far now, rather than within ``flush_interval``."""
        if self._follower is not None:
            await asyncio.to_thread(self._follower.flush)

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
        if version_at_least(self._core.head, version):
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._waiters_lock:
            self._waiters.append((version, waiter))
        try:
            # Checked again: the tail may have got there between the first look and now.
            if not version_at_least(self._core.head, version):
                await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"version {version} not applied within {timeout}s") from None
        finally:
            with self._waiters_lock:
                self._waiters = [item for item in self._waiters if item[1] is not waiter]

    def _wake_waiters(self) -> None:
        """On the tail's thread: settle every wait_for_version the tail has got to."""
        if not self._waiters:
            return
        head = self._core.head
        with self._waiters_lock:
            for version, waiter in self._waiters:
                if version_at_least(head, version):
                    _settle_threadsafe(waiter)

    def _after_fork_in_child(self) -> None:
        """No thread survives fork(), and the parent's event loop is not this process's:
        say so loudly (stale, logged) rather than serve a silently frozen snapshot, and let
        the next start() begin afresh."""
        self._running = False
        self._forked = True
        self._exposure_task = None
        self._waiters = []
        self._waiters_lock = threading.Lock()
        self.storage.after_fork()
        if self._follower is not None:
            self._follower.after_fork()
        self._core.set_state("stale", FORKED)


class FeatureClass(FeatureClassBase[P, R]):
    """The typed way to declare a feature of an asyncio App: subclass it with the inputs and
    the result its implementations share, and the App as a keyword::

        class PaymentProcessor(feats.aio.FeatureClass[[User], Processor], app=app):
            @app.default
            def acme(self, user: User) -> Processor: ...

            async def premium(self, user: User) -> Processor: ...  # awaited by create

    ``await PaymentProcessor.create(user)`` is then typed ``(User) -> Processor`` for mypy
    and pyright, and feats checks at declaration that the methods take and give those types.
    """

    def __init_subclass__(cls, *, app: App, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(app, App):
            raise TypeError(
                f"{cls.__name__}: a feats.aio.FeatureClass names the feats.aio.App that "
                f"declares it (app=), got {app!r}"
            )
        cls._reserved_names()
        cls._declare_on(app._declare_feature(cls, cls._check_declaration))

    @classmethod
    async def create(cls, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the implementation configured for these inputs (records experiment exposures);
        an ``async def`` implementation is awaited."""
        raise NotImplementedError  # replaced by the handle's create when declared

    @classmethod
    async def used_implementation(
        cls, implementation: str, *args: P.args, **kwargs: P.kwargs
    ) -> None:
        """Record that these inputs used ``implementation`` (chosen by find_implementation)."""
        raise NotImplementedError  # replaced by the handle's method when declared


def _settle_threadsafe(waiter: asyncio.Future[None]) -> None:
    """Resolve a future of some event loop from any thread (nothing if that loop closed)."""
    with contextlib.suppress(RuntimeError):
        waiter.get_loop().call_soon_threadsafe(_settle, waiter)


def _settle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _forked_in_child() -> None:
    for app in list(_started):
        _started.discard(app)
        app._after_fork_in_child()


os.register_at_fork(after_in_child=_forked_in_child)
