"""What the sync and async Apps share: decorators, the registry and the core they feed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar, cast

from ._core import AppCore, Listener, Status
from ._declarations import (
    FeatureDeclaration,
    Registry,
    declare_boolean,
    declare_feature,
    declare_segment,
    mark_default,
)
from ._handles import FeatureHandleBase, SegmentHandle

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

    @property
    def status(self) -> Status:
        """initializing, live or stale, with the version applied and what was skipped."""
        return self._core.status()

    @property
    def version(self) -> str | None:
        """The change-log version this App has applied everything up to."""
        return self._core.status().version
