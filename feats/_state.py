"""The configuration model: an immutable FeatureState of rules to selectors, its builders, and
the one place that says what is wrong with a state, alone or against declarations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeAlias

from ._declarations import Registry
from ._errors import ConfigurationError, NotFoundError
from ._selectors import (
    KINDS,
    MAX_NAME,
    Experiment,
    Rollout,
    RuleKey,
    Selector,
    Static,
    rule_label,
    segment_name,
)

__all__ = [
    "MAX_VALUE",
    "SEGMENTS",
    "Change",
    "Experiment",
    "FeatureState",
    "Issue",
    "Rollout",
    "RuleKey",
    "Selector",
    "Static",
    "resolve_state",
    "rule_label",
    "segment_name",
    "shape_issues",
    "state_issues",
    "validate_state",
]

MAX_VALUE = 1_000
"""A segment value in a rule key is at most this long."""
_SELECTOR_TYPES = tuple(KINDS.values())


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
            if not isinstance(selector, _SELECTOR_TYPES):
                kinds = [kind.__name__ for kind in _SELECTOR_TYPES]
                raise ConfigurationError(
                    f"rule {key!r}: expected {', '.join(kinds[:-1])} or {kinds[-1]}, "
                    f"got {selector!r}"
                )
            normalised[_normalise_key(key)] = selector
        object.__setattr__(self, "rules", MappingProxyType(normalised))

    @classmethod
    def of(cls, segments: tuple[str, ...], rules: dict[RuleKey, Selector]) -> FeatureState:
        """A state from parts already of the right kinds (the codec's): no normalising."""
        state = object.__new__(cls)
        object.__setattr__(state, "segments", segments)
        object.__setattr__(state, "rules", MappingProxyType(rules))
        return state

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

    def label(self, key: RuleKey) -> str:
        """``Country=CA`` for the rule keyed ``("CA",)``, ``fallthrough`` for None."""
        return rule_label(self.segments, key)

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
            labels = ", ".join(self.label(k) for k in self.rules) or "none"
            raise NotFoundError(f"no rule for {key!r}; rules are {labels}")
        return FeatureState(self.segments, {k: v for k, v in self.rules.items() if k != normalised})

    def with_segments(self, segments: Iterable[Any]) -> FeatureState:
        """A copy segmented differently; the keyed rules go, the fallthrough stays."""
        fallthrough = self.fallthrough
        return FeatureState(segments, {} if fallthrough is None else {None: fallthrough})

    def splits(self) -> Iterator[tuple[RuleKey, Selector]]:
        """The rules whose selector hashes users (rollouts, experiments)."""
        for key, selector in self.rules.items():
            if selector.hashing() is not None:
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


class _Segments:
    """Where an issue is the state's list of segments rather than one rule."""

    def __repr__(self) -> str:
        return "SEGMENTS"


SEGMENTS = _Segments()
Where: TypeAlias = RuleKey | _Segments


@dataclass(frozen=True)
class Issue:
    """One thing wrong with a state: in its segments (``SEGMENTS``) or in one rule."""

    where: Where
    message: str
    serves: bool = False
    """An App serves the rule all the same (a value that is not one of the OPTIONS)."""


def shape_issues(state: FeatureState) -> list[Issue]:
    """What is wrong with ``state`` whatever the declarations: a key with the wrong number
    of values, a name too long, weights that cannot split users. A stored state with any of
    these is unreadable; a written one is refused."""
    issues: list[Issue] = []
    segments = state.segments
    for name in segments:
        if not name or len(name) > MAX_NAME:
            issues.append(
                Issue(SEGMENTS, f"a segment name of 1-{MAX_NAME} characters, got {name!r}")
            )
    if len(set(segments)) != len(segments):
        issues.append(Issue(SEGMENTS, f"a segment is listed twice in {list(segments)}"))
    for key, selector in state.rules.items():
        if key is not None:
            if len(key) != len(segments) or not segments:
                issues.append(
                    Issue(
                        key,
                        f"rule {list(key)} has {len(key)} value(s) but the state has "
                        f"{len(segments)} segment(s) {list(segments)}; a rule key has one "
                        "value per segment",
                    )
                )
                continue
            if any(len(value) > MAX_VALUE for value in key):
                issues.append(
                    Issue(key, f"rule {state.label(key)}: a value over {MAX_VALUE} characters")
                )
        problems = selector.shape_problems()
        if problems:
            # Labels are made only for what is reported: decoding sound states stays quick.
            label = "fallthrough" if key is None else f"rule {state.label(key)}"
            issues.extend(Issue(key, f"{label}: {problem}") for problem in problems)
    return issues


def state_issues(
    feature: str, state: FeatureState, registry: Registry, *, shaped: bool = False
) -> list[Issue]:
    """Everything that keeps ``registry``'s declarations from serving ``state`` as written.

    The one check behind write validation, drift, and an App keeping its last good state.
    ``shaped``: the state came from the codec, which already checked its shape.
    """
    declaration = registry.features.get(feature)
    if declaration is None:
        return [Issue(SEGMENTS, f"unknown feature {feature!r}")]
    issues = [] if shaped else shape_issues(state)
    if issues:
        return issues
    valid = {segment.name for segment in registry.valid_segments(feature)}

    def segment_issue(where: Where, label: str, name: str) -> Issue | None:
        if name not in registry.segments:
            known = ", ".join(registry.segments) or "none"
            return Issue(where, f"{label}unknown segment {name!r} (segments: {known})")
        if name not in valid:
            return Issue(
                where,
                f"{label}segment {name} cannot read this feature's inputs "
                f"(valid segments: {', '.join(sorted(valid)) or 'none'})",
            )
        return None

    segments_ok = True
    for name in state.segments:
        found = segment_issue(SEGMENTS, "", name)
        if found is not None:
            issues.append(found)
            segments_ok = False
    implementations = declaration.implementations
    for key, selector in state.rules.items():
        label = f"{state.label(key)}: " if key is None else f"rule {state.label(key)}: "
        if key is not None and segments_ok:
            for name, value in zip(state.segments, key, strict=True):
                options = registry.segments[name].options
                if options is not None and value not in options:
                    issues.append(
                        Issue(
                            key,
                            f"{label}{value!r} is not an option of {name} "
                            f"(options: {', '.join(options)})",
                            serves=True,
                        )
                    )
        for implementation in selector.implementations():
            if implementation not in implementations:
                issues.append(
                    Issue(
                        key,
                        f"{label}unknown implementation {implementation!r} "
                        f"(implementations: {', '.join(implementations)})",
                    )
                )
        reads = selector.reads()
        if reads is not None:
            found = segment_issue(key, label, reads)
            if found is not None:
                issues.append(found)
    return issues


def unserved(
    feature: str, state: FeatureState | None, registry: Registry
) -> tuple[str | None, dict[RuleKey, str]]:
    """What an App with ``registry``'s declarations cannot serve of ``state``, as its
    explain() says it: the whole state (its segments), and rule by rule (drift)."""
    if state is None or feature not in registry.features:
        return None, {}
    broken: str | None = None
    drift: dict[RuleKey, str] = {}
    for issue in state_issues(feature, state, registry):
        if isinstance(issue.where, _Segments):
            broken = broken or issue.message
        elif not issue.serves:
            drift.setdefault(issue.where, issue.message)
    return broken, drift


def _unchanged(issue: Issue, before: FeatureState, after: FeatureState) -> bool:
    key = issue.where
    if isinstance(key, _Segments):
        return before.segments == after.segments
    return (
        before.segments == after.segments
        and key in before.rules
        and before.rules[key] == after.rules.get(key)
    )


def validate_state(
    feature: str, state: FeatureState, registry: Registry, *, before: FeatureState | None = None
) -> None:
    """Raise ConfigurationError unless ``registry``'s declarations can serve ``state``.

    With ``before`` (the state it replaces), issues in rules the change leaves as they were
    are let through: drift can be repaired one rule at a time.
    """
    if feature not in registry.features:
        raise NotFoundError(f"unknown feature {feature!r}")
    issues = state_issues(feature, state, registry)
    if before is not None:
        issues = [issue for issue in issues if not _unchanged(issue, before, state)]
    if issues:
        raise ConfigurationError(f"{feature}: {issues[0].message}")


def resolve_state(feature: str, state: FeatureState, previous: FeatureState | None) -> FeatureState:
    """Give every split a salt and an allocation, carried over from ``previous`` where it fits."""
    old = dict(previous.rules) if previous is not None else {}
    return FeatureState(
        state.segments,
        {
            key: selector.resolved(feature, key, old.get(key))
            for key, selector in state.rules.items()
        },
    )
