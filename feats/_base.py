"""What the sync and asyncio Apps share: settings, decorators, the registry, the core they
feed, the catalog they publish and the background Follower, and every method without I/O."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar, cast

from ._catalog import CatalogPublisher
from ._changes import FeatureRef, feature_name
from ._core import AppCore, EvaluationListener, Listener, Status, StatusListener
from ._declarations import (
    FeatureDeclaration,
    FunctionT,
    Registry,
    declare_boolean,
    declare_feature,
    declare_segment,
    mark_default,
)
from ._errors import NotFoundError
from ._exposures import ExposureListener
from ._handles import FeatureHandle, FeatureHandleBase, SegmentHandle, Ts
from ._snapshot import CompiledFeature, Evaluation
from ._state import FeatureState, resolve_state, validate_state
from ._tail import Follower, FollowerStorage

__all__ = ["AppBase", "ExposureListener", "Snapshot"]

logger = logging.getLogger("feats")

FeatureT = TypeVar("FeatureT", bound=FeatureHandleBase)
BooleanT = TypeVar("BooleanT", bound=FeatureHandleBase)

_Pins = dict["_SnapshotView", tuple[dict[str, CompiledFeature], int]]
_NO_PINS: _Pins = {}
_pins: ContextVar[_Pins] = ContextVar("feats_snapshots", default=_NO_PINS)
"""The snapshots held in this context (a request, a task): per App (its view), its
compiled features as they were when the snapshot was taken, and the view's generation
then. Never mutated: entering a snapshot sets a new dict."""
_held = _pins.get


class _SnapshotView:
    """What an App's handles read instead of its core while a snapshot of it is held
    somewhere: the pinned snapshot in contexts that hold one, the current one elsewhere.

    Installed only while snapshots are held, so an App nobody pins reads its core directly
    and its evaluations cost what they always did.
    """

    __slots__ = ("core", "generation")

    def __init__(self, core: AppCore) -> None:
        self.core = core
        self.generation = 0
        """Bumped by each feature declared: a snapshot taken before it lacks that feature."""

    @property
    def compiled(self) -> dict[str, CompiledFeature]:
        pinned = _held().get(self)
        if pinned is not None and pinned[1] == self.generation:
            return pinned[0]
        return self.core.compiled

    @property
    def registry(self) -> Registry:
        return self.core.registry

    @property
    def stale(self) -> bool:
        return self.core.stale

    def record_exposure(self, evaluation: Evaluation) -> None:
        self.core.record_exposure(evaluation)


class Snapshot:
    """``with app.snapshot():`` every evaluation of the App's features in this context
    (this thread, this task and the tasks it starts) reads the configuration as it was on
    entry, across awaits and concurrent changes. Re-entering it nests (the outer snapshot
    holds); leaving it restores what was before. No I/O: usable in sync and async code."""

    __slots__ = ("_app", "_token")

    def __init__(self, app: AppBase[Any, Any]) -> None:
        self._app = app
        self._token: Token[_Pins] | None = None

    def __enter__(self) -> Snapshot:
        view = self._app._snapshot_view
        held = _held()
        if view in held:
            return self  # nested: the outer snapshot answers
        self._token = _pins.set({**held, view: (view.core.compiled, view.generation)})
        self._app._pinning(+1)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            _pins.reset(token)
        except ValueError:
            # Left in another context than it was entered in (a framework's teardown
            # hook): drop this App's pin there.
            held = dict(_held())
            held.pop(self._app._snapshot_view, None)
            _pins.set(held)
        self._app._pinning(-1)


class AppBase(Generic[FeatureT, BooleanT]):
    """Declarations and the snapshot; subclasses add I/O and the handle types."""

    _allow_async: ClassVar[bool] = False
    _feature_handle: ClassVar[type[FeatureHandle]]
    _boolean_handle: ClassVar[type[FeatureHandle]]

    def __init__(
        self,
        *,
        start_timeout: float,
        block_ms: int,
        flush_interval: float,
        exposure_capacity: int,
        reseed: bool,
        freeze_gc: bool,
        switch_interval: float | None,
    ) -> None:
        """``reseed``: when the store lost configuration this App still serves (Redis
        restarted empty, a failover lost writes), write it back from the snapshot; with
        False, or if the ACL forbids it, keep serving it and report it as ``diverged``.
        ``freeze_gc``: after a full load, and once many features were compiled, move
        long-lived objects out of the cyclic collector's way (gc.freeze(), see README).
        ``switch_interval``: the interpreter's thread switch interval while the App runs,
        if nothing else changed it from Python's 5 ms (see README); None leaves it alone."""
        if switch_interval is not None and not 0 < switch_interval <= 1:
            raise ValueError(
                f"switch_interval is in seconds, above 0 and at most 1 (Python's own is "
                f"0.005), or None to leave the interpreter's alone; got {switch_interval!r}"
            )
        self.registry = Registry()
        self._core = AppCore(self.registry, exposure_capacity=exposure_capacity)
        self.start_timeout = start_timeout
        self.reseed = reseed
        self.freeze_gc = freeze_gc
        self.switch_interval = switch_interval
        self.flush_interval = flush_interval
        self._block_ms = block_ms
        self._publisher = CatalogPublisher(self.registry)
        self._follower: Follower | None = None
        self._running = False
        self._handles: list[FeatureHandle] = []
        self._snapshot_view = _SnapshotView(self._core)
        self._snapshots_held: list[None] = []
        """One item per snapshot held anywhere: list.append and pop are atomic, so only the
        first and the last snapshot take the lock (to point the handles at view or core)."""
        self._viewed = False
        self._snapshots_lock = threading.Lock()

    def _follow(
        self, storage: FollowerStorage, *, advanced: Callable[[], None], loaded: Callable[[], None]
    ) -> Follower:
        """Start the background Follower on ``storage`` (the shell's follower storage)."""
        self._core.start()
        follower = Follower(
            self._core,
            storage,
            self._publisher,
            block_ms=self._block_ms,
            reseed=self.reseed,
            flush_interval=self.flush_interval,
            advanced=advanced,
            loaded=loaded,
            freeze_gc=self.freeze_gc,
            switch_interval=self.switch_interval,
        )
        self._follower = follower
        if self._core.state == "closed":
            self._core.set_state("initializing")
        follower.start()
        return follower

    def _no_configuration_yet(self) -> None:
        logger.warning(
            "feats: no configuration after %.1fs (%s); serving defaults and retrying",
            self.start_timeout,
            self._core.error or "no answer",
        )

    def feature(self, cls: type) -> FeatureT:
        """Declare a feature: a class whose public methods are its implementations.

        Type checkers do not apply class decorators to the class (python/mypy#3135): for a
        typed ``create``, subclass ``FeatureClass[[Inputs], Result]`` with ``app=`` instead.
        """
        return cast(FeatureT, self._declare_feature(cls))

    def _declare_feature(
        self, cls: type, check: Callable[[FeatureDeclaration], None] | None = None
    ) -> Any:
        """``feature``, with ``check`` (a typed feature class's) judging the declaration
        before it is registered: a rejected class leaves nothing declared."""
        declaration = declare_feature(cls, allow_async=self._allow_async)
        if check is not None:
            check(declaration)
        return self._declared(declaration, self._feature_handle)

    def boolean(self, function: Callable[[*Ts], bool]) -> BooleanT:
        """Declare an on/off feature: the function's result is the ``default`` implementation.

        The shells type the handle by the function's inputs (``Boolean[User]``).
        """
        return cast(BooleanT, self._declare_boolean(function))

    def _declare_boolean(self, function: Callable[..., Any]) -> Any:
        declaration = declare_boolean(function, allow_async=self._allow_async)
        return self._declared(declaration, self._boolean_handle)

    @staticmethod
    def default(function: FunctionT) -> FunctionT:
        """Mark the implementation that answers when no configuration says otherwise."""
        return mark_default(function)

    def segment(self, cls: type) -> SegmentHandle:
        """Declare a segment: a class with one ``(self, input: T) -> str`` method per input type."""
        declaration = declare_segment(cls)
        self.registry.add_segment(declaration)
        self._core.declared_segment()
        return SegmentHandle(declaration)

    def _declared(self, declaration: FeatureDeclaration, handle: type[FeatureHandle]) -> Any:
        self.registry.add_feature(declaration)
        self._core.declared_feature(declaration.name)
        with self._snapshots_lock:
            self._snapshot_view.generation += 1
            created = handle(self._snapshot_view if self._viewed else self._core, declaration)
            self._handles.append(created)
        return created

    # -- one snapshot per request --------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """``with app.snapshot():`` every evaluation inside reads one configuration, the
        one current on entry, however long it lasts and whatever changes meanwhile: one
        request answers consistently. Contexts without one read the current configuration.

        While any context holds a snapshot, this App's evaluations read it through one
        indirection (the benchmark says what it costs); an App nobody pins pays nothing.
        """
        return Snapshot(self)

    def _pinning(self, delta: int) -> None:
        """Count the snapshots held; the first one points every handle at the view, the
        last one back at the core."""
        held = self._snapshots_held
        if delta > 0:
            held.append(None)
            if len(held) != 1 and self._viewed:
                return
        else:
            held.pop()
            if held:
                return
        with self._snapshots_lock:
            # Decided on the count as it is now: another thread may have moved it since.
            viewed = bool(held)
            if viewed != self._viewed:
                target = self._snapshot_view if viewed else self._core
                for handle in self._handles:
                    handle._core = target
                self._viewed = viewed

    # -- overrides (feats.testing) -------------------------------------------------------

    def override(self, feature: FeatureRef, state: FeatureState | None) -> FeatureState | None:
        """Pin ``feature`` to ``state`` in this process only, ahead of storage (None: storage
        answers again); returns the override it replaces. No I/O, no Redis needed.
        ``explain()`` says "overridden in this process". For tests: see ``feats.testing``.

        NotFoundError for an unknown feature, ConfigurationError for a state these
        declarations cannot serve.
        """
        name = feature_name(feature)
        if name not in self.registry.features:
            raise NotFoundError(
                f"unknown feature {name!r} (declared: {', '.join(self.registry.features)})"
            )
        if state is not None:
            if not isinstance(state, FeatureState):
                raise TypeError(f"expected a FeatureState or None, got {state!r}")
            validate_state(name, state, self.registry)
            state = resolve_state(name, state, None)
        core = self._core
        previous = core.overrides.get(name)
        core.override(name, state)
        return previous

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(version, features)`` whenever the snapshot changes.

        It runs on the App's background thread (the asyncio App's too: use
        ``loop.call_soon_threadsafe`` to reach a loop), so it must be quick and not block.
        """
        self._core.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._core.listeners.remove(listener)

    def add_status_listener(self, listener: StatusListener) -> None:
        """Call ``listener(status)`` whenever the state (initializing, live, stale, closed)
        changes; it runs on the tail, so it must be quick."""
        self._core.status_listeners.append(listener)

    def remove_status_listener(self, listener: StatusListener) -> None:
        self._core.status_listeners.remove(listener)

    def add_evaluation_listener(self, listener: EvaluationListener) -> None:
        """Call ``listener(evaluation)`` after every create, is_enabled and
        find_implementation, in the caller's thread.

        Opt-in, for telemetry: while any is registered each evaluation also costs an
        explain(); with none the hot path is as fast as without this method.
        """
        self._core.observe(listener, add=True)

    def remove_evaluation_listener(self, listener: EvaluationListener) -> None:
        self._core.observe(listener, add=False)

    def add_exposure_listener(self, listener: ExposureListener) -> None:
        """Call ``listener(feature, implementation, unit, version)`` for every experiment
        exposure this App records, in the recording thread, before it is buffered for
        storage (``feats.testing``'s exposures fixture). Opt-in: with none registered,
        recording costs what it always did."""
        core = self._core
        with core.lock:
            core.exposures.listeners.append(listener)
            if len(core.exposures.listeners) == 1:
                core.recompile()  # the experiments' picks now record through told queues

    def remove_exposure_listener(self, listener: ExposureListener) -> None:
        core = self._core
        with core.lock:
            core.exposures.listeners.remove(listener)
            if not core.exposures.listeners:
                core.recompile()

    def explain_values(self, feature: FeatureRef, values: Mapping[str, str]) -> Evaluation:
        """Which implementation users with these segment values get from this App's
        snapshot, and why (``{"Country": "US", "UserId": "42"}``). No I/O, no exposure.

        ConfigurationError if the rule that applies needs a segment ``values`` lacks.
        """
        name = feature_name(feature)
        compiled = self._core.compiled.get(name)
        if compiled is None:
            raise NotFoundError(f"unknown feature {name!r}")
        return compiled.explain_values(values, stale=self._core.stale)

    def record_exposure(self, evaluation: Evaluation) -> None:
        """Record the experiment exposure ``evaluation`` stands for (e.g. one from
        explain_values that was served); nothing if no experiment decided it."""
        self._core.record_exposure(evaluation)

    @property
    def status(self) -> Status:
        """initializing, live or stale, with the version applied and what was skipped."""
        return self._core.status()

    @property
    def version(self) -> str | None:
        """The change-log version this App has applied everything up to."""
        return self._core.status().version
