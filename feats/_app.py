"""The sync App: the core on a daemon thread, for Django, Flask, Celery and scripts."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

from ._admin import Admin
from ._base import AppBase
from ._exposures import ROOM_WAIT_SECONDS
from ._handles import FeatureClassBase, FeatureHandle, P, R, Ts
from ._snapshot import Evaluation
from ._storage import MemoryStorage, Storage
from ._stored import version_at_least

__all__ = ["App", "Boolean", "Feature", "FeatureClass"]

_running: weakref.WeakSet[App] = weakref.WeakSet()


class Feature(FeatureHandle):
    """A declared feature of a sync App (what ``@app.feature`` gives)."""

    __slots__ = ()

    def create(self, *args: Any) -> Any:
        """Call the implementation configured for these inputs (records experiment exposures)."""
        if len(args) != self._arity:
            self._arguments(args)
        return self._impls[self._core.compiled[self.name].use(args)](*args)

    def used_implementation(self, implementation: str, *args: Any) -> None:
        """Record that these inputs used ``implementation`` (chosen by find_implementation)."""
        self._record_use(implementation, args)

    def _class_functions(self) -> dict[str, Callable[..., Any]]:
        handle, name, arity, impls = self, self.name, self._arity, self._impls

        def create(*args: Any) -> Any:
            if len(args) != arity:
                handle._arguments(args)
            return impls[handle._core.compiled[name].use(args)](*args)

        return {
            **super()._class_functions(),
            "create": create,
            "used_implementation": self.used_implementation,
        }


class Boolean(Feature, Generic[*Ts]):
    """A declared on/off feature of a sync App; ``Boolean[User]`` takes a User."""

    __slots__ = ()

    if TYPE_CHECKING:
        # The inherited methods, typed by the function @app.boolean declared.
        def create(self, *args: *Ts) -> bool: ...
        def find_implementation(self, *args: *Ts) -> str: ...
        def explain(self, *args: *Ts) -> Evaluation: ...
        def used_implementation(self, implementation: str, *args: *Ts) -> None: ...

    def is_enabled(self, *args: *Ts) -> bool:
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

    def boolean(self, function: Callable[[*Ts], bool]) -> Boolean[*Ts]:
        """Declare an on/off feature: the function's result is the ``default`` implementation."""
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
        switch_interval: float | None = None,
    ) -> None:
        """``reseed``: when the store lost configuration this App still serves (Redis
        restarted empty, a failover lost writes), write it back from the snapshot; with
        False, or if the ACL forbids it, keep serving it and report it as ``diverged``.
        ``freeze_gc``: keep long-lived objects out of full garbage collections (gc.freeze()
        after a full load, and once many features were compiled; see README).
        ``switch_interval``: the interpreter's thread switch interval while the App runs
        (sys.setswitchinterval), if nothing else changed it from Python's 5 ms; None, the
        default here, leaves it alone (see README: a change reaches an App whose threads
        compute flat out sooner at 0.002)."""
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
        # A thread evaluating flat out holds the interpreter: when its exposures fill the
        # buffer it lets the writer thread run rather than drop them (an event loop never
        # waits: feats.aio.App writes them from its loop too).
        self._core.exposures.wait_for_room = ROOM_WAIT_SECONDS
        self.admin = Admin(
            self.storage, self.registry, applied=self._core.apply_write, known=self._core.held
        )
        self._reset_sync_primitives()

    def _reset_sync_primitives(self) -> None:
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
        # A fresh event: after close() the old one is set, and start() would not wait.
        self._first_load = threading.Event()
        self._follow(self.storage.follower(), advanced=self._notify, loaded=self._first_load.set)
        _running.add(self)
        if not self._first_load.wait(self.start_timeout):
            self._no_configuration_yet()
        return self

    def close(self) -> None:
        """Stop following changes and flush what exposures remain."""
        if not self._running:
            return
        self._running = False
        _running.discard(self)
        follower = self._follower
        if follower is not None:
            follower.stop()
            follower.join(timeout=self._block_ms / 1000 + 1)
            follower.close()
        self._core.set_state("closed")

    def flush(self) -> None:
        """Write the exposures recorded so far now, rather than within ``flush_interval``."""
        if self._follower is not None:
            self._follower.flush()

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

    def _notify(self) -> None:
        with self._advanced:
            self._advanced.notify_all()

    def _after_fork_in_child(self) -> None:
        """Threads do not survive fork(): start them again so the child keeps following."""
        self._reset_sync_primitives()
        self._first_load.set()
        self.storage.after_fork()
        follower = self._follower
        if follower is not None:
            follower.after_fork()
            if self._running:
                follower.start()


class FeatureClass(FeatureClassBase[P, R]):
    """The typed way to declare a feature of a sync App: subclass it with the inputs and the
    result its implementations share, and the App as a keyword::

        class PaymentProcessor(feats.FeatureClass[[User], Processor], app=app):
            @app.default
            def acme(self, user: User) -> Processor: ...

    ``PaymentProcessor.create(user)`` is then typed ``(User) -> Processor`` for mypy and
    pyright, and feats checks at declaration that the methods take and give those types.
    """

    def __init_subclass__(cls, *, app: App, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(app, App):
            raise TypeError(
                f"{cls.__name__}: a feats.FeatureClass names the sync feats.App that declares "
                f"it (app=), got {app!r}"
            )
        cls._reserved_names()
        cls._declare_on(app._declare_feature(cls, cls._check_declaration))

    @classmethod
    def create(cls, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the implementation configured for these inputs (records experiment exposures)."""
        raise NotImplementedError  # replaced by the handle's create when declared

    @classmethod
    def used_implementation(cls, implementation: str, *args: P.args, **kwargs: P.kwargs) -> None:
        """Record that these inputs used ``implementation`` (chosen by find_implementation)."""
        raise NotImplementedError  # replaced by the handle's method when declared


def _restart_after_fork() -> None:
    for app in list(_running):
        app._after_fork_in_child()


os.register_at_fork(after_in_child=_restart_after_fork)
