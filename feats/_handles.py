"""Handles: what a declared feature, boolean or segment becomes (the sans-IO part), and the
generic base of the typed class form."""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar, Generic, ParamSpec, Protocol, TypeVar

from typing_extensions import TypeVarTuple, Unpack

from ._declarations import (
    FeatureDeclaration,
    Registry,
    SegmentDeclaration,
    check_typed_declaration,
)
from ._errors import DeclarationError, NotFoundError
from ._snapshot import CompiledFeature, Evaluation

__all__ = [
    "CoreView",
    "FeatureClassBase",
    "FeatureHandle",
    "FeatureHandleBase",
    "SegmentHandle",
]

P = ParamSpec("P")
R = TypeVar("R")
Ts = TypeVarTuple("Ts", default=Unpack[tuple[Any, ...]])
"""A boolean's input types; a bare ``feats.Boolean`` takes anything."""


class CoreView(Protocol):
    """What a handle reads of the App's core: the AppCore itself, or (while a snapshot of
    the App is held somewhere, see ``app.snapshot()``) a view that answers from it."""

    @property
    def compiled(self) -> dict[str, CompiledFeature]: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def stale(self) -> bool: ...

    def record_exposure(self, evaluation: Evaluation) -> None: ...


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


class FeatureHandleBase(Protocol):
    """What the admin (and everything that names a feature) takes: a feature's handle, or a
    typed feature class (its class attributes answer the same)."""

    @property
    def name(self) -> str: ...

    @property
    def declaration(self) -> FeatureDeclaration: ...


class _Unreachable:
    """Where an implementation's name is looked up on a handle: feats chooses it, so say so.

    A class attribute set as features are declared, rather than a ``__getattr__`` on the
    handle class: with one, CPython reads every attribute of a handle the slow way, and
    ``create`` reads five of them per call.
    """

    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, handle: FeatureHandle | None, owner: type | None = None) -> Any:
        if handle is None:
            return self
        attribute = self.attribute
        if attribute in handle.declaration.implementations:
            raise AttributeError(
                f"{handle.name}.{attribute} cannot be called directly: feats chooses the "
                f"implementation, call {handle.name}.create(...)"
            )
        raise AttributeError(f"{handle.name!r} feature handle has no attribute {attribute!r}")


class FeatureHandle:
    """The object ``@app.feature`` and ``@app.boolean`` give, all that does no I/O and never
    awaits: the shells' handles add create / is_enabled / used_implementation to it."""

    __slots__ = ("_arity", "_awaited", "_core", "_impls", "declaration", "name")

    name: str
    declaration: FeatureDeclaration
    _core: CoreView
    _arity: int
    _impls: dict[str, Any]
    _awaited: frozenset[str]

    def __init__(self, core: CoreView, declaration: FeatureDeclaration) -> None:
        self._core = core
        self.declaration = declaration
        self.name = declaration.name
        self._arity = declaration.arity
        self._impls = {name: impl.function for name, impl in declaration.implementations.items()}
        self._awaited = frozenset(
            name for name, impl in declaration.implementations.items() if impl.is_async
        )
        for attribute in declaration.implementations:
            if not hasattr(FeatureHandle, attribute):
                setattr(FeatureHandle, attribute, _Unreachable(attribute))

    def __call__(self) -> FeatureHandle:
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
        # `_core.compiled`, not `_core.explain`: inside app.snapshot() `_core` reads the
        # pinned snapshot, and the explanation must be of the answer given.
        core = self._core
        return core.compiled[self.name].explain(args, stale=core.stale)

    def _record_use(self, implementation: str, args: tuple[Any, ...]) -> None:
        if implementation not in self._impls:
            raise NotFoundError(
                f"{self.name} has no implementation {implementation!r} "
                f"(implementations: {', '.join(self._impls)})"
            )
        if len(args) != self._arity:
            self._arguments(args)
        core = self._core
        evaluation = core.compiled[self.name].explain(args, stale=core.stale)
        core.record_exposure(replace(evaluation, implementation=implementation))

    def _class_functions(self) -> dict[str, Callable[..., Any]]:
        """What a typed feature class answers with, as plain functions over this handle.

        Read through a class, a plain function is the function itself, and calling it costs
        less than calling a bound method (CPython's method-call shortcut does not apply to
        bound methods stored on a class): the class form evaluates as fast as a handle.
        The shells add ``create``; ``_core`` is read at each call (app.snapshot() swaps it).
        """
        handle, name, arity = self, self.name, self._arity

        def find_implementation(*args: Any) -> str:
            if len(args) != arity:
                handle._arguments(args)
            return handle._core.compiled[name].choose(args)

        return {
            "find_implementation": find_implementation,
            "explain": self.explain,
        }


class _ChosenByFeats:
    """An implementation of a typed feature class, read from the class: feats chooses it.

    Read from an instance (an implementation calling a sibling), it is the method itself.
    """

    __slots__ = ("function", "name")

    def __init__(self, name: str, function: Any) -> None:
        self.name = name
        self.function = function

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            feature = getattr(owner, "name", "?")
            raise AttributeError(
                f"{feature}.{self.name} cannot be called directly: feats chooses the "
                f"implementation, call {feature}.create(...)"
            )
        return self.function.__get__(instance, owner)


_RESERVED = frozenset(
    {
        "create",
        "declaration",
        "default",
        "explain",
        "find_implementation",
        "implementations",
        "is_enabled",
        "name",
        "used_implementation",
        "valid_segments",
    }
)
"""Names a feature class answers itself: an implementation may not take them."""


class FeatureClassBase(Generic[P, R]):
    """Shared by ``feats.FeatureClass`` and ``feats.aio.FeatureClass``: declaring a
    subclass declares it on the App named by its ``app=`` keyword.

    The class keeps plain functions over its handle as class attributes (see
    ``FeatureHandle._class_functions``): calling the class costs what calling the handle
    costs. Its ``name`` and ``declaration`` make it a FeatureHandleBase for type checkers:
    the admin takes the class wherever it takes a handle.
    """

    name: ClassVar[str]
    declaration: ClassVar[FeatureDeclaration]
    implementations: ClassVar[tuple[str, ...]]
    """The implementations' names, in declaration order."""
    default: ClassVar[str]
    """The default implementation's name."""
    _handle: ClassVar[FeatureHandle]

    @classmethod
    def _check_declaration(cls, declaration: FeatureDeclaration) -> None:
        """The class's ``[[inputs], result]`` must be what its implementations take and give."""
        base = next(
            (
                base
                for base in getattr(cls, "__orig_bases__", ())
                if isinstance(typing.get_origin(base), type)
                and issubclass(typing.get_origin(base), FeatureClassBase)
            ),
            None,
        )
        arguments = typing.get_args(base) if base is not None else ()
        if len(arguments) == 2:
            inputs, result = arguments
            check_typed_declaration(
                cls, declaration, None if inputs is ... else tuple(inputs), result
            )

    @classmethod
    def _declare_on(cls, handle: FeatureHandle) -> None:
        """Make ``cls`` answer as ``handle``: its attributes, methods and implementations."""
        cls._handle = handle
        cls.name = handle.name
        cls.declaration = handle.declaration
        cls.implementations = handle.implementations
        cls.default = handle.default
        for method, function in handle._class_functions().items():
            setattr(cls, method, function)
        for name in handle.declaration.implementations:
            setattr(cls, name, _ChosenByFeats(name, vars(cls)[name]))

    @classmethod
    def _reserved_names(cls) -> None:
        clashes = sorted(
            name
            for name, member in vars(cls).items()
            if name in _RESERVED and callable(member) and not isinstance(member, classmethod)
        )
        if clashes:
            raise DeclarationError(
                f"{cls.__name__}.{clashes[0]}: a feature class answers {clashes[0]} itself; "
                "give the implementation another name"
            )

    @classmethod
    def valid_segments(cls) -> list[str]:
        """Names of the segments that can read one of this feature's inputs."""
        return cls._handle.valid_segments()

    @classmethod
    def find_implementation(cls, *args: P.args, **kwargs: P.kwargs) -> str:
        """The implementation these inputs get, without recording an exposure. No I/O."""
        raise _undeclared(cls)

    @classmethod
    def explain(cls, *args: P.args, **kwargs: P.kwargs) -> Evaluation:
        """Which implementation these inputs get, and why. No I/O, never raises on config."""
        raise _undeclared(cls)


def _undeclared(cls: type) -> DeclarationError:
    return DeclarationError(
        f"{cls.__name__} is not declared on an App: subclass it with the App as a keyword, "
        f"class {cls.__name__}(feats.aio.FeatureClass[[Input], Result], app=app)"
    )
