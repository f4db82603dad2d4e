"""The compiled snapshot: configuration turned into dict lookups for evaluation, and the one
explanation of a decision that both ``explain()`` and the admin's explain give."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ._bucketing import BUCKETS
from ._declarations import FeatureDeclaration, Registry
from ._errors import ConfigurationError
from ._selectors import ExposureSink, Pick, RuleKey, Selector, constant_pick
from ._state import FeatureState

__all__ = [
    "CompiledFeature",
    "Evaluation",
    "MissingSegment",
    "SegmentFailed",
    "error_text",
    "explain_state",
    "explain_values",
]

Warn = Callable[[str, str, str], None]
"""``warn(feature, cause, message)``: the App logs each (feature, cause) once."""
Observe = Callable[["CompiledFeature", tuple[Any, ...]], None]
"""``observe(compiled, args)``: told of every answer, after it was chosen."""
Resolve = Callable[[str, Any], "tuple[FeatureState | None, str | None]"]
"""``resolve(name, source)``: a lazily loaded feature's state and version, at first use."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Why a feature answered the way it did for some inputs."""

    feature: str
    implementation: str
    reason: str
    segment_values: Mapping[str, str]
    selector: Selector | None
    version: str | None
    rule: RuleKey = None
    bucket: int | None = None
    default: bool = False
    stale: bool = False


class MissingSegment(LookupError):
    """explain_state needed a segment's value that it was not given."""

    def __init__(self, segment: str) -> None:
        super().__init__(segment)
        self.segment = segment


class SegmentFailed(Exception):
    """A segment raised while explain_state read its value from the inputs."""

    def __init__(self, segment: str, error: Exception) -> None:
        super().__init__(segment, error)
        self.segment = segment
        self.error = error


def explain_state(
    feature: str,
    default: str,
    state: FeatureState | None,
    version: str | None,
    read: Callable[[str], str],
    *,
    broken: str | None = None,
    drift: Callable[[RuleKey], str | None] | None = None,
    stale: bool = False,
    note: str | None = None,
) -> Evaluation:
    """Which implementation a state gives the user whose segment values ``read`` returns.

    ``read(segment)`` raises MissingSegment for a value it does not have (ConfigurationError
    here, if the decision needs it) or SegmentFailed (the default answers, as evaluation
    would). ``broken``: why the code cannot serve the state at all; ``drift(key)``: why it
    cannot serve one rule. Never raises for anything else.
    """
    values: dict[str, str] = {}

    def answer(implementation: str, reason: str, **more: Any) -> Evaluation:
        return Evaluation(
            feature=feature,
            implementation=implementation,
            reason=reason if note is None else f"{note}: {reason}",
            segment_values=values,
            version=version,
            stale=stale,
            default=implementation == default and more.get("selector") is None,
            **{"selector": None, **more},
        )

    def value(segment: str) -> str:
        found = values.get(segment)
        if found is None:
            found = values[segment] = read(segment)
        return found

    if state is None:
        return answer(default, "no configuration: the default answers")
    if broken is not None:
        return answer(default, f"configuration drift: {broken}")
    key: RuleKey = None
    if state.segments:
        try:
            key = tuple(value(segment) for segment in state.segments)
        except MissingSegment:
            if any(rule is not None for rule in state.rules):
                missing = [segment for segment in state.segments if segment not in values]
                raise ConfigurationError(
                    f"{feature}'s rules are keyed by {', '.join(state.segments)}: "
                    f"give {' '.join(f'{name}=VALUE' for name in missing)}"
                ) from None
        except SegmentFailed as failed:
            return answer(default, _raised(failed))
    if key is not None and key in state.rules:
        rule: RuleKey = key
        where = f"rule {state.label(key)}"
    else:
        rule = None
        where = "no rule matched; fallthrough" if state.segments else "the only rule"
    selector = state.rules.get(rule)
    if selector is None:
        return answer(default, "no rule matched and no fallthrough: the default answers")
    problem = None if drift is None else drift(rule)
    if problem is not None:
        return answer(default, f"configuration drift in {where}: {problem}")
    segment = selector.reads()
    if segment is None:
        implementation = selector.assign(feature, rule, "")[0]
        return answer(
            implementation,
            f"{where}: {selector.kind} {implementation}",
            selector=selector,
            rule=rule,
        )
    try:
        given = value(segment)
    except MissingSegment:
        raise ConfigurationError(
            f"{where} is a {selector.kind} by {segment}: give {segment}=VALUE"
        ) from None
    except SegmentFailed as failed:
        return answer(default, _raised(failed))
    try:
        implementation, chosen = selector.assign(feature, rule, given)
    except Exception as error:
        # A segment that returned something other than text: evaluation answers the
        # default for it, and so does its explanation.
        return answer(default, _raised(SegmentFailed(segment, error)))
    return answer(
        implementation,
        f"{where}: {selector.kind} by {segment}, bucket {chosen} of {BUCKETS}",
        selector=selector,
        rule=rule,
        bucket=chosen,
    )


def explain_values(
    feature: str,
    default: str,
    state: FeatureState | None,
    version: str | None,
    values: Mapping[str, str],
    *,
    broken: str | None = None,
    drift: Callable[[RuleKey], str | None] | None = None,
    stale: bool = False,
    note: str | None = None,
) -> Evaluation:
    """explain_state for given segment values (``{"Country": "US", "UserId": "42"}``)."""
    return explain_state(
        feature,
        default,
        state,
        version,
        value_reader(values),
        broken=broken,
        drift=drift,
        stale=stale,
        note=note,
    )


def value_reader(values: Mapping[str, str]) -> Callable[[str], str]:
    """A segment's value from given values; MissingSegment for one not given."""

    def read(segment: str) -> str:
        found = values.get(segment)
        if found is None:
            raise MissingSegment(segment)
        return found

    return read


def _raised(failed: SegmentFailed) -> str:
    return f"segment {failed.segment} raised {error_text(failed.error)}"


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"\d{6,}")
MAX_ERROR_TEXT = 80


def error_text(error: BaseException) -> str:
    """An exception raised by user code (a segment), as logs and explanations show it: its
    type and at most MAX_ERROR_TEXT characters of its message, with what looks like an
    e-mail address or a long number (an account, a card, a phone) masked."""
    message = _NUMBER.sub("<number>", _EMAIL.sub("<email>", str(error)))
    if len(message) > MAX_ERROR_TEXT:
        message = message[: MAX_ERROR_TEXT - 3] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@dataclass(frozen=True, slots=True)
class _Reader:
    segment: str
    index: int
    read: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Drift:
    cause: str
    message: str


_constant = constant_pick
_NO_DRIFTS: dict[RuleKey, _Drift] = {}
"""Shared by every feature without drift (most): never written to."""


class CompiledFeature:
    """One feature's configuration, compiled for evaluation with no I/O and little allocation."""

    __slots__ = (
        "__weakref__",
        "_drifts",
        "_first",
        "_note",
        "_observe",
        "_problem",
        "_readers",
        "_ready",
        "_record",
        "_registry",
        "_resolver",
        "_source",
        "_warn",
        "choose",
        "declaration",
        "default",
        "name",
        "state",
        "use",
        "version",
    )

    def __init__(
        self,
        declaration: FeatureDeclaration,
        state: FeatureState | None,
        version: str | None,
        registry: Registry,
        warn: Warn,
        record: ExposureSink,
        *,
        note: str | None = None,
        observe: Observe | None = None,
        resolve: Resolve | None = None,
        source: Any = None,
        first: Callable[[str], str | None] | None = None,
    ) -> None:
        """``note``: said first in every explain() reason (e.g. an override in tests).
        ``observe``: called after every choose and use (evaluation listeners, opt-in).
        ``resolve``: the state is not known yet; ``resolve(name, source)`` gives it (and its
        version) when the feature is first used (one function for every feature, so a
        lazily loaded feature holds nothing of its own but its source). ``first(name)``:
        called at the first use, and what it returns becomes the note."""
        self.declaration = declaration
        self._resolver = resolve
        self._source = source
        self._first = first
        self.name = declaration.name
        self.state = state
        self.version = version
        self.default = declaration.default
        self._warn = warn
        self._record = record
        self._registry = registry
        self._note = note
        self._observe = observe
        # Compiled on first use: loading 10,000 features allocates no readers, tables or
        # closures for the ones this process never evaluates. The result is the same as
        # compiling here: when a segment is declared later, the core replaces every
        # configured feature's CompiledFeature anyway. A constant answer (no state, or one
        # static fallthrough) is a shared function at once; otherwise choose and use start
        # as trampolines (bound methods, not a __getattr__: that would slow every read of
        # .use on the hot path) that build both and hand over.
        self._ready = False
        constant = None if resolve or first else self._constant_answer(state)
        if constant is not None:
            self.choose: Pick = self._watched(_constant(constant))
            self.use: Pick = self.choose
        else:
            self.choose = self._first_choose
            self.use = self._first_use

    _readers: dict[str, _Reader]
    _drifts: dict[RuleKey, _Drift]
    _problem: _Drift | None

    def _constant_answer(self, state: FeatureState | None) -> str | None:
        """The one implementation every input gets, when the state says so without segments."""
        if state is None:
            return self.default
        if state.segments:
            return None
        if not state.rules:
            return self.default
        selector = state.rules.get(None)
        if len(state.rules) == 1 and selector is not None:
            answer = selector.constant()
            if answer is not None and answer in self.declaration.implementations:
                return answer
        return None

    def _first_choose(self, args: tuple[Any, ...]) -> str:
        self._finish()
        return self.choose(args)

    def _first_use(self, args: tuple[Any, ...]) -> str:
        self._finish()
        return self.use(args)

    compiles: ClassVar[int] = 0
    """Features compiled in this process so far, and when the last one was (monotonic):
    the App's writer freezes the heap once many were and compiling has settled."""
    compiled_at: ClassVar[float] = 0.0

    def _finish(self) -> None:
        self._prepare()
        CompiledFeature.compiles += 1
        CompiledFeature.compiled_at = time.monotonic()
        constant = self._constant_answer(self.state)
        if constant is not None:
            self.choose = self.use = self._watched(_constant(constant))
            return
        choose = self._build(None)
        use = self._build(self._record) if self._records_exposures() else choose
        # Two threads may race here; both build the same thing, either result is right.
        self.choose = self._watched(choose)
        self.use = self._watched(use) if use is not choose else self.choose

    def _records_exposures(self) -> bool:
        state = self.state
        return state is not None and any(
            getattr(selector, "records_exposures", False) for selector in state.rules.values()
        )

    def _watched(self, pick: Pick) -> Pick:
        """``pick``, reporting each answer to the observer when there is one."""
        observe = self._observe
        if observe is None:
            return pick

        def watched(args: tuple[Any, ...]) -> str:
            implementation = pick(args)
            observe(self, args)
            return implementation

        return watched

    # -- compilation -------------------------------------------------------------------

    def _prepare(self) -> None:
        """Find a reader for every segment the state reads, and what the code cannot serve."""
        if self._ready:
            return
        if self._resolver is not None:
            self.state, self.version = self._resolver(self.name, self._source)
            self._resolver = self._source = None
        if self._first is not None:
            self._note = self._first(self.name)
            self._first = None
        readers: dict[str, _Reader] = {}
        drifts: dict[RuleKey, _Drift] = {}
        problem: _Drift | None = None
        state = self.state
        if state is not None:
            for segment in state.segments:
                reader = self._reader(segment)
                if isinstance(reader, _Drift):
                    problem = reader
                    break
                readers[segment] = reader
            known = self.declaration.implementations
            for key, selector in state.rules.items():
                unknown = [name for name in selector.implementations() if name not in known]
                if unknown:
                    drifts[key] = _Drift(
                        f"implementation:{unknown[0]}",
                        f"configuration names implementation {unknown[0]!r}, "
                        "which this code does not have",
                    )
                    continue
                hashed = selector.reads()
                if hashed is not None and hashed not in readers:
                    found = self._reader(hashed)
                    if isinstance(found, _Drift):
                        drifts[key] = found
                    else:
                        readers[hashed] = found
        self._readers = readers
        self._drifts = drifts or _NO_DRIFTS
        self._problem = problem
        self._ready = True

    def _reader(self, segment: str) -> _Reader | _Drift:
        """How this feature's inputs give ``segment``'s value: one _Reader per segment and
        set of input types, shared through the registry."""
        shared = self._registry.compiled
        key = (segment, self.declaration.input_types)
        try:
            found = shared.get(key)
        except TypeError:  # an unhashable annotation: nothing to share
            return self._new_reader(segment)
        if found is None:
            found = shared[key] = self._new_reader(segment)
        reader: _Reader | _Drift = found
        return reader

    def _new_reader(self, segment: str) -> _Reader | _Drift:
        declared = self._registry.segments.get(segment)
        if declared is None:
            return _Drift(
                f"segment:{segment}",
                f"configuration names segment {segment!r}, which this code does not declare",
            )
        found = declared.reader_for(self.declaration.input_types)
        if found is None:
            return _Drift(
                f"segment:{segment}",
                f"segment {segment!r} cannot read this feature's inputs",
            )
        index, accessor = found
        return _Reader(segment, index, accessor.read)

    # -- the hot path ------------------------------------------------------------------

    def _pick(
        self, key: RuleKey, record: ExposureSink | None, failed: Callable[[Exception], str]
    ) -> Pick:
        default = self.default
        assert self.state is not None
        selector = self.state.rules.get(key)
        if selector is None:
            return _constant(default)
        drift = self._drifts.get(key)
        if drift is not None:
            return _drifted(self._warn, self.name, drift, default)
        segment = selector.reads()
        reader = None if segment is None else self._readers[segment]
        return selector.picker(
            self.name,
            key,
            _never if reader is None else reader.read,
            0 if reader is None else reader.index,
            failed,
            None if record is None else (record, self.version, self),
        )

    def _build(self, record: ExposureSink | None) -> Pick:
        default, name, warn = self.default, self.name, self._warn
        assert self.state is not None
        failed = _failed(warn, name, default)
        problem = self._problem
        if problem is not None:
            return _drifted(warn, name, problem, default)
        fallthrough = self._pick(None, record, failed)
        if not self.state.segments:
            return fallthrough
        keyed = [key for key in self.state.rules if key is not None]
        readers = [self._readers[segment] for segment in self.state.segments]
        table: dict[Any, Pick] = {}
        constants: dict[Any, str] = {}
        single = len(readers) == 1
        for key in keyed:
            lookup: Any = key[0] if single else key
            selector = self.state.rules[key]
            constant = selector.constant() if key not in self._drifts else None
            if constant is not None:
                constants[lookup] = constant
            else:
                table[lookup] = self._pick(key, record, failed)

        if single:
            return _choose_one(
                readers[0].read, readers[0].index, constants, table, fallthrough, failed
            )
        reads = tuple((r.read, r.index) for r in readers)
        return _choose_many(reads, constants, table, fallthrough, failed)

    # -- explain -----------------------------------------------------------------------

    def explain_values(self, values: Mapping[str, str], *, stale: bool = False) -> Evaluation:
        """Which implementation users with these segment values get from this feature's
        state, and why: the same explanation as explain(), drift included (the default
        answers where the code cannot serve a rule)."""
        self._prepare()
        return self._explained(value_reader(values), stale)

    def _drift_of(self, key: RuleKey) -> str | None:
        found = self._drifts.get(key)
        return None if found is None else found.message

    def explain(self, args: tuple[Any, ...], *, stale: bool = False) -> Evaluation:
        """The same decision as ``choose``, with every step recorded. Never raises."""
        self._prepare()
        readers = self._readers

        def read(segment: str) -> str:
            reader = readers[segment]
            try:
                value: str = reader.read(args[reader.index])
            except Exception as error:
                raise SegmentFailed(segment, error) from error
            return value

        return self._explained(read, stale)

    def _explained(self, read: Callable[[str], str], stale: bool) -> Evaluation:
        """explain_state of this feature's state, its drift and its note, on ``read``."""
        return explain_state(
            self.name,
            self.default,
            self.state,
            self.version,
            read,
            broken=None if self._problem is None else self._problem.message,
            drift=self._drift_of,
            stale=stale,
            note=self._note,
        )


# The picks, their state in default arguments rather than closure cells: see _selectors.


def _failed(warn: Warn, name: str, default: str) -> Callable[[Exception], str]:
    def failed(
        error: Exception, warn: Warn = warn, name: str = name, default: str = default
    ) -> str:
        warn(name, f"raised:{type(error).__name__}", f"a segment raised {error_text(error)}")
        return default

    return failed


def _drifted(warn: Warn, name: str, drift: _Drift, default: str) -> Pick:
    def drifted(
        args: tuple[Any, ...],
        warn: Warn = warn,
        name: str = name,
        drift: _Drift = drift,
        default: str = default,
    ) -> str:
        warn(name, drift.cause, drift.message)
        return default

    return drifted


def _choose_one(
    read: Callable[[Any], Any],
    index: int,
    constants: dict[Any, str],
    table: dict[Any, Pick],
    fallthrough: Pick,
    failed: Callable[[Exception], str],
) -> Pick:
    def choose_one(
        args: tuple[Any, ...],
        read: Callable[[Any], Any] = read,
        index: int = index,
        constants: dict[Any, str] = constants,
        table: dict[Any, Pick] = table,
        fallthrough: Pick = fallthrough,
        failed: Callable[[Exception], str] = failed,
    ) -> str:
        try:
            value = read(args[index])
            found = constants.get(value)
            if found is not None:
                return found
            return table.get(value, fallthrough)(args)
        except Exception as error:
            return failed(error)

    return choose_one


def _choose_many(
    reads: tuple[tuple[Callable[[Any], Any], int], ...],
    constants: dict[Any, str],
    table: dict[Any, Pick],
    fallthrough: Pick,
    failed: Callable[[Exception], str],
) -> Pick:
    def choose_many(
        args: tuple[Any, ...],
        reads: tuple[tuple[Callable[[Any], Any], int], ...] = reads,
        constants: dict[Any, str] = constants,
        table: dict[Any, Pick] = table,
        fallthrough: Pick = fallthrough,
        failed: Callable[[Exception], str] = failed,
    ) -> str:
        try:
            key = tuple([read(args[index]) for read, index in reads])
            found = constants.get(key)
            if found is not None:
                return found
            return table.get(key, fallthrough)(args)
        except Exception as error:
            return failed(error)

    return choose_many


def _never(value: Any) -> Any:
    raise AssertionError("a selector that reads no segment was given a reader")
