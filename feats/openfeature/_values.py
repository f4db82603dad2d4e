"""Which typed resolutions an implementation's declared return type can answer, and checks
that what it returned is of that type."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

from openfeature.flag_evaluation import FlagType

from feats import Implementation

__all__ = ["answers", "typed_value"]

_CONTAINERS = frozenset(
    {
        dict,
        list,
        collections.abc.Mapping,
        collections.abc.MutableMapping,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
    }
)
_CONTAINER_NAMES = frozenset({"dict", "list", "Dict", "List", "Mapping", "MutableMapping"})
_MAX_DEPTH = 64


def _declared(implementation: Implementation) -> Any:
    """The return annotation, resolved; the declared type's name if it cannot be resolved."""
    try:
        return typing.get_type_hints(implementation.function).get("return", implementation.returns)
    except Exception:
        return implementation.returns


def _answers(annotation: Any, kind: FlagType) -> bool:
    if annotation is Any:
        return kind is FlagType.OBJECT
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(
            _answers(member, kind) for member in typing.get_args(annotation) if member is not None
        )
    if isinstance(annotation, str):
        name = annotation.split("[", 1)[0]
        return {
            FlagType.INTEGER: name == "int",
            FlagType.FLOAT: name in ("float", "int"),
            FlagType.OBJECT: name in _CONTAINER_NAMES,
        }.get(kind, False)
    if kind is FlagType.INTEGER:
        return annotation is int
    if kind is FlagType.FLOAT:
        return annotation is float or annotation is int
    if kind is FlagType.OBJECT:
        return (origin or annotation) in _CONTAINERS or typing.is_typeddict(annotation)
    return False


def answers(implementation: Implementation, kind: FlagType) -> bool:
    """True when ``implementation`` is declared to return what a ``kind`` resolution needs:
    int, float (or int), or a JSON-like container (dict, list, Mapping, a TypedDict)."""
    return _answers(_declared(implementation), kind)


def _json_like(value: object, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_json_like(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _json_like(item, depth + 1) for key, item in value.items()
        )
    return False


def typed_value(value: object, kind: FlagType) -> tuple[bool, Any]:
    """``(True, value)`` when ``value`` is what a ``kind`` resolution returns (an int is
    widened for FLOAT), else ``(False, None)``."""
    if kind is FlagType.BOOLEAN:
        return (True, value) if isinstance(value, bool) else (False, None)
    if isinstance(value, bool):
        return False, None
    if kind is FlagType.INTEGER:
        return (True, value) if isinstance(value, int) else (False, None)
    if kind is FlagType.FLOAT:
        return (True, float(value)) if isinstance(value, int | float) else (False, None)
    if kind is FlagType.OBJECT:
        if isinstance(value, dict | list) and _json_like(value):
            return True, value
        return False, None
    return (True, value) if isinstance(value, str) else (False, None)
