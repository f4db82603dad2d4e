"""The sans-IO App core: the snapshot it swaps, how loads and log entries update it, status."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ._breath import Breathe, release, still
from ._codec import MAX_RECORD_BYTES, Record, decode_record
from ._declarations import Registry
from ._errors import CodecError
from ._exposures import ExposureBuffer
from ._layout import MAX_ENTRY_CHARS, MAX_EPOCH_BYTES, OVERSIZED, OVERSIZED_FIELD
from ._snapshot import CompiledFeature, Evaluation
from ._state import FeatureState, state_issues
from ._stored import (
    ZERO_VERSION,
    Loaded,
    Problem,
    RawEntry,
    version_position,
)

__all__ = [
    "MAX_ENTRY_CHARS",
    "AppCore",
    "EvaluationListener",
    "Listener",
    "Served",
    "Status",
    "StatusListener",
]

logger = logging.getLogger("feats")


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
SORTED_SLICE = 1_000
"""Items sorted in one call at most when thousands are (the re-seed's, oldest first)."""


def _same(one: str | bytes, other: str | bytes) -> bool:
    if isinstance(one, str):
        one = one.encode("utf-8", errors="surrogatepass")
    if isinstance(other, str):
        other = other.encode("utf-8", errors="surrogatepass")
    return one == other


def _oversized(raw: str | bytes) -> str | None:
    """The size LOAD_SCRIPT gives instead of a record too large to send, if it did."""
    if raw[:1] not in (b"o", "o"):  # a record starts with "{"; the marker with "o"
        return None
    text = raw[: len(OVERSIZED) + 20]
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    return text.removeprefix(OVERSIZED) if text.startswith(OVERSIZED) else None


@dataclass(slots=True, eq=False)
class Served:
    """What this App serves for one feature: a version and its record as it was stored.

    ``record`` is decoded on first use (a full load keeps the bytes it arrived as) and
    ``checked`` says whether it has been judged; until then ``fallback`` is what answered
    before, in case this one turns out unreadable or unservable.
    """

    version: str
    raw: str | bytes
    record: Record | None = None
    checked: bool = False
    fallback: Served | None = None

    def encoded(self) -> str:
        """The record as text, exactly as the store had it: what a re-seed writes back."""
        raw = self.raw
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw


class AppCore:
    """Holds the snapshot and decides how every load and change-log entry updates it.

    Threads: the tail applies loads and entries, the application's threads (or event loop)
    evaluate and write; ``lock`` is held only to commit a change to the snapshot, never
    while decoding a full load, so evaluation never waits long.
    """

    def __init__(self, registry: Registry, *, exposure_capacity: int = 100_000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.compiled: dict[str, CompiledFeature] = {}
        self.served: dict[str, Served] = {}
        self._touched: set[str] | None = None
        """While a full load is applied between breaths: the features something else
        changed meanwhile (a write, a change, an override), which it must not undo."""
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
        self._refused_epoch: str | None = None
        self._resolver = self._resolve
        """One bound method every lazily loaded feature shares, rather than one each."""
        self.started = False
        """Whether start() was ever called: an App evaluated before it says so, once."""
        self._said_unstarted: set[str] = set()
        """Features that said so: compiled afresh once the App starts."""
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
        changed = state != self.state
        if changed:
            self.state_since = time.time()
            if state == "stale":
                self.outages += 1
                logger.warning("feats: configuration is stale: %s", error)
            elif self.state == "stale":
                logger.info("feats: configuration is live again at version %s", self.head)
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

    def note_epoch(self, epoch: str | None) -> None:
        """Report (once per value) an epoch key too large to be one: it was not read."""
        if epoch is None or epoch == self._refused_epoch:
            return
        size = _oversized(epoch)
        if size is not None:
            self._refused_epoch = epoch
            self.report(
                "the store's epoch",
                f"its key holds {size} bytes, over {MAX_EPOCH_BYTES}: refused, not read",
            )

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
        observe = self._observed if self.evaluation_listeners else None
        pinned = self.overrides.get(name)
        served = self.served.get(name)
        version = None if served is None else served.version
        if pinned is not None:
            state: FeatureState | None = pinned
            note: str | None = "overridden in this process"
        elif served is None:
            state, note = None, None
        elif served.checked:
            state = None if served.record is None else served.record.state
            note = None
        else:
            # Not decoded yet: the CompiledFeature asks for it when first used.
            return CompiledFeature(
                declaration,
                None,
                version,
                self.registry,
                self.warn,
                self.exposures,
                observe=observe,
                resolve=self._resolver,
                source=served,
            )
        return CompiledFeature(
            declaration,
            state,
            version,
            self.registry,
            self.warn,
            self.exposures,
            note=note,
            observe=observe,
            first=self._unstarted_note if self._never_started(served, pinned) else None,
        )

    def _never_started(self, served: Served | None, pinned: FeatureState | None) -> bool:
        """Whether a compiled feature must say the App was never started: it was not, and
        neither storage nor an override (feats.testing) gives the feature its state."""
        return not self.started and served is None and pinned is None

    def _unstarted_note(self, name: str) -> str | None:
        """What an App evaluated before it was ever started says (nothing if it has been
        started since the feature was compiled); logged once per App, not per feature."""
        if self.started:
            return None
        message = (
            "this App was never started (`with app:` / `async with app:`, or start()), "
            "so no configuration was loaded"
        )
        if not self._said_unstarted:
            self.warn(name, "unstarted", message)
        self._said_unstarted.add(name)
        return message

    def start(self) -> None:
        """The App starts: features that said it was never started stop saying so."""
        self.started = True
        said, self._said_unstarted = self._said_unstarted, set()
        self._swap(said)

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
        if selector is None or not selector.records_exposures:
            return
        unit = evaluation.segment_values.get(selector.reads() or "")
        if unit is not None:
            self.exposures.add(
                evaluation.feature, evaluation.implementation, unit, evaluation.version
            )

    def recompile(self) -> None:
        """Rebuild every feature, e.g. after a declaration changed what segments exist."""
        with self.lock:
            self.compiled = {name: self._compile(name) for name in self.registry.features}
            self._touch(self.compiled)

    def declared_feature(self, name: str) -> None:
        # A new key in place is safe: nothing reads it before its handle exists.
        with self.lock:
            self.compiled[name] = self._compile(name)
            self._touch((name,))

    def _touch(self, names: Iterable[str]) -> None:
        """Note, under the lock, that ``names`` changed while a full load may be applied."""
        if self._touched is not None:
            self._touched.update(names)

    def declared_segment(self) -> None:
        """A new segment can heal drift in configured features; the rest are unaffected."""
        self._swap([*self.served, *self.overrides])

    def override(self, name: str, state: FeatureState | None) -> None:
        """Pin ``name`` to ``state`` in this process (None: storage answers again)."""
        with self.lock:
            if state is None:
                self.overrides.pop(name, None)
            else:
                self.overrides[name] = state
            self._swap([name])

    def _swap(self, names: Iterable[str]) -> None:
        """Replace the snapshot with one where ``names`` are compiled afresh, atomically:
        an evaluation sees the old snapshot or the new one, never a mix."""
        with self.lock:
            updated = dict(self.compiled)
            swapped = [name for name in names if name in self.registry.features]
            for name in swapped:
                updated[name] = self._compile(name)
            self.compiled = updated
            self._touch(swapped)

    def _announce(self, version: str, features: Iterable[str]) -> None:
        changed = tuple(features)
        for listener in list(self.listeners):
            try:
                listener(version, changed)
            except Exception:
                logger.exception("feats: a change listener raised")

    def explain(self, name: str, args: tuple[Any, ...]) -> Evaluation:
        return self.compiled[name].explain(args, stale=self.stale)

    # -- judging records ---------------------------------------------------------------

    def _decode(self, where: str, raw: str | bytes, feature: str) -> Record | None:
        """The record, or None (reported) if it is oversized, unreadable or misfiled."""
        size = _oversized(raw)
        if size is not None:
            self.report(where, f"record is {size} bytes, over the {MAX_RECORD_BYTES} byte limit")
            return None
        try:
            record = decode_record(raw)
        except CodecError as error:
            self.report(where, str(error))
            return None
        if record.feature != feature:
            self.report(where, f"record names feature {record.feature!r}, stored under {feature!r}")
            return None
        return record

    def _unservable(self, feature: str, record: Record) -> str | None:
        """Why these declarations cannot serve ``record``, or None if they can."""
        if record.state is None or feature not in self.registry.features:
            return None
        issues = state_issues(feature, record.state, self.registry, shaped=True)
        return None if not issues else f"{feature}: {issues[0].message}"

    def _servable(self, feature: str, served: Served | None) -> bool:
        """Whether ``served`` (decoded now if it was not yet) is a state the code can serve."""
        while served is not None:
            record = served.record
            if record is None and not served.checked:
                try:
                    record = decode_record(served.raw)
                except CodecError:
                    served = served.fallback
                    continue
            return record is None or self._unservable(feature, record) is None
        return False

    def _acceptable(self, feature: str, record: Record, held: Served | None, where: str) -> bool:
        """False (and reported) for a state this code cannot serve while it holds one it can.

        A state naming an implementation, segment or option these declarations lack was
        written by something else (other code, a hand edit): the last good state keeps
        answering rather than the default. With nothing good held, it is compiled anyway
        and the default answers where it drifts, as explain() says.
        """
        problem = self._unservable(feature, record)
        if problem is None or not self._servable(feature, held):
            return True
        assert held is not None
        self.report(where, f"{problem}; keeping version {held.version}")
        return False

    def _resolve(self, name: str, served: Served) -> tuple[FeatureState | None, str | None]:
        """Decode and judge a loaded record on first use: (the state that answers, its
        version). An unreadable or unservable one is reported once, and what answered
        before it (if anything) answers on."""
        with self.lock:
            current: Served | None = served
            while current is not None and not current.checked:
                where = f"state of {name} at {current.version}"
                record = self._decode(where, current.raw, name)
                fallback = current.fallback
                if record is not None and self._acceptable(name, record, fallback, where):
                    current.record, current.checked, current.fallback = record, True, None
                    break
                # Unreadable, or unservable while the one before is fine: that one answers.
                current.checked, current.record = True, None
                if self.served.get(name) is served:
                    if fallback is None:
                        del self.served[name]
                    else:
                        self.served[name] = fallback
                    self._touch((name,))
                current = fallback
            if current is None or current.record is None:
                return None, None if current is None else current.version
            return current.record.state, current.version

    # -- applying storage --------------------------------------------------------------

    def ahead_of(self, loaded: Loaded, breathe: Breathe = still) -> list[tuple[str, str, str]]:
        """``(feature, version, record)`` this App holds at a version the store lacks
        (missing there, or older), oldest first, the order they were written in.

        Versions never go backwards in one store, so this means the store lost data: it
        restarted without persistence, was wiped, or failed over to a replica that missed
        the last writes. The records go back exactly as the store once had them.
        """
        ahead: list[tuple[str, str, str]] = []
        positions: list[tuple[int, int]] = []
        for count, (feature, served) in enumerate(list(self.served.items())):
            if not count % 256:
                breathe()
            there = loaded.records.get(feature)
            position = version_position(served.version)
            if there is None or version_position(there[0]) < position:
                ahead.append((feature, served.version, served.encoded()))
                positions.append(position)
        # Sorted in slices, then merged, so that no one sort of thousands holds the
        # interpreter long.
        slices = []
        for start in range(0, len(ahead), SORTED_SLICE):
            breathe()
            indexes = range(start, min(len(ahead), start + SORTED_SLICE))
            slices.append(sorted(indexes, key=positions.__getitem__))
        oldest_first = []
        for count, index in enumerate(heapq.merge(*slices, key=positions.__getitem__)):
            if not count % 256:
                breathe()
            oldest_first.append(ahead[index])
        return oldest_first

    def apply_loaded(self, loaded: Loaded, breathe: Breathe = still) -> None:
        """Replace the snapshot with a full load, never moving a feature backwards.

        Records are kept as they arrived and decoded on first use. A feature the store
        lacks, or holds at an older version, keeps this App's version (listed in
        ``diverged`` until the store catches up): an empty or rolled-back store must not
        flip users to defaults by itself. A record that proves unreadable or unservable
        when first used is reported, and the state before it answers on.

        All of it but the swap itself happens between breaths, outside the lock: what
        changed meanwhile (``_touched``) is all the swap looks at again.
        """
        with self.lock:
            before = dict(self.served)
            self._touched = set()
        served: dict[str, Served] = {}
        for count, (feature, (version, raw)) in enumerate(loaded.records.items()):
            if not count % 64:
                breathe()
            held = before.get(feature)
            if held is not None:
                if version_position(version) < version_position(held.version):
                    continue  # the store is behind this App: kept below, as diverged
                if version == held.version and _same(raw, held.raw):
                    served[feature] = held
                    continue
            if _oversized(raw) is not None:
                self._decode(f"state of {feature} at {version}", raw, feature)
                if held is not None:
                    served[feature] = held
                continue
            good = held if held is None or held.checked else held.fallback
            served[feature] = Served(version, raw, fallback=good)
        breathe()
        diverged = {feature for feature in before if feature not in served}
        for count, feature in enumerate(diverged):
            if not count % 1024:
                breathe()
            served[feature] = before[feature]
        changed = []
        for count, name in enumerate(self.registry.features):
            if not count % 1024:
                breathe()
            if served.get(name) is not before.get(name):
                changed.append(name)
        with self.lock:
            touched, self._touched = self._touched, None
            # Writes this process made while the load was decoded are newer: they stay.
            for feature in touched:
                current = self.served.get(feature)
                if current is None or before.get(feature) is current:
                    continue
                kept = served.get(feature)
                if kept is None or version_position(kept.version) < version_position(
                    current.version
                ):
                    served[feature] = current
                    diverged.discard(feature)
                    if feature in self.registry.features:
                        changed.append(feature)
            self.served = served
            self.diverged = diverged
            self.epoch = loaded.epoch
            self.reloads += 1
        self._swap_slowly(changed, breathe)
        replaced = list(before.values())
        del before
        release(replaced, breathe)
        # Only now: whoever waits for this version finds it compiled and swapped in.
        self.head = loaded.head
        self.last_applied_at = time.time()
        self._announce(self.head, served)

    def _swap_slowly(self, names: list[str], breathe: Breathe) -> None:
        """_swap for many features: compiled in slices between breaths, swapped at once;
        what something else compiled meanwhile (``_touched``) is newer and stays."""
        with self.lock:
            self._touched = set()
        fresh: dict[str, CompiledFeature] = {}
        for name in dict.fromkeys(names):
            breathe()  # a compile can take tens of microseconds: a breath may be due at each
            with self.lock:
                fresh[name] = self._compile(name)
        breathe()
        with self.lock:
            touched, self._touched = self._touched, None
            updated = dict(self.compiled)
            updated.update(fresh)
            for name in touched:
                compiled = self.compiled.get(name)
                if compiled is not None:
                    updated[name] = compiled
            replaced = list(self.compiled.values())
            self.compiled = updated
        release(replaced, breathe)

    def apply_entries(self, entries: Iterable[RawEntry], breathe: Breathe = still) -> bool:
        """Apply change-log entries one by one; True when a gap means a full reload.

        A bad entry is reported and passed over; every good one before and after it is
        applied. ``head`` moves past an entry only once it was applied or reported, and
        only once what was taken is swapped in: whoever waits for a version finds it served.
        """
        changed: list[str] = []
        gap = False
        head = self.head
        try:
            for entry in entries:
                breathe()  # a read can bring a thousand, each decoded
                where = f"change-log entry {entry.id}"
                previous = entry.text("prev", "") or None
                feature = entry.text("feature", "") or None
                raw = entry.fields.get("record")
                if OVERSIZED_FIELD in entry.fields:
                    if previous is not None and previous != head:
                        gap = True
                        break
                    size = entry.text(OVERSIZED_FIELD)
                    self.report(
                        where,
                        f"entry is {size} bytes, over the {MAX_ENTRY_CHARS} limit (left unread)",
                    )
                    head = entry.id
                    continue
                if previous is None or feature is None or raw is None:
                    self.report(where, "not a feats entry (fields missing)")
                    head = entry.id
                    continue
                if previous != head:
                    gap = True
                    break
                if entry.size() > MAX_ENTRY_CHARS:
                    self.report(
                        where,
                        f"entry is {entry.size()} characters, over the {MAX_ENTRY_CHARS} limit",
                    )
                    head = entry.id
                    continue
                held = self.served.get(feature)
                if held is not None and version_position(entry.id) <= version_position(
                    held.version
                ):
                    head = entry.id  # this process's own write coming back: not decoded
                    continue
                record = self._decode(where, raw, feature)
                if record is not None and self._take(feature, entry.id, raw, record, where):
                    changed.append(feature)
                head = entry.id
        finally:
            # Whatever happened on the way, what was taken is served.
            if changed:
                self._swap(changed)
            self.head = head
            self.last_applied_at = time.time()
            if changed:
                self._announce(self.head, changed)
        return gap

    def _take(
        self, feature: str, version: str, raw: str | bytes, record: Record, where: str
    ) -> bool:
        with self.lock:
            held = self.served.get(feature)
            if held is not None and version_position(version) <= version_position(held.version):
                return False  # older, or this process's own write coming back: nothing new
            if not self._acceptable(feature, record, held, where):
                return False
            self.served[feature] = Served(version, raw, record, checked=True)
            self.diverged.discard(feature)
            self._touch((feature,))
            return True

    def held(self, feature: str) -> tuple[str | None, Record | None] | None:
        """The version and record this App holds for ``feature`` as the store had them
        ((None, None): none), which a write may plan on; None unless live, or when what it
        holds is not what the store has (unreadable, or kept over a newer one it refused)."""
        if self.state != "live":
            return None
        served = self.served.get(feature)
        if served is None:
            return None, None
        record = served.record
        if record is None:
            if served.checked:
                return None
            try:
                record = decode_record(served.raw)
            except CodecError:
                return None
        return served.version, record

    def apply_write(self, feature: str, version: str, record: Record, raw: str) -> None:
        """Our own acknowledged write: visible at once, before the tail brings it back."""
        with self.lock:
            held = self.served.get(feature)
            if held is not None and version_position(version) < version_position(held.version):
                return
            self.served[feature] = Served(version, raw, record, checked=True)
            self.diverged.discard(feature)
            self._touch((feature,))
            self._swap([feature])
        self._announce(version, (feature,))
