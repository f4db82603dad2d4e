"""The sans-IO App core: declarations, the snapshot it swaps, the change log it applies, status."""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ._codec import Record, decode_record
from ._declarations import Registry
from ._errors import CodecError
from ._snapshot import CompiledFeature, Evaluation

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
    "Status",
    "Tail",
    "Wait",
    "parse_version",
    "version_at_least",
]

logger = logging.getLogger("feats")

ZERO_VERSION = "0-0"


def parse_version(version: str) -> tuple[int, int]:
    """Stream ids order versions across a namespace: ``"<ms>-<seq>"``."""
    ms, _, seq = version.partition("-")
    return int(ms), int(seq or 0)


def version_at_least(version: str, wanted: str) -> bool:
    return parse_version(version) >= parse_version(wanted)


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


StatusName = Literal["initializing", "live", "stale"]


@dataclass(frozen=True)
class Status:
    """How current an App's snapshot is."""

    state: StatusName
    version: str | None
    since: float
    error: str | None = None
    lag: float | None = None
    skipped: int = 0
    exposures_dropped: int = 0
    exposures_written: int = 0
    problems: tuple[Problem, ...] = field(default=())

    @property
    def live(self) -> bool:
        return self.state == "live"


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
        batch: list[tuple[str, str, str, str | None]] = []
        while items and len(batch) < limit:
            batch.append(items.popleft())
        return batch

    def put_back(self, batch: list[tuple[str, str, str, str | None]]) -> None:
        """Return an unwritten batch to the front, dropping (and counting) what no longer fits."""
        room = max(0, self.capacity - len(self._items))
        keep = batch[:room]
        self.dropped += len(batch) - len(keep)
        self._items.extendleft(reversed(keep))


Listener = Callable[[str, tuple[str, ...]], None]
"""``listener(version, features)``: called after the snapshot changed, off the hot path."""


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
        self._warned: set[tuple[str, str]] = set()
        self.listeners: list[Listener] = []

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
                logger.warning("feats: configuration is stale: %s", error)
            elif self.state == "stale":
                logger.info("feats: configuration is live again at version %s", self.head)
        self.state = state
        self.error = error

    def status(self) -> Status:
        lag = None
        if self.state != "live" and self.last_applied_at is not None:
            lag = time.time() - self.last_applied_at
        return Status(
            state=self.state,
            version=None if self.head == ZERO_VERSION else self.head,
            since=self.state_since,
            error=self.error,
            lag=lag,
            skipped=self.skipped,
            exposures_dropped=self.exposures.dropped,
            exposures_written=self.exposures.written,
            problems=tuple(self.problems),
        )

    # -- compiling ---------------------------------------------------------------------

    def _compile(self, name: str) -> CompiledFeature:
        declaration = self.registry.features[name]
        version, record = self.records.get(name, (None, None))
        return CompiledFeature(
            declaration,
            None if record is None else record.state,
            version,
            self.registry,
            self.warn,
            self.exposures.add,
        )

    def recompile(self) -> None:
        """Rebuild every feature, e.g. after a declaration changed what segments exist."""
        self.compiled = {name: self._compile(name) for name in self.registry.features}

    def declared_feature(self, name: str) -> None:
        # A new key in place is safe: nothing reads it before its handle exists.
        self.compiled[name] = self._compile(name)

    def declared_segment(self) -> None:
        """A new segment can heal drift in configured features; the rest are unaffected."""
        self._swap(self.records)

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
        return self.compiled[name].explain(args, stale=self.state == "stale")

    # -- applying storage --------------------------------------------------------------

    def _decode(self, where: str, raw: str, feature: str | None) -> Record | None:
        try:
            record = decode_record(raw)
        except CodecError as error:
            self.report(where, str(error))
            return None
        if feature is not None and record.feature != feature:
            self.report(where, f"record names feature {record.feature!r}, stored under {feature!r}")
            return None
        return record

    def is_empty_store(self, loaded: Loaded) -> bool:
        """True when storage lost everything (no epoch, no records) while we still hold some."""
        return loaded.epoch is None and not loaded.records and bool(self.records)

    def apply_loaded(self, loaded: Loaded) -> bool:
        """Replace the snapshot with a full load; False (and nothing changes) for an empty store.

        An empty store under a non-empty snapshot is what a Redis restarted without
        persistence looks like: the snapshot stays rather than flipping users to defaults.
        """
        if self.is_empty_store(loaded):
            self.set_state(
                "stale",
                "the store is empty (restarted without its data?); "
                "keeping the last good configuration",
            )
            return False
        records: dict[str, tuple[str, Record]] = {}
        for feature, (version, raw) in loaded.records.items():
            record = self._decode(f"state of {feature} at {version}", raw, feature)
            if record is not None:
                records[feature] = (version, record)
            elif feature in self.records:
                records[feature] = self.records[feature]
        self.records = records
        self.head = loaded.head
        self.epoch = loaded.epoch
        self.recompile()
        self.last_applied_at = time.time()
        self._announce(self.head, records)
        return True

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
            record = self._decode(f"change-log entry {entry.id}", raw, feature)
            if record is None:
                continue
            current = self.records.get(feature)
            if current is None or version_at_least(entry.id, current[0]):
                self.records[feature] = (entry.id, record)
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
    """Ask for the store's epoch: a wiped or replaced Redis shows here."""


@dataclass(frozen=True)
class Wait:
    """Back off before trying again."""

    seconds: float


Action = Load | Read | CheckEpoch | Wait


class Tail:
    """What the tail task does next, decided without I/O; the shells only carry it out."""

    def __init__(self, core: AppCore, *, block_ms: int, max_backoff: float = 2.0) -> None:
        self.core = core
        self.block_ms = block_ms
        self.max_backoff = max_backoff
        self.failures = 0
        self._next: Action = Load()
        self.loaded_once = False

    def next_action(self) -> Action:
        return self._next

    def on_loaded(self, loaded: Loaded) -> None:
        if self.core.apply_loaded(loaded):
            self.core.set_state("live")
        self.loaded_once = True
        self.failures = 0
        self._next = Read(self.core.head, self.block_ms)

    def on_entries(self, entries: list[RawEntry]) -> None:
        self.failures = 0
        if not entries:
            # An idle BLOCK timed out: a cheap moment to notice a replaced store.
            self._next = CheckEpoch()
            return
        if self.core.apply_entries(entries):
            self._next = Load()
            return
        if self.core.state != "live" and self.loaded_once:
            self.core.set_state("live")
        self._next = Read(self.core.head, self.block_ms)

    def on_epoch(self, epoch: str | None) -> None:
        self.failures = 0
        if epoch != self.core.epoch:
            self._next = Load()
            return
        if self.core.state != "live" and self.loaded_once:
            self.core.set_state("live")
        self._next = Read(self.core.head, self.block_ms)

    def on_error(self, error: BaseException) -> None:
        self.failures += 1
        self.core.set_state("stale", f"{type(error).__name__}: {error}")
        delay = min(self.max_backoff, 0.05 * 2 ** min(self.failures, 10))
        self._next = Wait(delay * (0.5 + random.random() / 2))
        self._after_wait: Action = Load() if not self.loaded_once else CheckEpoch()

    def on_waited(self) -> None:
        self._next = self._after_wait
