"""Handles: what a decorated feature, boolean or segment class becomes (the sans-IO part)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._declarations import FeatureDeclaration, SegmentDeclaration
from ._errors import NotFoundError
from ._snapshot import Evaluation

if TYPE_CHECKING:
    from ._core import AppCore

__all__ = ["FeatureHandleBase", "SegmentHandle"]


class SegmentHandle:
    """A declared segment: name it in a FeatureState, read its OPTIONS."""

    __slots__ = ("declaration", "name")

    def __init__(self, declaration: SegmentDeclaration) -> None:
        self.declaration = declaration
        self.name = declaration.name

    @property
    def OPTIONS(self) -> tuple[str, ...] | None:
        return self.declaration.options

    def __repr__(self) -> str:
        return f"<segment {self.name}>"


class _Unreachable:
    """Where an implementation's name is looked up on a handle: feats chooses it, so say so.

    A class attribute set as features are declared, rather than a ``__getattr__`` on the
    handle class: with one, CPython reads every attribute of a handle the slow way, and
    ``create`` reads five of them per call.
    """

    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, handle: FeatureHandleBase | None, owner: type | None = None) -> Any:
        if handle is None:
            return self
        attribute = self.attribute
        if attribute in handle.declaration.implementations:
            raise AttributeError(
                f"{handle.name}.{attribute} cannot be called directly: feats chooses the "
                f"implementation, call {handle.name}.create(...)"
            )
        raise AttributeError(f"{handle.name!r} feature handle has no attribute {attribute!r}")


class FeatureHandleBase:
    """Shared by the sync and async handles: everything that does no I/O and never awaits."""

    __slots__ = ("_arity", "_awaited", "_core", "_impls", "declaration", "name")

    def __init__(self, core: AppCore, declaration: FeatureDeclaration) -> None:
        self._core = core
        self.declaration = declaration
        self.name = declaration.name
        self._arity = declaration.arity
        self._impls = {name: impl.function for name, impl in declaration.implementations.items()}
        self._awaited = frozenset(
            name for name, impl in declaration.implementations.items() if impl.is_async
        )
        for attribute in declaration.implementations:
            if not hasattr(FeatureHandleBase, attribute):
                setattr(FeatureHandleBase, attribute, _Unreachable(attribute))

    def __call__(self) -> FeatureHandleBase:
        # PaymentProcessor() must not give back the class: its methods stay unreachable.
        return self

    def __repr__(self) -> str:
        return f"<feature {self.name}: {', '.join(self._impls)}>"

    def _arguments(self, args: tuple[Any, ...]) -> None:
        raise TypeError(
            f"{self.name} takes {self._arity} argument(s) "
            f"({', '.join(getattr(t, '__name__', repr(t)) for t in self.declaration.input_types)}),"
            f" got {len(args)}"
        )

    @property
    def implementations(self) -> tuple[str, ...]:
        return tuple(self._impls)

    @property
    def default(self) -> str:
        return self.declaration.default

    def valid_segments(self) -> list[str]:
        """Names of the segments that can read one of this feature's inputs."""
        return [segment.name for segment in self._core.registry.valid_segments(self.name)]

    def find_implementation(self, *args: Any) -> str:
        """The implementation these inputs get, without recording an exposure. No I/O."""
        if len(args) != self._arity:
            self._arguments(args)
        return self._core.compiled[self.name].choose(args)

    def explain(self, *args: Any) -> Evaluation:
        """Which implementation these inputs get, and why. No I/O, never raises on config."""
        if len(args) != self._arity:
            self._arguments(args)
        return self._core.explain(self.name, args)

    def _record_use(self, implementation: str, args: tuple[Any, ...]) -> None:
        if implementation not in self._impls:
            raise NotFoundError(
                f"{self.name} has no implementation {implementation!r} "
                f"(implementations: {', '.join(self._impls)})"
            )
        if len(args) != self._arity:
            self._arguments(args)
        evaluation = self._core.explain(self.name, args)
        self._core.record_exposure(replace(evaluation, implementation=implementation))
