"""Declarations: decorated classes and functions turned into validated feature and segment specs."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import DeclarationError

__all__ = [
    "Accessor",
    "FeatureDeclaration",
    "Implementation",
    "Registry",
    "SegmentDeclaration",
    "TypeName",
    "check_typed_declaration",
    "declare_boolean",
    "declare_feature",
    "declare_segment",
    "mark_default",
    "type_ancestry",
    "type_key",
]

_DEFAULT_MARK = "__feats_default__"

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])


@dataclass(frozen=True)
class Implementation:
    """One way of providing a feature: a callable named by its method name."""

    name: str
    function: Callable[..., Any]
    is_async: bool
    doc: str | None
    returns: str


@dataclass(frozen=True)
class FeatureDeclaration:
    """A feature as declared in code: its inputs, implementations and default."""

    name: str
    doc: str | None
    input_types: tuple[Any, ...]
    implementations: dict[str, Implementation]
    default: str
    boolean: bool = False

    @property
    def arity(self) -> int:
        return len(self.input_types)


@dataclass(frozen=True)
class Accessor:
    """How a segment reads its value from one input type."""

    input_type: Any
    method: str
    read: Callable[[Any], Any]


@dataclass(frozen=True)
class SegmentDeclaration:
    """A segment as declared in code: how it groups inputs, and its allowed values if any."""

    name: str
    doc: str | None
    options: tuple[str, ...] | None
    accessors: tuple[Accessor, ...]

    def reader_for(self, input_types: tuple[Any, ...]) -> tuple[int, Accessor] | None:
        """The first feature argument this segment accepts, and how to read it."""
        for index, input_type in enumerate(input_types):
            for accessor in self.accessors:
                if _accepts(accessor.input_type, input_type):
                    return index, accessor
        return None


ANY_TYPE_KEYS = frozenset({"typing.Any", "builtins.object"})


def type_key(annotation: Any) -> str:
    """A stable name for a type: ``module.QualName`` for classes, the repr for the rest."""
    if isinstance(annotation, TypeName):
        return annotation.key
    if annotation is Any:
        return "typing.Any"
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}"
    return repr(annotation)


def type_ancestry(annotation: Any) -> tuple[str, ...]:
    """``type_key`` of a type and of every class in its MRO: what a subclass input matches."""
    if isinstance(annotation, TypeName):
        return annotation.mro
    if isinstance(annotation, type):
        return tuple(type_key(base) for base in annotation.__mro__)
    return (type_key(annotation),)


@dataclass(frozen=True)
class TypeName:
    """A type known only by name, as a published catalog describes it (no code imported).

    ``mro`` holds the keys of the type and its ancestors, so a segment reading a base
    class still matches a feature taking a subclass.
    """

    name: str
    key: str
    mro: tuple[str, ...]

    @property
    def __name__(self) -> str:
        return self.name


def _accepts(parameter: Any, argument: Any) -> bool:
    if isinstance(parameter, TypeName) or isinstance(argument, TypeName):
        key = type_key(parameter)
        return key in ANY_TYPE_KEYS or key in type_ancestry(argument)
    if parameter is Any or parameter is object or parameter == argument:
        return True
    return (
        isinstance(parameter, type)
        and isinstance(argument, type)
        and issubclass(argument, parameter)
    )


@dataclass
class Registry:
    """Every feature and segment one App knows; bumps ``generation`` on each addition."""

    features: dict[str, FeatureDeclaration] = field(default_factory=dict)
    segments: dict[str, SegmentDeclaration] = field(default_factory=dict)
    generation: int = 0
    compiled: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """What compiling features derives from these declarations alone (segment readers),
    made once and shared by every feature rather than once per feature."""

    def add_feature(self, declaration: FeatureDeclaration) -> None:
        if declaration.name in self.features:
            raise DeclarationError(
                f"{declaration.name}: duplicate name, a feature called {declaration.name!r} "
                "is already declared on this App"
            )
        self.features[declaration.name] = declaration
        self.generation += 1

    def add_segment(self, declaration: SegmentDeclaration) -> None:
        if declaration.name in self.segments:
            raise DeclarationError(
                f"{declaration.name}: duplicate name, a segment called {declaration.name!r} "
                "is already declared on this App"
            )
        self.segments[declaration.name] = declaration
        self.generation += 1

    def valid_segments(self, feature: str) -> list[SegmentDeclaration]:
        """Segments that can read one of ``feature``'s inputs, in declaration order."""
        declaration = self.features[feature]
        return [
            segment
            for segment in self.segments.values()
            if segment.reader_for(declaration.input_types) is not None
        ]

    def __iter__(self) -> Iterator[FeatureDeclaration]:
        return iter(self.features.values())


def mark_default(function: FunctionT) -> FunctionT:
    """Mark the implementation that answers when nothing else does."""
    setattr(function, _DEFAULT_MARK, True)
    return function


def _signature(
    owner: str, name: str, function: Callable[..., Any], *, method: bool
) -> tuple[tuple[Any, ...], Any]:
    """Input types and return type of ``function``; every one of them must be declared."""
    where = f"{owner}.{name}" if owner != name else owner
    try:
        hints = typing.get_type_hints(function)
    except Exception as error:
        raise DeclarationError(f"{where}: cannot resolve its type hints ({error})") from error
    parameters = list(inspect.signature(function).parameters.values())
    if method:
        parameters = parameters[1:]
    inputs = []
    for parameter in parameters:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            raise DeclarationError(
                f"{where}: parameter {parameter.name!r} must be a plain positional parameter"
            )
        if parameter.name not in hints:
            raise DeclarationError(
                f"{where}: parameter {parameter.name!r} is untyped; declare its type "
                "so feats knows which segments can read it"
            )
        inputs.append(hints[parameter.name])
    if "return" not in hints:
        raise DeclarationError(f"{where}: missing return type annotation")
    return tuple(inputs), hints["return"]


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


def declare_feature(cls: type, *, allow_async: bool) -> FeatureDeclaration:
    """Validate a ``@app.feature`` class and describe it."""
    if not isinstance(cls, type):
        raise DeclarationError(
            f"@feature decorates a class, got {cls!r}; use @boolean for functions"
        )
    owner = cls.__name__
    try:
        instance = cls()
    except Exception as error:
        raise DeclarationError(
            f"{owner}: a feature class must be constructible without arguments ({error})"
        ) from error
    implementations: dict[str, Implementation] = {}
    defaults: list[str] = []
    signatures: dict[str, tuple[Any, ...]] = {}
    for name, member in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        inputs, returns = _signature(owner, name, member, method=True)
        is_async = inspect.iscoroutinefunction(member)
        if is_async and not allow_async:
            raise DeclarationError(
                f"{owner}.{name}: is async def, which a sync feats.App cannot call; "
                "use feats.aio.App or make it a plain function"
            )
        signatures[name] = inputs
        if getattr(member, _DEFAULT_MARK, False):
            defaults.append(name)
        implementations[name] = Implementation(
            name=name,
            function=getattr(instance, name),
            is_async=is_async,
            doc=inspect.getdoc(member),
            returns=_type_name(returns),
        )
    if not implementations:
        raise DeclarationError(f"{owner}: no implementations; declare at least one public method")
    if not defaults:
        raise DeclarationError(
            f"{owner}: no default; mark exactly one implementation with @app.default"
        )
    if len(defaults) > 1:
        raise DeclarationError(
            f"{owner}: two defaults ({', '.join(defaults)}); mark exactly one with @app.default"
        )
    first, *rest = implementations
    for name in rest:
        if signatures[name] != signatures[first]:
            raise DeclarationError(
                f"{owner}.{name}: implementations with different inputs; {name} takes "
                f"({_types(signatures[name])}) but {first} takes ({_types(signatures[first])})"
            )
    own_doc = vars(cls).get("__doc__")
    return FeatureDeclaration(
        name=owner,
        # Its own docstring only: a feature class would otherwise inherit FeatureClass's.
        doc=inspect.cleandoc(own_doc) if isinstance(own_doc, str) else None,
        input_types=signatures[first],
        implementations=implementations,
        default=defaults[0],
    )


def check_typed_declaration(
    cls: type, declaration: FeatureDeclaration, inputs: tuple[Any, ...] | None, result: Any
) -> None:
    """A typed feature class's ``FeatureClass[[inputs], result]`` must say what its
    implementations take and give: type checkers read the parameters, feats the methods."""
    owner = cls.__name__
    if inputs is not None and inputs != declaration.input_types:
        raise DeclarationError(
            f"{owner}: declared as taking ({_types(inputs)}) but its implementations take "
            f"({_types(declaration.input_types)}); make the FeatureClass parameters match"
        )
    if result is Any or result is object or not isinstance(result, type):
        return
    for name in declaration.implementations:
        returns = typing.get_type_hints(vars(cls)[name]).get("return")
        if isinstance(returns, type) and not issubclass(returns, result):
            raise DeclarationError(
                f"{owner}.{name}: returns {_type_name(returns)}, but {owner} is declared "
                f"to give {_type_name(result)}"
            )


def _types(types: tuple[Any, ...]) -> str:
    return ", ".join(_type_name(t) for t in types)


def _constant(value: bool) -> Callable[..., bool]:
    def answer(*_args: Any) -> bool:
        return value

    return answer


def declare_boolean(function: Callable[..., Any], *, allow_async: bool) -> FeatureDeclaration:
    """Validate a ``@app.boolean`` function and describe it as a three-way feature."""
    if not inspect.isfunction(function):
        raise DeclarationError(f"@boolean decorates a function, got {function!r}")
    owner = function.__name__
    inputs, returns = _signature(owner, owner, function, method=False)
    if returns is not bool:
        raise DeclarationError(
            f"{owner}: a boolean must return bool, its return type is {_type_name(returns)}"
        )
    is_async = inspect.iscoroutinefunction(function)
    if is_async and not allow_async:
        raise DeclarationError(
            f"{owner}: is async def, which a sync feats.App cannot call; use feats.aio.App"
        )
    implementations = {
        "enabled": Implementation("enabled", _constant(True), False, "Always True", "bool"),
        "disabled": Implementation("disabled", _constant(False), False, "Always False", "bool"),
        "default": Implementation("default", function, is_async, inspect.getdoc(function), "bool"),
    }
    return FeatureDeclaration(
        name=owner,
        doc=inspect.getdoc(function),
        input_types=inputs,
        implementations=implementations,
        default="default",
        boolean=True,
    )


def declare_segment(cls: type) -> SegmentDeclaration:
    """Validate a ``@app.segment`` class and describe it."""
    if not isinstance(cls, type):
        raise DeclarationError(f"@segment decorates a class, got {cls!r}")
    owner = cls.__name__
    try:
        instance = cls()
    except Exception as error:
        raise DeclarationError(
            f"{owner}: a segment class must be constructible without arguments ({error})"
        ) from error
    options = getattr(cls, "OPTIONS", None)
    if options is not None:
        if isinstance(options, str) or not all(isinstance(option, str) for option in options):
            raise DeclarationError(f"{owner}.OPTIONS: must be a list of strings, got {options!r}")
        if len(set(options)) != len(options):
            raise DeclarationError(f"{owner}.OPTIONS: has duplicates: {list(options)!r}")
        options = tuple(options)
    accessors = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        if inspect.iscoroutinefunction(member):
            raise DeclarationError(
                f"{owner}.{name}: segments must be plain functions (no I/O on the hot path)"
            )
        inputs, returns = _signature(owner, name, member, method=True)
        if len(inputs) != 1:
            raise DeclarationError(
                f"{owner}.{name}: a segment method takes exactly one typed input, "
                f"it takes {len(inputs)}"
            )
        if returns is not str:
            raise DeclarationError(
                f"{owner}.{name}: a segment must return str, its return type is "
                f"{_type_name(returns)}"
            )
        accessors.append(Accessor(inputs[0], name, getattr(instance, name)))
    if not accessors:
        raise DeclarationError(
            f"{owner}: no accessors; declare a method per input type, e.g. "
            "def user(self, user: User) -> str"
        )
    return SegmentDeclaration(
        name=owner, doc=inspect.getdoc(cls), options=options, accessors=tuple(accessors)
    )
