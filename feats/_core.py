"""The sans-IO App core: declarations, the snapshot it swaps, the change log it applies, status."""

from __future__ import annotations

import gc
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._codec import MAX_RECORD_BYTES, Record, decode_record, encode_record
from ._declarations import Registry
from ._errors import CodecError, FeatsError
from ._snapshot import CompiledFeature, Evaluation
from ._state import Experiment, FeatureState, validate_state

__all__ = [
    "Action",
    "AppCore",
    "CheckEpoch",
    "ExposureBuffer",
    "Load",
    "Loaded",
    "Problem",
    "RawEntry",
    "Read",
    "Reseed",
    "Status",
    "Tail",
    "Wait",
    "parse_version",
    "version_at_least",
    "version_position",
]

logger = logging.getLogger("feats")

ZERO_VERSION = "0-0"
MAX_ENTRY_CHARS = MAX_RECORD_BYTES + 4096
"""A change-log entry larger than this is skipped unread: its record alone may not exceed
MAX_RECORD_BYTES, and its other fields are a feature name and a version."""
MAX_RESEED_ATTEMPTS = 3
OVERSIZED = "oversized:"
"""What LOAD_SCRIPT sends instead of a record over MAX_RECORD_BYTES, followed by its size."""


def parse_version(version: str) -> tuple[int, int]:
    """Stream ids order versions across a namespace: ``"<ms>-<seq>"``."""
    ms, _, seq = version.partition("-")
    return int(ms), int(seq or 0)


def version_at_least(version: str, wanted: str) -> bool:
    return parse_version(version) >= parse_version(wanted)


def version_position(version: str) -> tuple[int, int]:
    """parse_version for text read from storage: a malformed version sorts first."""
    try:
        return parse_version(version)
    except ValueError:
        return (-1, -1)


@dataclass(frozen=True)
class RawEntry:
    """One change-log entry as storage returns it: an id and text fields, not yet trusted."""

    id: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Loaded:
    """Everything a full load returns, read atomically: current records, log head, epoch."""

    records: Mapping[str, tuple[str, str]]
    head: str
    epoch: str | None


@dataclass(frozen=True)
class Problem:
    """Something read from storage that was skipped, and why."""

    where: str
    message: str
    time: float


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


class ExposureBuffer:
    """A bounded queue of experiment exposures between the hot path and the writer task.

    When storage is down it fills up, then counts what it drops instead of growing.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self.written = 0
        self._items: deque[tuple[str, str, str, str | None]] = deque()

    def add(self, feature: str, implementation: str, unit: str, version: str | None) -> None:
        if len(self._items) >= self.capacity:
            self.dropped += 1
            return
        self._items.append((feature, implementation, unit, version))

    def __len__(self) -> int:
        return len(self._items)

    def take(self, limit: int) -> list[tuple[str, str, str, str | None]]:
        items = self._items
        return [items.popleft() for _ in range(min(limit, len(items)))]

    def put_back(self, batch: list[tuple[str, str, str, str | None]]) -> None:
        """Return an unwritten batch to the front, dropping (and counting) what no longer fits."""
        room = max(0, self.capacity - len(self._items))
        keep = batch[:room]
        self.dropped += len(batch) - len(keep)
        self._items.extendleft(reversed(keep))


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
        try:
            validate_state(feature, record.state, self.registry)
        except FeatsError as error:
            return str(error)
        return None

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


@dataclass(frozen=True)
class Load:
    """Read everything at once (start, gap, another store)."""


@dataclass(frozen=True)
class Read:
    """Block on the change log for entries after ``after``."""

    after: str
    block_ms: int


@dataclass(frozen=True)
class CheckEpoch:
    """Ask for the store's epoch: a wiped or replaced Redis shows here. With ``head``, its
    last log id too: a store that lost its last writes (a failover to a lagging replica)
    shows there. Only asked after an error, as every such loss breaks the connection."""

    head: bool = False


@dataclass(frozen=True)
class Wait:
    """Back off before trying again."""

    seconds: float


@dataclass(frozen=True)
class Reseed:
    """Write back what the store lost from this App's snapshot, atomically, and only if the
    store's epoch is still ``epoch`` (None: still absent), so of many Apps finding the same
    empty store exactly one writes. ``items`` are ``(feature, version, record)``, oldest
    first; the store keeps their versions where its log allows."""

    items: tuple[tuple[str, str, str], ...]
    epoch: str | None


Action = Load | Read | CheckEpoch | Wait | Reseed


class Tail:
    """What the tail task does next, decided without I/O; the shells only carry it out.

    Start: Load. Then Read (XREAD BLOCK from the last id) until a gap (Load) or an idle
    timeout (CheckEpoch: a replaced store shows there). Errors: stale, jittered backoff,
    then CheckEpoch (or Load before the first load). A load that finds the store lacking
    configuration this App serves (an empty or rolled-back store) first Reseeds it, then
    loads again; an App that may not write (a least-privilege ACL) keeps serving its
    snapshot and reports the features as diverged instead.
    """

    def __init__(
        self,
        core: AppCore,
        *,
        block_ms: int,
        max_backoff: float = 2.0,
        reseed: bool = True,
        silence: float | None = None,
    ) -> None:
        self.core = core
        self.block_ms = block_ms
        self.max_backoff = max_backoff
        self.reseed = reseed
        self.failures = 0
        self._next: Action = Load()
        self._after_wait: Action = Load()
        self.loaded_once = False
        self._reseeds_left = MAX_RESEED_ATTEMPTS
        core.silence_limit = silence if silence is not None else block_ms / 1000 + 5.0

    def next_action(self) -> Action:
        return self._next

    def _healthy(self) -> None:
        """Storage answered and the snapshot is applied: live, unless the store lost some."""
        self.core.confirmed()
        if not self.loaded_once:
            return
        diverged = self.core.diverged
        if diverged:
            self.core.set_state(
                "stale",
                f"the store lost {len(diverged)} feature(s) this App still serves "
                f"({', '.join(sorted(diverged)[:5])}); keeping them until it has them again",
            )
        elif self.core.state != "live" or self.core.error is not None:
            self.core.set_state("live")

    def on_loaded(self, loaded: Loaded) -> None:
        self.failures = 0
        ahead = self.core.ahead_of(loaded)
        if ahead and self.reseed and self._reseeds_left > 0:
            items = []
            for feature, version, record in ahead:
                try:
                    items.append((feature, version, encode_record(record)))
                except CodecError:
                    continue
            if items:
                self._reseeds_left -= 1
                self.core.confirmed()
                self.core.set_state(
                    "stale",
                    f"the store lacks {len(ahead)} feature(s) this App serves (restarted "
                    "empty or failed over?); writing them back from this App's snapshot",
                )
                self._next = Reseed(tuple(items), loaded.epoch)
                return
        if not ahead:
            self._reseeds_left = MAX_RESEED_ATTEMPTS
        self.core.apply_loaded(loaded)
        self.loaded_once = True
        self._healthy()
        self._next = Read(self.core.head, self.block_ms)

    def on_reseeded(self, written: int | None) -> None:
        """``written``: how many features the store took back; None if another App won."""
        self.failures = 0
        if written:
            self.core.reseeds += 1
            logger.warning(
                "feats: the store had lost %d feature(s); re-seeded it from this App's snapshot",
                written,
            )
        self._next = Load()

    def on_entries(self, entries: list[RawEntry]) -> None:
        self.failures = 0
        if not entries:
            # An idle BLOCK timed out: a cheap moment to notice a replaced store.
            self.core.confirmed()
            self._next = CheckEpoch()
            return
        if self.core.apply_entries(entries):
            self._next = Load()
            return
        self._healthy()
        self._next = Read(self.core.head, self.block_ms)

    def on_epoch(self, epoch: str | None, head: str | None = None) -> None:
        """``head``: the store's last log id, if the storage can tell (None: unknown)."""
        self.failures = 0
        behind = head is not None and version_position(head) < version_position(self.core.head)
        if epoch != self.core.epoch or behind:
            # Replaced, or behind what this App applied: it lost writes. A full load
            # compares them feature by feature (and re-seeds what is missing).
            self._next = Load()
            return
        self._healthy()
        self._next = Read(self.core.head, self.block_ms)

    def on_error(self, error: BaseException) -> None:
        self.failures += 1
        if isinstance(self._next, Reseed):
            # Most likely a least-privilege App that may not write configuration (NOPERM):
            # after MAX_RESEED_ATTEMPTS the next load keeps the snapshot as diverged.
            self.core.report("re-seeding the store", f"{type(error).__name__}: {error}")
            self._after_wait = Load()
        else:
            self._after_wait = Load() if not self.loaded_once else CheckEpoch(head=True)
        self.core.set_state("stale", f"{type(error).__name__}: {error}")
        delay = min(self.max_backoff, 0.05 * 2 ** min(self.failures, 10))
        self._next = Wait(delay * (0.5 + random.random() / 2))

    def on_waited(self) -> None:
        self._next = self._after_wait
