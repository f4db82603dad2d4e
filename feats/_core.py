"""The sans-IO App core: the snapshot it swaps, how loads and log entries update it, status."""

from __future__ import annotations

import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._codec import MAX_RECORD_BYTES, Record, decode_record
from ._declarations import Registry
from ._errors import CodecError
from ._exposures import ExposureBuffer
from ._layout import OVERSIZED
from ._snapshot import CompiledFeature, Evaluation
from ._state import Experiment, FeatureState, state_issues
from ._stored import (
    ZERO_VERSION,
    Loaded,
    Problem,
    RawEntry,
    version_at_least,
    version_position,
)

__all__ = [
    "MAX_ENTRY_CHARS",
    "AppCore",
    "EvaluationListener",
    "Listener",
    "Status",
    "StatusListener",
]

logger = logging.getLogger("feats")

MAX_ENTRY_CHARS = MAX_RECORD_BYTES + 4096
"""A change-log entry larger than this is skipped unread: its record alone may not exceed
MAX_RECORD_BYTES, and its other fields are a feature name and a version."""


StatusName = Literal["initializing", "live", "stale", "closed"]


@dataclass(frozen=True)
class Status:
    """How current an App's snapshot is.

    ``state`` is ``initializing`` (nothing loaded yet: defaults answer), ``live`` (following
    the change log), ``stale`` (the last good configuration answers, but this App cannot
    confirm it is current: storage unreachable or silent, the store lost configuration this
    App still serves, or the process was forked) or ``closed`` (stopped: the last
    configuration answers and nothing follows changes any more). ``lag`` is how far behind
    the stream head this App may be, in seconds: 0.0 while live, otherwise the time since it
    last confirmed it held the head (None before it ever did).
    """

    state: StatusName
    version: str | None
    since: float
    error: str | None = None
    lag: float | None = None
    skipped: int = 0
    exposures_dropped: int = 0
    exposures_written: int = 0
    problems: tuple[Problem, ...] = field(default=())
    confirmed_at: float | None = None
    """Wall-clock time this App last confirmed it held the stream head."""
    outages: int = 0
    """How many times the App went stale."""
    reloads: int = 0
    """Full loads applied: the first one, then one per gap or replaced store."""
    reseeds: int = 0
    """How many times this App wrote its snapshot back into a store that had lost it."""
    diverged: tuple[str, ...] = ()
    """Features this App serves at a version the store lacks (it lost them); kept, not reset."""
    exposures_buffered: int = 0
    exposure_capacity: int = 0

    @property
    def live(self) -> bool:
        return self.state == "live"

    @property
    def stale(self) -> bool:
        return self.state == "stale"

    @property
    def closed(self) -> bool:
        return self.state == "closed"


Listener = Callable[[str, tuple[str, ...]], None]
"""``listener(version, features)``: called after the snapshot changed, off the hot path."""
StatusListener = Callable[[Status], None]
"""``listener(status)``: called when the App's state (initializing, live, ...) changes."""
EvaluationListener = Callable[[Evaluation], None]
"""``listener(evaluation)``: called after every evaluation, once one is registered."""


class AppCore:
    """Holds the snapshot and decides how every load and change-log entry updates it."""

    def __init__(self, registry: Registry, *, exposure_capacity: int = 100_000) -> None:
        self.registry = registry
        self.compiled: dict[str, CompiledFeature] = {}
        self.records: dict[str, tuple[str, Record]] = {}
        self.head: str = ZERO_VERSION
        self.epoch: str | None = None
        self.exposures = ExposureBuffer(exposure_capacity)
        self.state: StatusName = "initializing"
        self.state_since = time.time()
        self.error: str | None = None
        self.skipped = 0
        self.problems: deque[Problem] = deque(maxlen=50)
        self.last_applied_at: float | None = None
        self.confirmed_at: float | None = None
        self.silence_limit: float | None = None
        """Seconds without a word from storage after which a live App reports itself stale."""
        self.outages = 0
        self.reloads = 0
        self.reseeds = 0
        self.diverged: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self.listeners: list[Listener] = []
        self.overrides: dict[str, FeatureState] = {}
        """States pinned in this process only (feats.testing): they answer instead of storage."""
        self.status_listeners: list[StatusListener] = []
        self.evaluation_listeners: list[EvaluationListener] = []

    # -- warnings and problems ---------------------------------------------------------

    def warn(self, feature: str, cause: str, message: str) -> None:
        """Log once per (feature, cause): evaluation must not flood the log."""
        if (feature, cause) in self._warned:
            return
        self._warned.add((feature, cause))
        logger.warning("feats: %s: %s; the default implementation answers", feature, message)

    def report(self, where: str, message: str) -> None:
        self.skipped += 1
        self.problems.append(Problem(where, message, time.time()))
        logger.warning("feats: skipped %s: %s", where, message)

    # -- status ------------------------------------------------------------------------

    def set_state(self, state: StatusName, error: str | None = None) -> None:
        if state != self.state:
            self.state_since = time.time()
            if state == "stale":
                self.outages += 1
                logger.warning("feats: configuration is stale: %s", error)
            elif self.state == "stale":
                logger.info("feats: configuration is live again at version %s", self.head)
        changed = state != self.state
        self.state = state
        self.error = error
        if changed and self.status_listeners:
            status = self.status()
            for listener in list(self.status_listeners):
                try:
                    listener(status)
                except Exception:
                    logger.exception("feats: a status listener raised")

    def confirmed(self) -> None:
        """Storage answered: this App holds the stream head as of now."""
        self.confirmed_at = time.time()

    def _effective(self, now: float) -> tuple[StatusName, str | None]:
        """The state, counting a live App that has heard nothing for too long as stale.

        A black-holed connection only fails when its socket timeout fires; a client
        without one would hang forever. Either way the App must not claim to be live.
        """
        if (
            self.state == "live"
            and self.silence_limit is not None
            and self.confirmed_at is not None
            and now - self.confirmed_at > self.silence_limit
        ):
            return "stale", f"no answer from storage for {now - self.confirmed_at:.1f}s"
        return self.state, self.error

    @property
    def stale(self) -> bool:
        return self._effective(time.time())[0] == "stale"

    def status(self) -> Status:
        now = time.time()
        state, error = self._effective(now)
        lag = None
        if self.confirmed_at is not None:
            lag = 0.0 if state == "live" else max(0.0, now - self.confirmed_at)
        return Status(
            state=state,
            version=None if self.head == ZERO_VERSION else self.head,
            since=self.state_since,
            error=error,
            lag=lag,
            skipped=self.skipped,
            exposures_dropped=self.exposures.dropped,
            exposures_written=self.exposures.written,
            problems=tuple(self.problems),
            confirmed_at=self.confirmed_at,
            outages=self.outages,
            reloads=self.reloads,
            reseeds=self.reseeds,
            diverged=tuple(sorted(self.diverged)),
            exposures_buffered=len(self.exposures),
            exposure_capacity=self.exposures.capacity,
        )

    # -- compiling ---------------------------------------------------------------------

    def _compile(self, name: str) -> CompiledFeature:
        declaration = self.registry.features[name]
        version, record = self.records.get(name, (None, None))
        pinned = self.overrides.get(name)
        return CompiledFeature(
            declaration,
            pinned if pinned is not None else None if record is None else record.state,
            version,
            self.registry,
            self.warn,
            self.exposures.add,
            note=None if pinned is None else "overridden in this process",
            observe=self._observed if self.evaluation_listeners else None,
        )

    def _observed(self, compiled: CompiledFeature, args: tuple[Any, ...]) -> None:
        evaluation = compiled.explain(args, stale=self.stale)
        for listener in list(self.evaluation_listeners):
            try:
                listener(evaluation)
            except Exception:
                logger.exception("feats: an evaluation listener raised")

    def observe(self, listener: EvaluationListener, *, add: bool) -> None:
        """Add or remove an evaluation listener; every feature is recompiled to match."""
        if add:
            self.evaluation_listeners.append(listener)
        else:
            self.evaluation_listeners.remove(listener)
        self.recompile()

    def record_exposure(self, evaluation: Evaluation) -> None:
        """Record the exposure an evaluation stands for, if an experiment decided it."""
        selector = evaluation.selector
        if isinstance(selector, Experiment) and selector.segment in evaluation.segment_values:
            self.exposures.add(
                evaluation.feature,
                evaluation.implementation,
                evaluation.segment_values[selector.segment],
                evaluation.version,
            )

    def override(self, name: str, state: FeatureState | None) -> None:
        """Pin ``name`` to ``state`` in this process (None: storage answers again)."""
        if state is None:
            self.overrides.pop(name, None)
        else:
            self.overrides[name] = state
        self._swap([name])

    def recompile(self) -> None:
        """Rebuild every feature, e.g. after a declaration changed what segments exist."""
        self.compiled = {name: self._compile(name) for name in self.registry.features}

    def declared_feature(self, name: str) -> None:
        # A new key in place is safe: nothing reads it before its handle exists.
        self.compiled[name] = self._compile(name)

    def declared_segment(self) -> None:
        """A new segment can heal drift in configured features; the rest are unaffected."""
        self._swap([*self.records, *self.overrides])

    def _swap(self, names: Iterable[str]) -> None:
        updated = dict(self.compiled)
        for name in names:
            if name in self.registry.features:
                updated[name] = self._compile(name)
        self.compiled = updated

    def _announce(self, version: str, features: Iterable[str]) -> None:
        changed = tuple(features)
        for listener in list(self.listeners):
            try:
                listener(version, changed)
            except Exception:
                logger.exception("feats: a change listener raised")

    def explain(self, name: str, args: tuple[Any, ...]) -> Evaluation:
        return self.compiled[name].explain(args, stale=self.stale)

    # -- applying storage --------------------------------------------------------------

    def _decode(self, where: str, raw: str, feature: str | None) -> Record | None:
        if raw.startswith(OVERSIZED):
            size = raw.removeprefix(OVERSIZED)
            self.report(where, f"record is {size} bytes, over the {MAX_RECORD_BYTES} byte limit")
            return None
        try:
            record = decode_record(raw)
        except CodecError as error:
            self.report(where, str(error))
            return None
        if feature is not None and record.feature != feature:
            self.report(where, f"record names feature {record.feature!r}, stored under {feature!r}")
            return None
        return record

    def _acceptable(self, feature: str, record: Record, where: str) -> bool:
        """False (and reported) for a state this code cannot serve while it holds one it can.

        A state naming an implementation, segment or option these declarations lack was
        written by something else (other code, a hand edit): the last good state keeps
        answering rather than the default. With nothing good held, it is compiled anyway
        and the default answers where it drifts, as explain() says.
        """
        if record.state is None or feature not in self.registry.features:
            return True
        held = self.records.get(feature)
        if held is None:
            # Nothing good held: it is compiled whatever validation says (the first load of
            # 10,000 features skips 10,000 validations).
            return True
        problem = self._unservable(feature, record)
        if problem is None or self._unservable(feature, held[1]) is not None:
            return True
        self.report(where, f"{problem}; keeping version {held[0]}")
        return False

    def _unservable(self, feature: str, record: Record) -> str | None:
        """Why these declarations cannot serve ``record``, or None if they can."""
        if record.state is None:
            return None
        issues = state_issues(feature, record.state, self.registry)
        return None if not issues else f"{feature}: {issues[0].message}"

    def ahead_of(self, loaded: Loaded) -> list[tuple[str, str, Record]]:
        """Features this App holds at a version the store lacks (missing there, or older).

        Versions never go backwards in one store, so this means the store lost data: it
        restarted without persistence, was wiped, or failed over to a replica that missed
        the last writes. Oldest first, the order they were written in.
        """
        ahead = []
        for feature, (version, record) in self.records.items():
            there = loaded.records.get(feature)
            if there is None or version_position(there[0]) < version_position(version):
                ahead.append((feature, version, record))
        ahead.sort(key=lambda item: version_position(item[1]))
        return ahead

    def apply_loaded(self, loaded: Loaded) -> None:
        """Replace the snapshot with a full load, never moving a feature backwards.

        A feature the store lacks, or holds at an older version, keeps this App's version
        (listed in ``diverged`` until the store catches up): an empty or rolled-back store
        must not flip users to defaults by itself. Undecodable records and states this code
        cannot serve keep the last good state too.
        """
        records: dict[str, tuple[str, Record]] = {}
        # Decoding thousands of records only allocates: collections meanwhile find no garbage
        # and cost a quarter of a large start-up.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for feature, (version, raw) in loaded.records.items():
                held = self.records.get(feature)
                if held is not None and version_position(version) < version_position(held[0]):
                    continue
                where = f"state of {feature} at {version}"
                record = self._decode(where, raw, feature)
                if record is not None and self._acceptable(feature, record, where):
                    records[feature] = (version, record)
                elif held is not None:
                    records[feature] = held
        finally:
            if collecting:
                gc.enable()
        diverged = set()
        for feature, held in self.records.items():
            if feature not in records:
                records[feature] = held
                diverged.add(feature)
        self.records = records
        self.diverged = diverged
        self.head = loaded.head
        self.epoch = loaded.epoch
        self.reloads += 1
        self.recompile()
        self.last_applied_at = time.time()
        self._announce(self.head, records)

    def apply_entries(self, entries: Iterable[RawEntry]) -> bool:
        """Apply change-log entries in order; True when a gap means a full reload is needed."""
        changed: list[str] = []
        gap = False
        for entry in entries:
            previous = entry.fields.get("prev")
            feature = entry.fields.get("feature")
            raw = entry.fields.get("record")
            if previous is None or feature is None or raw is None:
                self.report(f"change-log entry {entry.id}", "not a feats entry (fields missing)")
                self.head = entry.id
                continue
            if previous != self.head:
                gap = True
                break
            self.head = entry.id
            where = f"change-log entry {entry.id}"
            size = sum(len(key) + len(value) for key, value in entry.fields.items())
            if size > MAX_ENTRY_CHARS:
                self.report(where, f"entry is {size} characters, over the {MAX_ENTRY_CHARS} limit")
                continue
            record = self._decode(where, raw, feature)
            if record is None or not self._acceptable(feature, record, where):
                continue
            current = self.records.get(feature)
            if current is None or version_at_least(entry.id, current[0]):
                self.records[feature] = (entry.id, record)
                self.diverged.discard(feature)
                changed.append(feature)
        if changed:
            self._swap(changed)
        self.last_applied_at = time.time()
        if changed:
            self._announce(self.head, changed)
        return gap

    def apply_write(self, feature: str, version: str, record: Record) -> None:
        """Our own acknowledged write: visible at once, before the tail brings it back."""
        current = self.records.get(feature)
        if current is None or version_at_least(version, current[0]):
            self.records[feature] = (version, record)
            self.diverged.discard(feature)
            self._swap([feature])
            self._announce(version, (feature,))
