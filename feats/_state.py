"""The configuration model: immutable FeatureState and selectors, their builders and validation."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeAlias

from ._bucketing import BUCKETS, Allocation, allocate, bucket_counts, derive_salt, shares
from ._declarations import Registry
from ._errors import ConfigurationError, NotFoundError

__all__ = [
    "Change",
    "Experiment",
    "FeatureState",
    "Rollout",
    "RuleKey",
    "Selector",
    "Static",
    "resolve_state",
    "segment_name",
    "validate_state",
]

RuleKey: TypeAlias = tuple[str, ...] | None
"""One value per segment of the state, or ``None`` for the fallthrough."""


def segment_name(segment: Any) -> str:
    """Accept a segment handle, a declaration or a plain name."""
    if isinstance(segment, str):
        return segment
    name = getattr(segment, "name", None)
    if isinstance(name, str):
        return name
    raise ConfigurationError(f"expected a segment or its name, got {segment!r}")


@dataclass(frozen=True)
class Static:
    """Always the same implementation."""

    implementation: str

    def implementations(self) -> tuple[str, ...]:
        return (self.implementation,)

    def describe(self) -> str:
        return self.implementation


@dataclass(frozen=True, init=False)
class _Split:
    """Weighted assignment by the hash of one segment's value."""

    segment: str
    weights: Mapping[str, float]
    salt: int | None = None
    allocation: Allocation | None = None

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

    def describe(self) -> str:
        total = sum(self.weights.values()) or 1
        parts = ", ".join(
            f"{name} {_percent(weight / total)}" for name, weight in self.weights.items()
        )
        return f"{self.kind} by {self.segment}: {parts}"

    kind = "split"

    def resolved(self, salt: int, previous: _Split | None) -> _Split:
        """This split with a salt and an allocation that moves few users from ``previous``."""
        if self.salt is not None and self.allocation is not None:
            return self
        carried = previous if previous is not None and previous.segment == self.segment else None
        if self.salt is not None:
            salt = self.salt
        elif carried is not None and carried.salt is not None:
            salt = carried.salt
        base = carried.allocation if carried is not None and carried.salt == salt else None
        return type(self)(
            self.segment,
            self.weights,
            salt=salt,
            allocation=self.allocation or allocate(self.weights, base),
        )


def _percent(fraction: float) -> str:
    value = fraction * 100
    return f"{value:.0f}%" if value == int(value) else f"{value:.3g}%"


class Rollout(_Split):
    """Gradual rollout: a stable share of a segment's values per implementation."""

    kind = "rollout"


class Experiment(_Split):
    """A randomised experiment: like a rollout, and every use records an exposure."""

    kind = "experiment"


Selector: TypeAlias = Static | Rollout | Experiment


def _normalise_key(key: Any) -> RuleKey:
    if key is None:
        return None
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and all(isinstance(value, str) for value in key):
        return key
    if isinstance(key, list) and all(isinstance(value, str) for value in key):
        return tuple(key)
    raise ConfigurationError(f"a rule key is a tuple of strings or None, got {key!r}")


@dataclass(frozen=True, init=False)
class FeatureState:
    """A feature's configuration: ordered segments and rules from their values to selectors."""

    segments: tuple[str, ...]
    rules: Mapping[RuleKey, Selector]

    def __init__(
        self,
        segments: Iterable[Any] = (),
        rules: Mapping[Any, Selector] | None = None,
    ) -> None:
        object.__setattr__(self, "segments", tuple(segment_name(s) for s in segments))
        normalised: dict[RuleKey, Selector] = {}
        for key, selector in (rules or {}).items():
            if not isinstance(selector, Static | Rollout | Experiment):
                raise ConfigurationError(
                    f"rule {key!r}: expected Static, Rollout or Experiment, got {selector!r}"
                )
            normalised[_normalise_key(key)] = selector
        object.__setattr__(self, "rules", MappingProxyType(normalised))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FeatureState)
            and self.segments == other.segments
            and dict(self.rules) == dict(other.rules)
        )

    def __hash__(self) -> int:
        return hash((self.segments, tuple(self.rules.items())))

    def __repr__(self) -> str:
        return f"FeatureState(segments={list(self.segments)!r}, rules={dict(self.rules)!r})"

    @property
    def fallthrough(self) -> Selector | None:
        return self.rules.get(None)

    def with_rule(self, key: Any, selector: Selector) -> FeatureState:
        """A copy with ``key`` routed to ``selector`` (added or replaced)."""
        rules = dict(self.rules)
        rules[_normalise_key(key)] = selector
        return FeatureState(self.segments, rules)

    def with_fallthrough(self, selector: Selector) -> FeatureState:
        return self.with_rule(None, selector)

    def without_rule(self, key: Any) -> FeatureState:
        """A copy without the rule for ``key``; NotFoundError if there is none."""
        normalised = _normalise_key(key)
        if normalised not in self.rules:
            raise NotFoundError(f"no rule for {key!r}; rules are {list(self.rules)!r}")
        return FeatureState(self.segments, {k: v for k, v in self.rules.items() if k != normalised})

    def with_segments(self, segments: Iterable[Any]) -> FeatureState:
        """A copy segmented differently; the keyed rules go, the fallthrough stays."""
        fallthrough = self.fallthrough
        return FeatureState(segments, {} if fallthrough is None else {None: fallthrough})

    def splits(self) -> Iterator[tuple[RuleKey, Rollout | Experiment]]:
        for key, selector in self.rules.items():
            if isinstance(selector, Rollout | Experiment):
                yield key, selector


@dataclass(frozen=True)
class Change:
    """One version of a feature's configuration, as the history keeps it."""

    version: str
    feature: str
    state: FeatureState | None
    author: str
    reason: str
    time: datetime
    extra: Mapping[str, Any] = field(default_factory=dict)


def validate_state(feature: str, state: FeatureState, registry: Registry) -> None:
    """Raise ConfigurationError unless ``state`` fits ``feature`` as declared in ``registry``."""
    declaration = registry.features.get(feature)
    if declaration is None:
        raise NotFoundError(f"unknown feature {feature!r}")
    where = f"{feature}"
    if len(set(state.segments)) != len(state.segments):
        raise ConfigurationError(f"{where}: a segment is listed twice in {list(state.segments)}")
    valid = {segment.name for segment in registry.valid_segments(feature)}
    for name in state.segments:
        _check_segment(where, name, valid, registry)
    for key, selector in state.rules.items():
        rule = "fallthrough" if key is None else f"rule {key!r}"
        if key is not None:
            if len(key) != len(state.segments):
                raise ConfigurationError(
                    f"{where}: {rule} has {len(key)} value(s) but the state has "
                    f"{len(state.segments)} segment(s) {list(state.segments)}; "
                    "a rule key has one value per segment"
                )
            for name, value in zip(state.segments, key, strict=True):
                options = registry.segments[name].options
                if options is not None and value not in options:
                    raise ConfigurationError(
                        f"{where}: {rule}: {value!r} is not an option of {name} "
                        f"(options: {', '.join(options)})"
                    )
        for implementation in selector.implementations():
            if implementation not in declaration.implementations:
                raise ConfigurationError(
                    f"{where}: {rule}: unknown implementation {implementation!r} "
                    f"(implementations: {', '.join(declaration.implementations)})"
                )
        if isinstance(selector, Rollout | Experiment):
            _check_segment(f"{where}: {rule}", selector.segment, valid, registry)
            weights = list(selector.weights.values())
            if not weights or any(
                not isinstance(w, int | float)
                or isinstance(w, bool)
                or math.isnan(w)
                or w < 0
                or math.isinf(w)
                for w in weights
            ):
                raise ConfigurationError(
                    f"{where}: {rule}: weights must be non-negative numbers, "
                    f"got {dict(selector.weights)}"
                )
            if sum(weights) <= 0:
                raise ConfigurationError(
                    f"{where}: {rule}: weights must have a positive sum, "
                    f"got {dict(selector.weights)}"
                )
            if selector.allocation is not None and shares(selector.allocation) != {
                name: count / BUCKETS
                for name, count in bucket_counts(selector.weights).items()
                if count
            }:
                raise ConfigurationError(
                    f"{where}: {rule}: the allocation does not match the weights "
                    f"{dict(selector.weights)}; leave allocation out and feats computes it"
                )


def _check_segment(where: str, name: str, valid: set[str], registry: Registry) -> None:
    if name not in registry.segments:
        raise ConfigurationError(
            f"{where}: unknown segment {name!r} "
            f"(segments: {', '.join(registry.segments) or 'none'})"
        )
    if name not in valid:
        raise ConfigurationError(
            f"{where}: segment {name} cannot read this feature's inputs "
            f"(valid segments: {', '.join(sorted(valid)) or 'none'})"
        )


def resolve_state(feature: str, state: FeatureState, previous: FeatureState | None) -> FeatureState:
    """Give every split a salt and an allocation, carried over from ``previous`` where it fits.

    The same rule key, the same segment: the salt stays and the allocation is rebalanced
    with minimal reassignment, so a change of weights moves the fewest users.
    """
    old = dict(previous.rules) if previous is not None else {}
    rules: dict[RuleKey, Selector] = {}
    for key, selector in state.rules.items():
        if isinstance(selector, Rollout | Experiment):
            before = old.get(key)
            salt = derive_salt(feature, repr(key), selector.segment)
            rules[key] = selector.resolved(
                salt, before if isinstance(before, Rollout | Experiment) else None
            )  # type: ignore[assignment]
        else:
            rules[key] = selector
    return FeatureState(state.segments, rules)
