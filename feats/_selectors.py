"""Selectors, what the users a rule matches get: each kind owns its implementations, its
description, its structure, its salt, its stored form, its hot-path pick and its explanation.

A new kind of selector is a class here with the same methods, and a line in ``KINDS``.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self, TypeAlias

import xxhash

from ._bucketing import BUCKETS, Allocation, allocate, bucket, bucket_counts, derive_salt, shares
from ._errors import CodecError, ConfigurationError

__all__ = [
    "KINDS",
    "MAX_NAME",
    "MAX_WEIGHT",
    "Experiment",
    "ExposureSink",
    "Pick",
    "Rollout",
    "RuleKey",
    "Selector",
    "Static",
    "UnitQueue",
    "constant_pick",
    "decode_selector",
    "expect",
    "rule_label",
    "segment_name",
]

RuleKey: TypeAlias = tuple[str, ...] | None
"""One value per segment of the state, or ``None`` for the fallthrough."""

Pick = Callable[[tuple[Any, ...]], str]
"""The hot path of one rule: the feature's arguments to an implementation name."""
Failed = Callable[[Exception], str]
"""What a pick answers when a segment raised: the default, warned once."""


class UnitQueue(Protocol):
    """Where an experiment's hot path appends the unit values of one implementation."""

    def __len__(self) -> int: ...

    def append(self, unit: str, /) -> None: ...


class ExposureSink(Protocol):
    """Where an experiment's hot path records exposures: a queue per allocation range."""

    def queues(
        self,
        feature: str,
        version: str | None,
        names: Sequence[str],
        owner: object,
        shares: Mapping[str, float],
    ) -> tuple[tuple[UnitQueue, ...], tuple[int, ...]]: ...

    def overflow(self, queue: UnitQueue, unit: str, limit: int) -> None: ...


MAX_WEIGHT = 1e9
"""A weight above this is refused: shares are relative, and sums must stay exact and finite."""
MAX_NAME = 200
"""Implementation, segment and feature names are at most this long."""

_hash = xxhash.xxh3_64_intdigest
"""bucket() inlined by the picks: no function call per evaluation on the hot path."""


def segment_name(segment: Any) -> str:
    """Accept a segment handle, a declaration or a plain name."""
    if isinstance(segment, str):
        return segment
    name = getattr(segment, "name", None)
    if isinstance(name, str):
        return name
    raise ConfigurationError(f"expected a segment or its name, got {segment!r}")


def rule_label(segments: Sequence[str], key: RuleKey) -> str:
    """``Country=CA`` for a rule, ``fallthrough`` for the rule that catches the rest."""
    if key is None:
        return "fallthrough"
    return ", ".join(f"{name}={value}" for name, value in zip(segments, key, strict=False))


def expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """``value`` if it is of ``kind`` (a bool is never an int here), else CodecError."""
    if type(value) is kind:
        return value
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise CodecError(f"{where}: expected {expected}, got {type(value).__name__}")
    return value


def _name_problem(name: Any, what: str) -> str | None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        return f"{what} must be a name of 1-{MAX_NAME} characters, got {name!r}"
    return None


def _held(allocation: Allocation) -> dict[str, int]:
    """How many buckets each implementation's ranges hold."""
    held: dict[str, int] = {}
    for name, start, end in allocation:
        held[name] = held.get(name, 0) + end - start
    return held


def _percent(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.0f}%" if value == int(value) else f"{value:.3g}%"


_STATICS: dict[str, Any] = {}


@dataclass(frozen=True)
class Static:
    """Always the same implementation."""

    implementation: str
    kind: ClassVar[str] = "static"

    def implementations(self) -> tuple[str, ...]:
        return (self.implementation,)

    def reads(self) -> str | None:
        """The segment whose value this selector hashes (None: it reads none)."""
        return None

    def describe(self) -> str:
        return self.implementation

    def shape_problems(self) -> list[str]:
        implementation = self.implementation
        if type(implementation) is str and 0 < len(implementation) <= MAX_NAME:
            return []
        return [
            f"the implementation must be a name of 1-{MAX_NAME} characters, got {implementation!r}"
        ]

    def resolved(self, feature: str, key: RuleKey, previous: Selector | None) -> Self:
        return self

    def encode(self) -> dict[str, Any]:
        return {"type": self.kind, "implementation": self.implementation}

    @classmethod
    def decode(cls, document: dict[str, Any], where: str) -> Self:
        implementation = expect(document.get("implementation"), str, f"{where}.implementation")
        # Immutable, so the same one serves every rule that routes to this implementation.
        shared = _STATICS.get(implementation)
        if shared is None or type(shared) is not cls:
            shared = cls(implementation)
            if len(_STATICS) < 10_000:
                _STATICS[implementation] = shared
        return shared

    def constant(self) -> str | None:
        """The answer for every user this rule matches, when it needs no segment."""
        return self.implementation

    def ranges(self) -> Allocation:
        """Which implementation holds which buckets: all of them, here."""
        return ((self.implementation, 0, BUCKETS),)

    def hashing(self) -> tuple[str, int | None] | None:
        """How users are hashed (segment, salt): two selectors hashing alike keep every user
        in the same bucket; None for a selector that hashes nobody."""
        return None

    records_exposures: ClassVar[bool] = False

    def picker(
        self,
        feature: str,
        key: RuleKey,
        read: Callable[[Any], Any],
        index: int,
        failed: Failed,
        record: tuple[ExposureSink, str | None, object] | None = None,
    ) -> Pick:
        return constant_pick(self.implementation)

    def assign(self, feature: str, key: RuleKey, value: str) -> tuple[str, int | None]:
        return self.implementation, None


@dataclass(frozen=True, init=False)
class _Split:
    """Weighted assignment by the hash of one segment's value."""

    segment: str
    weights: Mapping[str, float]
    salt: int | None = None
    allocation: Allocation | None = None
    kind: ClassVar[str] = "split"
    records_exposures: ClassVar[bool] = False

    def __init__(
        self,
        segment: Any,
        weights: Mapping[str, float],
        *,
        salt: int | None = None,
        allocation: Iterable[tuple[str, int, int]] | None = None,
    ) -> None:
        object.__setattr__(self, "segment", segment_name(segment))
        object.__setattr__(self, "weights", MappingProxyType(dict(weights)))
        object.__setattr__(self, "salt", salt)
        object.__setattr__(
            self, "allocation", None if allocation is None else tuple(map(tuple, allocation))
        )

    def __hash__(self) -> int:
        return hash((type(self), self.segment, tuple(self.weights.items()), self.salt))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, _Split)
            and (self.segment, dict(self.weights), self.salt, self.allocation)
            == (other.segment, dict(other.weights), other.salt, other.allocation)
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.segment!r}, {dict(self.weights)!r})"

    def implementations(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def reads(self) -> str | None:
        return self.segment

    def describe(self) -> str:
        total = sum(self.weights.values()) or 1
        parts = ", ".join(
            f"{name} {_percent(weight / total)}" for name, weight in self.weights.items()
        )
        return f"{self.kind} by {self.segment}: {parts}"

    def shape_problems(self) -> list[str]:
        problems = [
            problem
            for problem in (
                _name_problem(self.segment, "the segment"),
                *(_name_problem(name, "an implementation") for name in self.weights),
            )
            if problem is not None
        ]
        weights = list(self.weights.values())
        allocation = self.allocation
        if not weights or any(
            type(w) not in (int, float) or not 0 <= w <= MAX_WEIGHT  # NaN fails too
            for w in weights
        ):
            problems.append(
                f"weights must be non-negative numbers of at most {MAX_WEIGHT:g}, "
                f"got {dict(self.weights)}"
            )
        elif sum(weights) <= 0:
            problems.append(f"weights must have a positive sum, got {dict(self.weights)}")
        elif allocation is not None and _held(allocation) != {
            name: count for name, count in bucket_counts(self.weights).items() if count
        }:
            problems.append(
                f"the allocation does not match the weights {dict(self.weights)}; "
                "leave allocation out and feats computes it"
            )
        return problems

    def salt_for(self, feature: str, key: RuleKey) -> int:
        """The salt users are hashed with: stored, else derived from where the rule is."""
        if self.salt is not None:
            return self.salt
        return derive_salt(feature, repr(key), self.segment)

    def ranges(self) -> Allocation:
        return self.allocation or allocate(self.weights)

    def hashing(self) -> tuple[str, int | None] | None:
        return (self.segment, self.salt)

    def resolved(self, feature: str, key: RuleKey, previous: Selector | None) -> Self:
        """This split with a salt and an allocation that moves few users from ``previous``.

        The same rule and segment: the salt stays and the allocation is rebalanced with
        minimal reassignment, so a change of weights moves the fewest users.
        """
        if self.salt is not None and self.allocation is not None:
            return self
        carried = (
            previous if isinstance(previous, _Split) and previous.segment == self.segment else None
        )
        salt = self.salt_for(feature, key)
        if self.salt is None and carried is not None and carried.salt is not None:
            salt = carried.salt
        base = carried.allocation if carried is not None and carried.salt == salt else None
        return type(self)(
            self.segment,
            self.weights,
            salt=salt,
            allocation=self.allocation or allocate(self.weights, base),
        )

    def encode(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": self.kind,
            "segment": self.segment,
            "weights": dict(self.weights),
        }
        if self.salt is not None:
            document["salt"] = f"{self.salt:016x}"
        if self.allocation is not None:
            document["allocation"] = [list(item) for item in self.allocation]
        return document

    @classmethod
    def decode(cls, document: dict[str, Any], where: str) -> Self:
        segment = expect(document.get("segment"), str, f"{where}.segment")
        weights = expect(document.get("weights"), dict, f"{where}.weights")
        for name, weight in weights.items():
            if type(weight) is not int and type(weight) is not float:
                expect(weight, (int, float), f"{where}.weights.{name}")
            if not 0 <= weight < math.inf:  # NaN fails too
                raise CodecError(f"{where}.weights.{name}: not a finite non-negative number")
        salt = None
        salt_text = document.get("salt")
        if salt_text is not None:
            expect(salt_text, str, f"{where}.salt")
            try:
                salt = int(salt_text, 16)
            except ValueError as error:
                raise CodecError(f"{where}.salt: not a hex number: {salt_text!r}") from error
            if not 0 <= salt < 2**64:
                raise CodecError(f"{where}.salt: not a 64-bit salt: {salt_text!r}")
        allocation = None
        if document.get("allocation") is not None:
            allocation = []
            cursor = 0
            items = expect(document["allocation"], list, f"{where}.allocation")
            for index, item in enumerate(items):
                at = f"{where}.allocation[{index}]"
                if not (isinstance(item, list) and len(item) == 3):
                    raise CodecError(f"{at}: expected [implementation, start, end]")
                name = expect(item[0], str, at)
                start = expect(item[1], int, at)
                end = expect(item[2], int, at)
                if start != cursor or end <= start or name not in weights:
                    raise CodecError(
                        f"{at}: ranges must be contiguous and name weighted implementations"
                    )
                cursor = end
                allocation.append((name, start, end))
            if cursor != BUCKETS:
                raise CodecError(f"{where}.allocation: covers {cursor} of {BUCKETS} buckets")
        return cls(segment, weights, salt=salt, allocation=allocation)

    def constant(self) -> str | None:
        return None

    def picker(
        self,
        feature: str,
        key: RuleKey,
        read: Callable[[Any], Any],
        index: int,
        failed: Failed,
        record: tuple[ExposureSink, str | None, object] | None = None,
    ) -> Pick:
        """The rule's hot path: hash the segment's value into a bucket, the bucket's owner.

        It runs the segment, user code: it may raise, evaluation may not. Each pick guards
        itself (a try costs nothing until it catches), so no wrapper call is needed.
        ``record``: (sink, version, owner) when uses are exposures (an experiment's create).
        """
        salt = self.salt_for(feature, key)
        allocation = self.ranges()
        starts = tuple(start for _, start, _ in allocation)
        names = tuple(name for name, _, _ in allocation)
        if record is not None and self.records_exposures:
            sink, version, owner = record
            queues, limits = sink.queues(feature, version, names, owner, shares(allocation))
            return _experiment(
                read, index, salt, starts, names, queues, limits, sink.overflow, failed
            )
        if len(names) == 2:
            return _split_two(read, index, salt, names[0], names[1], starts[1], failed)
        return _split(read, index, salt, starts, names, failed)

    def assign(self, feature: str, key: RuleKey, value: str) -> tuple[str, int | None]:
        """The implementation and bucket of a segment value (what ``picker`` answers)."""
        chosen = bucket(self.salt_for(feature, key), value)
        allocation = self.ranges()
        starts = [start for _, start, _ in allocation]
        return allocation[bisect_right(starts, chosen) - 1][0], chosen


# The picks: functions whose state is in their default arguments rather than in closure
# cells. As fast to read (LOAD_FAST), and two objects for the cyclic collector to track
# per pick (the function and its defaults) instead of one more per captured variable.


def _split_two(
    read: Callable[[Any], Any],
    index: int,
    salt: int,
    first: str,
    second: str,
    cut: int,
    failed: Failed,
) -> Pick:
    """Two ranges (any boolean rollout): one comparison instead of a bisect."""

    def split_two(
        args: tuple[Any, ...],
        read: Callable[[Any], Any] = read,
        index: int = index,
        salt: int = salt,
        first: str = first,
        second: str = second,
        cut: int = cut,
        failed: Failed = failed,
    ) -> str:
        try:
            if _hash(read(args[index]).encode(), salt) % BUCKETS < cut:
                return first
            return second
        except Exception as error:
            return failed(error)

    return split_two


def _split(
    read: Callable[[Any], Any],
    index: int,
    salt: int,
    starts: tuple[int, ...],
    names: tuple[str, ...],
    failed: Failed,
) -> Pick:
    def split(
        args: tuple[Any, ...],
        read: Callable[[Any], Any] = read,
        index: int = index,
        salt: int = salt,
        starts: tuple[int, ...] = starts,
        names: tuple[str, ...] = names,
        failed: Failed = failed,
    ) -> str:
        try:
            return names[
                bisect_right(starts, _hash(read(args[index]).encode(), salt) % BUCKETS) - 1
            ]
        except Exception as error:
            return failed(error)

    return split


def _experiment(
    read: Callable[[Any], Any],
    index: int,
    salt: int,
    starts: tuple[int, ...],
    names: tuple[str, ...],
    queues: tuple[UnitQueue, ...],
    limits: tuple[int, ...],
    overflow: Callable[[UnitQueue, str, int], None],
    failed: Failed,
) -> Pick:
    def experiment(
        args: tuple[Any, ...],
        read: Callable[[Any], Any] = read,
        index: int = index,
        salt: int = salt,
        starts: tuple[int, ...] = starts,
        names: tuple[str, ...] = names,
        queues: tuple[UnitQueue, ...] = queues,
        limits: tuple[int, ...] = limits,
        overflow: Callable[[UnitQueue, str, int], None] = overflow,
        failed: Failed = failed,
    ) -> str:
        try:
            value = read(args[index])
            found = bisect_right(starts, _hash(value.encode(), salt) % BUCKETS) - 1
            # Recording an exposure is an append to this implementation's queue.
            queue = queues[found]
            if len(queue) < limits[found]:
                queue.append(value)
            else:
                overflow(queue, value, limits[found])
            return names[found]
        except Exception as error:
            return failed(error)

    return experiment


_CONSTANTS: dict[str, Pick] = {}


def constant_pick(answer: str) -> Pick:
    """One shared function per answer: constant picks allocate nothing of their own."""
    pick = _CONSTANTS.get(answer)
    if pick is None:

        def pick(args: tuple[Any, ...], answer: str = answer) -> str:
            return answer

        pick = _CONSTANTS.setdefault(answer, pick)
    return pick


class Rollout(_Split):
    """Gradual rollout: a stable share of a segment's values per implementation."""

    kind = "rollout"


class Experiment(_Split):
    """A randomised experiment: like a rollout, and every use records an exposure."""

    kind = "experiment"
    records_exposures = True


Selector: TypeAlias = Static | Rollout | Experiment

KINDS: dict[str, type[Static] | type[Rollout] | type[Experiment]] = {
    kind.kind: kind for kind in (Static, Rollout, Experiment)
}
"""Every selector kind by the name its stored form carries."""


def decode_selector(document: Any, where: str) -> Selector:
    if type(document) is not dict:
        expect(document, dict, where)
    kind = KINDS.get(document.get("type"))
    if kind is None:
        raise CodecError(f"{where}.type: unknown selector type {document.get('type')!r}")
    return kind.decode(document, where)
