"""The compiled snapshot: configuration turned into dict lookups, evaluate() and explain()."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import xxhash

from ._bucketing import BUCKETS, allocate, derive_salt
from ._bucketing import bucket as bucket_of
from ._declarations import FeatureDeclaration, Registry, SegmentDeclaration
from ._state import Experiment, FeatureState, Rollout, RuleKey, Selector, Static

__all__ = ["CompiledFeature", "Evaluation"]

Warn = Callable[[str, str, str], None]
"""``warn(feature, cause, message)``: the App logs each (feature, cause) once."""
RecordExposure = Callable[[str, str, str, "str | None"], None]
"""``record(feature, implementation, unit_value, version)``, buffered off the hot path."""
Pick = Callable[[tuple[Any, ...]], str]
Observe = Callable[["CompiledFeature", tuple[Any, ...]], None]
"""``observe(compiled, args)``: told of every answer, after it was chosen."""

_hash = xxhash.xxh3_64_intdigest
"""bucket_of() inlined by the splits: no function call per evaluation on the hot path."""


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


@dataclass(frozen=True, slots=True)
class _Reader:
    segment: str
    index: int
    read: Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Split:
    selector: Rollout | Experiment
    reader: _Reader
    salt: int
    starts: list[int]
    names: list[str]


@dataclass(frozen=True, slots=True)
class _Drift:
    cause: str
    message: str


_Compiled = str | _Split | _Drift


_CONSTANTS: dict[str, Pick] = {}


def _constant(answer: str) -> Pick:
    """One shared function per answer: constant features allocate nothing of their own."""
    pick = _CONSTANTS.get(answer)
    if pick is None:

        def pick(args: tuple[Any, ...]) -> str:
            return answer

        pick = _CONSTANTS.setdefault(answer, pick)
    return pick


class CompiledFeature:
    """One feature's configuration, compiled for evaluation with no I/O and little allocation."""

    __slots__ = (
        "_fallthrough",
        "_has_experiment",
        "_note",
        "_observe",
        "_problem",
        "_readers",
        "_ready",
        "_record",
        "_registry",
        "_rules",
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
        record: RecordExposure,
        *,
        note: str | None = None,
        observe: Observe | None = None,
    ) -> None:
        """``note``: said first in every explain() reason (e.g. an override in tests).
        ``observe``: called after every choose and use (evaluation listeners, opt-in)."""
        self.declaration = declaration
        self._note = note
        self._observe = observe
        self.name = declaration.name
        self.state = state
        self.version = version
        self.default = declaration.default
        self._warn = warn
        self._record = record
        self._registry = registry
        # Compiled on first use: loading 10,000 features allocates no readers, tables or
        # closures for the ones this process never evaluates. The result is the same as
        # compiling here: when a segment is declared later, the core replaces every
        # configured feature's CompiledFeature anyway. A constant answer (no state, or one
        # static fallthrough) is a shared function at once; otherwise choose and use start
        # as trampolines (bound methods, not a __getattr__: that would slow every read of
        # .use on the hot path) that build both and hand over.
        self._ready = False
        constant = self._constant_answer(state)
        if constant is not None:
            self.choose: Pick = self._watched(_constant(constant))
            self.use: Pick = self.choose
        else:
            self.choose = self._first_choose
            self.use = self._first_use

    _readers: tuple[_Reader, ...]
    _rules: dict[RuleKey, _Compiled]
    _fallthrough: _Compiled | None
    _problem: _Drift | None
    _has_experiment: bool

    def _constant_answer(self, state: FeatureState | None) -> str | None:
        """The one implementation every input gets, when the state says so without segments."""
        if state is None:
            return self.default
        if state.segments:
            return None
        if not state.rules:
            return self.default
        selector = state.rules.get(None)
        if (
            len(state.rules) == 1
            and isinstance(selector, Static)
            and selector.implementation in self.declaration.implementations
        ):
            return selector.implementation
        return None

    def _first_choose(self, args: tuple[Any, ...]) -> str:
        self._finish()
        return self.choose(args)

    def _first_use(self, args: tuple[Any, ...]) -> str:
        self._finish()
        return self.use(args)

    def _finish(self) -> None:
        self._prepare()
        choose = self._build(None)
        use = self._build(self._record) if self._has_experiment else choose
        # Two threads may race here; both build the same thing, either result is right.
        self.choose = self._watched(choose)
        self.use = self._watched(use) if use is not choose else self.choose

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
        """Compile the state into readers and rules (each thread on its own, then publish)."""
        if self._ready:
            return
        readers: tuple[_Reader, ...] = ()
        rules: dict[RuleKey, _Compiled] = {}
        fallthrough: _Compiled | None = None
        problem: _Drift | None = None
        if self.state is not None:
            try:
                readers, rules, fallthrough, problem = self._compile(self.state, self._registry)
            except Exception as error:
                # Decoding validated the state; should compiling still fail, evaluation
                # must not: the default answers and explain() says why.
                problem = _Drift("compile", f"{type(error).__name__}: {error}")
        self._readers = readers
        self._rules = rules
        self._fallthrough = fallthrough
        self._problem = problem
        self._has_experiment = any(
            isinstance(c, _Split) and isinstance(c.selector, Experiment)
            for c in (*rules.values(), fallthrough)
        )
        self._ready = True

    def _reader(self, segment: str, registry: Registry) -> _Reader | _Drift:
        declared: SegmentDeclaration | None = registry.segments.get(segment)
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

    def _compile(
        self, state: FeatureState, registry: Registry
    ) -> tuple[tuple[_Reader, ...], dict[RuleKey, _Compiled], _Compiled | None, _Drift | None]:
        readers = []
        for segment in state.segments:
            reader = self._reader(segment, registry)
            if isinstance(reader, _Drift):
                return (), {}, None, reader
            readers.append(reader)
        rules: dict[RuleKey, _Compiled] = {}
        fallthrough: _Compiled | None = None
        for key, selector in state.rules.items():
            compiled = self._compile_selector(key, selector, registry)
            if key is None:
                fallthrough = compiled
            else:
                rules[key] = compiled
        return tuple(readers), rules, fallthrough, None

    def _compile_selector(self, key: RuleKey, selector: Selector, registry: Registry) -> _Compiled:
        known = self.declaration.implementations
        unknown = [name for name in selector.implementations() if name not in known]
        if unknown:
            return _Drift(
                f"implementation:{unknown[0]}",
                f"configuration names implementation {unknown[0]!r}, which this code does not have",
            )
        if isinstance(selector, Static):
            return selector.implementation
        reader = self._reader(selector.segment, registry)
        if isinstance(reader, _Drift):
            return reader
        salt = selector.salt
        if salt is None:
            salt = derive_salt(self.name, repr(key), selector.segment)
        allocation = selector.allocation or allocate(selector.weights)
        if any(name not in known for name, _, _ in allocation):
            return _Drift("allocation", "an allocation names an unknown implementation")
        return _Split(
            selector,
            reader,
            salt,
            [start for _, start, _ in allocation],
            [name for name, _, _ in allocation],
        )

    # -- the hot path ------------------------------------------------------------------

    def _pick(
        self,
        compiled: _Compiled | None,
        record: RecordExposure | None,
        failed: Callable[[Exception], str],
    ) -> Pick:
        default = self.default
        if compiled is None:
            return lambda args: default
        if isinstance(compiled, str):
            return lambda args: compiled
        if isinstance(compiled, _Drift):
            warn, name = self._warn, self.name

            def drift(args: tuple[Any, ...]) -> str:
                warn(name, compiled.cause, compiled.message)
                return default

            return drift
        # A split runs the segment, user code: it may raise, evaluation may not. Each split
        # guards itself (a try costs nothing until it catches), so no wrapper call is needed.
        read, index, salt = compiled.reader.read, compiled.reader.index, compiled.salt
        starts, names = compiled.starts, compiled.names
        if record is None or not isinstance(compiled.selector, Experiment):
            if len(names) == 2:
                # Two ranges (any boolean rollout): one comparison instead of a bisect.
                first, second, cut = names[0], names[1], starts[1]

                def split_two(args: tuple[Any, ...]) -> str:
                    try:
                        if _hash(read(args[index]).encode(), salt) % BUCKETS < cut:
                            return first
                        return second
                    except Exception as error:
                        return failed(error)

                return split_two

            def split(args: tuple[Any, ...]) -> str:
                try:
                    return names[
                        bisect_right(starts, _hash(read(args[index]).encode(), salt) % BUCKETS) - 1
                    ]
                except Exception as error:
                    return failed(error)

            return split
        feature, version, emit = self.name, self.version, record

        def experiment(args: tuple[Any, ...]) -> str:
            try:
                value = read(args[index])
                implementation = names[
                    bisect_right(starts, _hash(value.encode(), salt) % BUCKETS) - 1
                ]
                emit(feature, implementation, value, version)
                return implementation
            except Exception as error:
                return failed(error)

        return experiment

    def _build(self, record: RecordExposure | None) -> Pick:
        default, name, warn = self.default, self.name, self._warn

        def failed(error: Exception) -> str:
            warn(
                name,
                f"raised:{type(error).__name__}",
                f"a segment raised {type(error).__name__}: {error}",
            )
            return default

        if self._problem is not None:
            return self._pick(self._problem, None, failed)
        fallthrough = self._pick(self._fallthrough, record, failed)
        if not self._readers:
            return fallthrough
        table: dict[Any, Pick] = {}
        constants: dict[Any, str] = {}
        single = len(self._readers) == 1
        for key, compiled in self._rules.items():
            lookup: Any = key[0] if single and key is not None else key
            if isinstance(compiled, str):
                constants[lookup] = compiled
            else:
                table[lookup] = self._pick(compiled, record, failed)

        if single:
            read, index = self._readers[0].read, self._readers[0].index

            def choose_one(args: tuple[Any, ...]) -> str:
                try:
                    value = read(args[index])
                    found = constants.get(value)
                    if found is not None:
                        return found
                    return table.get(value, fallthrough)(args)
                except Exception as error:
                    return failed(error)

            return choose_one
        readers = tuple((r.read, r.index) for r in self._readers)

        def choose_many(args: tuple[Any, ...]) -> str:
            try:
                key = tuple([read(args[index]) for read, index in readers])
                found = constants.get(key)
                if found is not None:
                    return found
                return table.get(key, fallthrough)(args)
            except Exception as error:
                return failed(error)

        return choose_many

    # -- explain -----------------------------------------------------------------------

    def drift(self, rule: RuleKey) -> str | None:
        """Why the default answers instead of ``rule`` (None: the fallthrough) as configured,
        when this code cannot follow it: a segment or implementation it does not declare."""
        self._prepare()
        if self._problem is not None:
            return self._problem.message
        compiled = self._fallthrough if rule is None else self._rules.get(rule)
        return compiled.message if isinstance(compiled, _Drift) else None

    def explain(self, args: tuple[Any, ...], *, stale: bool = False) -> Evaluation:
        """The same decision as ``choose``, with every step recorded. Never raises."""
        self._prepare()
        values: dict[str, str] = {}

        note = self._note

        def answer(implementation: str, reason: str, **more: Any) -> Evaluation:
            return Evaluation(
                feature=self.name,
                implementation=implementation,
                reason=reason if note is None else f"{note}: {reason}",
                segment_values=values,
                version=self.version,
                stale=stale,
                default=implementation == self.default and more.get("selector") is None,
                **{"selector": None, **more},
            )

        if self.state is None:
            return answer(self.default, "no configuration: the default answers")
        if self._problem is not None:
            return answer(self.default, f"configuration drift: {self._problem.message}")
        try:
            for reader in self._readers:
                values[reader.segment] = reader.read(args[reader.index])
        except Exception as error:
            return answer(
                self.default, f"segment {reader.segment} raised {type(error).__name__}: {error}"
            )
        key: RuleKey = tuple(values[r.segment] for r in self._readers)
        if key in self._rules and self._readers:
            compiled: _Compiled | None = self._rules[key]
            rule: RuleKey = key
            where = f"rule {', '.join(f'{r.segment}={values[r.segment]}' for r in self._readers)}"
        else:
            compiled, rule = self._fallthrough, None
            where = "fallthrough" if self._readers else "the only rule"
            if self._readers and compiled is not None:
                where = "no rule matched; fallthrough"
        selector = self.state.rules.get(rule)
        if compiled is None:
            return answer(self.default, "no rule matched and no fallthrough: the default answers")
        if isinstance(compiled, _Drift):
            return answer(self.default, f"configuration drift in {where}: {compiled.message}")
        if isinstance(compiled, str):
            return answer(compiled, f"{where}: static {compiled}", selector=selector, rule=rule)
        reader = compiled.reader
        try:
            value = reader.read(args[reader.index])
            values[reader.segment] = value
            bucket = bucket_of(compiled.salt, value)
        except Exception as error:
            return answer(
                self.default, f"segment {reader.segment} raised {type(error).__name__}: {error}"
            )
        implementation = compiled.names[bisect_right(compiled.starts, bucket) - 1]
        kind = compiled.selector.kind
        return answer(
            implementation,
            f"{where}: {kind} by {reader.segment}, bucket {bucket} of {BUCKETS}",
            selector=selector,
            rule=rule,
            bucket=bucket,
        )
