"""The sync App: the core on a daemon thread, for Django, Flask, Celery and scripts."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from types import TracebackType
from typing import Any

from ._admin import Admin
from ._base import AppBase
from ._catalog import CatalogPublisher
from ._handles import FeatureHandleBase
from ._layout import encode_exposures
from ._storage import MemoryStorage, Storage
from ._stored import version_at_least
from ._tail import CheckEpoch, Load, Read, Reseed, Tail, Wait

__all__ = ["App", "Boolean", "Feature"]

logger = logging.getLogger("feats")

_running: weakref.WeakSet[App] = weakref.WeakSet()


class Feature(FeatureHandleBase):
    """A declared feature of a sync App."""

    __slots__ = ()

    def create(self, *args: Any) -> Any:
        """Call the implementation configured for these inputs (records experiment exposures)."""
        if len(args) != self._arity:
            self._arguments(args)
        return self._impls[self._core.compiled[self.name].use(args)](*args)

    def used_implementation(self, implementation: str, *args: Any) -> None:
        """Record that these inputs used ``implementation`` (chosen by find_implementation)."""
        self._record_use(implementation, args)


class Boolean(Feature):
    """A declared on/off feature of a sync App."""

    __slots__ = ()

    def is_enabled(self, *args: Any) -> bool:
        if len(args) != self._arity:
            self._arguments(args)
        name = self._core.compiled[self.name].use(args)
        # "enabled" and "disabled" are constants: answer them without a call.
        if name == "enabled":
            return True
        if name == "disabled":
            return False
        return bool(self._impls[name](*args))


class App(AppBase[Feature, Boolean]):
    """A feats App whose tail runs on a daemon thread; evaluations never touch the network."""

    _allow_async = False
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
        self._threads: list[threading.Thread] = []
        self._reset_sync_primitives()

    def _reset_sync_primitives(self) -> None:
        self._stop = threading.Event()
        self._first_load = threading.Event()
        self._advanced = threading.Condition()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> App:
        """Load configuration (waiting at most ``start_timeout``) and start following it.

        If storage does not answer in time, defaults answer and the tail keeps retrying.
        """
        if self._running:
            return self
        self._running = True
        if self._core.state == "closed":
            self._core.set_state("initializing")
        # Fresh events: after close() the old stop event is set, and threads started on
        # it would exit at once, leaving a restarted App on a frozen snapshot.
        self._stop = threading.Event()
        self._first_load = threading.Event()
        self._spawn()
        _running.add(self)
        if not self._first_load.wait(self.start_timeout):
            logger.warning(
                "feats: no configuration after %.1fs (%s); serving defaults and retrying",
                self.start_timeout,
                self._core.error or "no answer",
            )
        return self

    def _spawn(self) -> None:
        tail = Tail(self._core, block_ms=self.storage.block_ms(self._block_ms), reseed=self.reseed)
        self._threads = [
            threading.Thread(target=self._tail_loop, args=(tail,), name="feats-tail", daemon=True),
            threading.Thread(target=self._flush_loop, name="feats-exposures", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Stop following changes and flush what exposures remain."""
        if not self._running:
            return
        self._running = False
        _running.discard(self)
        self._stop.set()
        self.storage.interrupt()
        for thread in self._threads:
            thread.join(timeout=self._block_ms / 1000 + 1)
        self._flush()
        self._core.set_state("closed")

    def __enter__(self) -> App:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_for_version(self, version: str, timeout: float | None = None) -> None:
        """Block until this App has applied every change up to ``version``."""
        with self._advanced:
            if not self._advanced.wait_for(
                lambda: version_at_least(self._core.head, version), timeout
            ):
                raise TimeoutError(f"version {version} not applied within {timeout}s")

    # -- the threads -------------------------------------------------------------------

    def _tail_loop(self, tail: Tail) -> None:
        storage, stop = self.storage, self._stop
        while not stop.is_set():
            action = tail.next_action()
            try:
                if isinstance(action, Read):
                    tail.on_entries(storage.read(action.after, action.block_ms))
                elif isinstance(action, Load):
                    epoch = self._core.epoch
                    tail.on_loaded(storage.load())
                    if self._core.epoch != epoch:
                        # Another store (or one that lost everything): publish afresh.
                        self._catalog = CatalogPublisher(self.registry)
                    self._publish_catalog()
                    self._first_load.set()
                elif isinstance(action, CheckEpoch):
                    if action.head and hasattr(storage, "epoch_and_head"):
                        tail.on_epoch(*storage.epoch_and_head())
                    else:
                        tail.on_epoch(storage.get_epoch())
                    self._publish_catalog()
                elif isinstance(action, Reseed):
                    tail.on_reseeded(storage.reseed(action.items, action.epoch))
                elif isinstance(action, Wait):
                    stop.wait(action.seconds)
                    tail.on_waited()
            except Exception as error:
                if stop.is_set():
                    break
                tail.on_error(error)
            with self._advanced:
                self._advanced.notify_all()

    def _publish_catalog(self) -> None:
        """Publish the declarations for tools that lack the code (the CLI); never fatal."""
        now = time.time()
        if not self._catalog.due(now):
            return
        try:
            generation, identity, document = self._catalog.entry()
            self.storage.publish_catalog(identity, document)
        except Exception as error:
            self._catalog.failed(now)
            logger.warning("feats: could not publish the catalog: %s", error)
        else:
            self._catalog.published(now, generation)

    def _flush(self) -> None:
        buffer = self._core.exposures
        while len(buffer):
            batch = buffer.take(5_000)
            try:
                self.storage.add_exposures(encode_exposures(batch))
            except Exception:
                buffer.put_back(batch)
                return
            buffer.written += len(batch)

    def _flush_loop(self) -> None:
        stop = self._stop
        while not stop.wait(self.flush_interval):
            self._flush()

    def _after_fork_in_child(self) -> None:
        """Threads do not survive fork(): start them again so the child keeps following."""
        self._reset_sync_primitives()
        self._first_load.set()
        after_fork = getattr(self.storage, "after_fork", None)
        if after_fork is not None:
            after_fork()
        if self._running:
            self._spawn()


def _restart_after_fork() -> None:
    for app in list(_running):
        app._after_fork_in_child()


os.register_at_fork(after_in_child=_restart_after_fork)
