"""What the sync and async Apps share: decorators, the registry and the core they feed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, ClassVar, Generic, TypeVar, cast

from ._changes import FeatureRef, feature_name
from ._core import AppCore, EvaluationListener, Listener, Status, StatusListener
from ._declarations import (
    FeatureDeclaration,
    Registry,
    declare_boolean,
    declare_feature,
    declare_segment,
    mark_default,
)
from ._errors import NotFoundError
from ._handles import FeatureHandleBase, SegmentHandle
from ._snapshot import Evaluation
from ._verbs import explain_values

__all__ = ["AppBase"]

FeatureT = TypeVar("FeatureT", bound=FeatureHandleBase)
BooleanT = TypeVar("BooleanT", bound=FeatureHandleBase)


class AppBase(Generic[FeatureT, BooleanT]):
    """Declarations and the snapshot; subclasses add I/O and the handle types."""

    _allow_async: ClassVar[bool] = False
    _feature_handle: ClassVar[type]
    _boolean_handle: ClassVar[type]

    def __init__(self, *, exposure_capacity: int = 100_000) -> None:
        self.registry = Registry()
        self._core = AppCore(self.registry, exposure_capacity=exposure_capacity)

    def feature(self, cls: type) -> FeatureT:
        """Declare a feature: a class whose public methods are its implementations."""
        declaration = declare_feature(cls, allow_async=self._allow_async)
        return cast(FeatureT, self._declared(declaration, self._feature_handle))

    def boolean(self, function: Callable[..., Any]) -> BooleanT:
        """Declare an on/off feature: the function's result is the ``default`` implementation."""
        declaration = declare_boolean(function, allow_async=self._allow_async)
        return cast(BooleanT, self._declared(declaration, self._boolean_handle))

    @staticmethod
    def default(function: Callable[..., Any]) -> Callable[..., Any]:
        """Mark the implementation that answers when no configuration says otherwise."""
        return mark_default(function)

    def segment(self, cls: type) -> SegmentHandle:
        """Declare a segment: a class with one ``(self, input: T) -> str`` method per input type."""
        declaration = declare_segment(cls)
        self.registry.add_segment(declaration)
        self._core.declared_segment()
        return SegmentHandle(declaration)

    def _declared(self, declaration: FeatureDeclaration, handle: type) -> Any:
        self.registry.add_feature(declaration)
        self._core.declared_feature(declaration.name)
        return handle(self._core, declaration)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(version, features)`` whenever the snapshot changes.

        It runs on the tail (thread or task), so it must be quick and must not block.
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

    def explain_values(self, feature: FeatureRef, values: Mapping[str, str]) -> Evaluation:
        """Which implementation users with these segment values get from this App's
        snapshot, and why (``{"Country": "US", "UserId": "42"}``). No I/O, no exposure.

        ConfigurationError if the rule that applies needs a segment ``values`` lacks.
        """
        name = feature_name(feature)
        compiled = self._core.compiled.get(name)
        if compiled is None:
            raise NotFoundError(f"unknown feature {name!r}")
        evaluation = explain_values(
            name, compiled.default, compiled.state, compiled.version, values
        )
        drift = compiled.drift(evaluation.rule) if compiled.state is not None else None
        if drift is not None:
            # The snapshot serves the default there, as create() and explain() say.
            evaluation = replace(
                evaluation,
                implementation=compiled.default,
                reason=f"configuration drift: {drift}",
                selector=None,
                bucket=None,
                default=True,
            )
        return evaluation if not self._core.stale else replace(evaluation, stale=True)

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
