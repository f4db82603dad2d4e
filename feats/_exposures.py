"""Experiment results: exposure counts aggregated from the exposure stream in bounded memory.

The stream holds batches (fields ``t``, ``n`` and ``batch``, a JSON list of
``[feature, implementation, version, [unit, ...]]`` groups; entries written before that
format hold ``[feature, implementation, unit, version]`` items, read alike). Counting per
implementation is exact;
distinct units are estimated with a HyperLogLog; counts per segment value keep the
heaviest values with the Space-Saving algorithm, exact while the values fit.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ._codec import LAST_RECORD_TIME, decode, expect
from ._errors import CodecError
from ._selectors import UnitQueue
from ._stored import RawEntry, version_at_least

__all__ = [
    "EXPOSURE_PAGE",
    "ExposureBuffer",
    "ExposureCounter",
    "ExposureListener",
    "ExposureReport",
    "HyperLogLog",
    "ImplementationExposures",
    "SpaceSaving",
    "ValueExposures",
    "count_units",
    "encode_exposures",
    "exposures_in",
    "exposures_start",
]

_hash = xxhash.xxh3_64_intdigest
logger = logging.getLogger("feats")

EXPOSURE_BATCH = 5_000
"""Exposures per stream entry at most."""
EXPOSURE_PAGE = 1_000
"""Stream entries read per round trip while counting."""
ROOM_POLL_SECONDS = 0.0002
"""How often a thread waiting for room in a full queue looks again (each look lets the
writer thread have the interpreter)."""
ROOM_WAIT_SECONDS = 0.05
"""How long a sync App's evaluation waits at most for room in a full queue."""


Units = deque[str]
"""The unit values (the experiment segment's) recorded for one implementation, in order."""
ExposureListener = Callable[[str, str, str, "str | None"], None]
"""``listener(feature, implementation, unit, version)``: told of every exposure recorded."""
Batch = list[tuple[str, str, str | None, list[str]]]
"""What one stream entry holds: ``(feature, implementation, version, units)`` groups."""


class _Group:
    """One compiled experiment's queues, one per implementation, how many units each may
    hold, and who compiled it."""

    __slots__ = ("feature", "limits", "owner", "queues", "version")

    def __init__(self, feature: str, version: str | None) -> None:
        self.feature = feature
        self.version = version
        self.queues: dict[str, Units] = {}
        self.limits: dict[str, int] = {}
        self.owner: Callable[[], object | None] = _nobody

    def queue(self, implementation: str) -> Units:
        found = self.queues.get(implementation)
        if found is None:
            found = self.queues.setdefault(implementation, deque())
        return found


class _Told:
    """An implementation's queue that also tells the exposure listeners of every unit
    appended to it (feats.testing): what the hot path gets while any listens."""

    __slots__ = ("_append", "_queue", "_tell")

    def __init__(self, queue: Units, tell: Callable[[str], None]) -> None:
        self._queue = queue
        self._append = queue.append
        self._tell = tell

    def __len__(self) -> int:
        return len(self._queue)

    def append(self, unit: str) -> None:
        self._append(unit)
        self._tell(unit)


def _nobody() -> None:
    return None


def _forever() -> bool:
    """The owner of a group exposures are added to by hand: it is never forgotten, as an
    add could be racing the writer that found it empty."""
    return True


class ExposureBuffer:
    """Experiment exposures between the hot path and the writer: per compiled experiment,
    a queue per implementation that evaluation appends a unit value to, nothing more.

    Bounded: an experiment's queues hold ``capacity`` units in all, each its implementation's
    share of them (by weight), so a full queue is known from its own length; what does not
    fit is dropped and counted. deque's append and popleft are atomic, so evaluation threads
    and the writer need no lock.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.dropped = 0
        self.written = 0
        self._groups: dict[tuple[str, str | None], _Group] = {}
        self._lock = threading.Lock()
        self._taking = threading.Lock()
        self.listeners: list[ExposureListener] = []
        """Told of every exposure recorded; while there are any, the compiled experiments
        record through queues that tell them (compile anew after the first or the last)."""
        self.wait_for_room = 0.0
        """Seconds an evaluation may wait for the writer to make room in a full queue (the
        sync App: a thread evaluating flat out would otherwise starve the writer thread and
        drop exposures while Redis answers); 0 drops at once (an event loop never waits)."""
        self.writer_ready = True
        """The writer's last write succeeded and no wait for room ran out since: waiting can
        help. False while storage fails, so that exposures are dropped without waiting."""
        self.wanted = threading.Event()
        """Set when a queue is full: the writer writes now, not at its next interval."""

    def _tell(self, feature: str, implementation: str, unit: str, version: str | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(feature, implementation, unit, version)
            except Exception:
                logger.exception("feats: an exposure listener raised")

    def _told(
        self, feature: str, implementation: str, version: str | None, queue: Units
    ) -> UnitQueue:
        def tell(unit: str) -> None:
            self._tell(feature, implementation, unit, version)

        return _Told(queue, tell)

    def _group(self, feature: str, version: str | None) -> _Group:
        key = (feature, version)
        group = self._groups.get(key)
        if group is None:
            with self._lock:
                group = self._groups.setdefault(key, _Group(feature, version))
        return group

    def queues(
        self,
        feature: str,
        version: str | None,
        names: Sequence[str],
        owner: object,
        shares: Mapping[str, float],
    ) -> tuple[tuple[UnitQueue, ...], tuple[int, ...]]:
        """The queue of each of ``names`` (an allocation's ranges, in order) for a compiled
        experiment, and how many units each may hold (its ``shares`` of ``capacity``);
        ``owner`` (weakly held) appends to them: once it is gone and its queues are empty,
        the group is forgotten."""
        group = self._group(feature, version)
        if group.owner is not _forever:
            group.owner = weakref.ref(owner)
        for name, share in shares.items():
            group.limits[name] = max(1, int(self.capacity * share))
        queues: tuple[UnitQueue, ...] = tuple(group.queue(name) for name in names)
        if self.listeners:
            queues = tuple(self._told(feature, name, version, group.queue(name)) for name in names)
        return queues, tuple(group.limits.get(name, self.capacity) for name in names)

    def overflow(self, queue: UnitQueue, unit: str, limit: int) -> None:
        """A unit the hot path found no room for in ``queue``. With ``wait_for_room`` and a
        writer that is writing, this thread gives the writer the interpreter until there is
        room (at most ``wait_for_room``); otherwise, or if that runs out, the unit is
        dropped and counted."""
        self.wanted.set()
        if self.wait_for_room and self.writer_ready:
            deadline = time.monotonic() + self.wait_for_room
            while self.writer_ready and time.monotonic() < deadline:
                time.sleep(ROOM_POLL_SECONDS)
                if len(queue) < limit:
                    queue.append(unit)
                    return
            # The writer cannot keep up (storage is slow or gone): drop without waiting
            # until it writes again.
            self.writer_ready = False
        self.dropped += 1

    def add(self, feature: str, implementation: str, unit: str, version: str | None) -> None:
        """Record one exposure (used_implementation, record_exposure): the slow path."""
        group = self._group(feature, version)
        group.owner = _forever
        queue = group.queue(implementation)
        limit = group.limits.get(implementation, self.capacity)
        if len(queue) < limit:
            queue.append(unit)
        else:
            self.overflow(queue, unit, limit)
        if self.listeners:
            self._tell(feature, implementation, unit, version)

    def __len__(self) -> int:
        return sum(
            len(queue)
            for group in list(self._groups.values())
            for queue in list(group.queues.values())
        )

    def take_batches(self, batches: int) -> list[Batch]:
        """Up to ``batches`` batches of EXPOSURE_BATCH units, for one round trip."""
        taken: list[Batch] = []
        for _ in range(batches):
            batch = self.take(EXPOSURE_BATCH)
            if not batch:
                break
            taken.append(batch)
        return taken

    def sent(self, batches: Sequence[Batch]) -> None:
        """``batches`` are in storage."""
        self.writer_ready = True
        self.written += sum(count_units(batch) for batch in batches)

    def unsent(self, batches: Sequence[Batch]) -> None:
        """Writing ``batches`` failed: each goes back in front of the newer units."""
        self.writer_ready = False
        for batch in reversed(batches):
            self.put_back(batch)

    def take(self, limit: int) -> Batch:
        """Up to ``limit`` units, grouped; forgets the groups nobody appends to any more.
        Writers on two threads (an asyncio App's loop and its writer thread) take in turn."""
        with self._taking:
            return self._take(limit)

    def _take(self, limit: int) -> Batch:
        batch: Batch = []
        left = limit
        for key, group in list(self._groups.items()):
            for implementation, queue in list(group.queues.items()):
                count = min(len(queue), left)
                if count:
                    popleft = queue.popleft
                    batch.append(
                        (
                            group.feature,
                            implementation,
                            group.version,
                            [popleft() for _ in range(count)],
                        )
                    )
                    left -= count
            if group.owner() is None and not any(group.queues.values()):
                with self._lock:
                    if self._groups.get(key) is group:
                        del self._groups[key]
            if left <= 0:
                break
        return batch

    def put_back(self, batch: Batch) -> None:
        """Return an unwritten batch to the front of its queues, dropping (and counting)
        the newest units of a queue beyond its limit."""
        with self._taking:
            self._put_back(batch)

    def _put_back(self, batch: Batch) -> None:
        for feature, implementation, version, units in batch:
            group = self._group(feature, version)
            queue = group.queue(implementation)
            queue.extendleft(reversed(units))
            limit = group.limits.get(implementation, self.capacity)
            while len(queue) > limit:
                queue.pop()
                self.dropped += 1


def count_units(batch: Batch) -> int:
    return sum(len(units) for _, _, _, units in batch)


def encode_exposures(batch: Batch) -> dict[str, str]:
    """One stream entry for a batch: ``[feature, implementation, version, [units...]]``
    groups, far fewer bytes and commands than one entry (or one item) per exposure."""
    return {
        "t": f"{time.time():.3f}",
        "n": str(count_units(batch)),
        # json writes tuples as arrays: the same text, at half the cost of converting.
        "batch": json.dumps(batch, separators=(",", ":")),
    }


def exposures_start(since: str | None) -> str:
    """Where to start reading: exposures under version V were written after V, in the
    same clock, so entries before ``since`` cannot count."""
    return since or "0-0"


class HyperLogLog:
    """Distinct-count estimate in 2**precision bytes (about 1.6% error at precision 12)."""

    def __init__(self, precision: int = 12) -> None:
        self.precision = precision
        self.size = 1 << precision
        self.registers = bytearray(self.size)
        self._shift = 64 - precision
        self._mask = (1 << self._shift) - 1

    def add(self, value: str) -> None:
        hashed = _hash(value.encode(), seed=0xFEA75)
        index = hashed >> self._shift
        rest = hashed & self._mask
        rank = self._shift - rest.bit_length() + 1
        if rank > self.registers[index]:
            self.registers[index] = rank

    def __len__(self) -> int:
        size = self.size
        alpha = 0.7213 / (1 + 1.079 / size)
        estimate = alpha * size * size / sum(2.0**-register for register in self.registers)
        zeros = self.registers.count(0)
        if estimate <= 2.5 * size and zeros:
            estimate = size * math.log(size / zeros)
        return round(estimate)


class SpaceSaving:
    """The heaviest keys of a stream in ``capacity`` counters; exact while keys fit."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.counts: dict[tuple[str, str], int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.evicted = False

    def add(self, key: tuple[str, str], count: int = 1) -> None:
        counts = self.counts
        if key in counts:
            counts[key] += count
            return
        if len(counts) < self.capacity:
            counts[key] = count
            self.errors[key] = 0
            return
        smallest = min(counts, key=counts.__getitem__)
        floor = counts.pop(smallest)
        self.errors.pop(smallest, None)
        counts[key] = floor + count
        self.errors[key] = floor
        self.evicted = True

    def top(self, limit: int) -> list[tuple[tuple[str, str], int]]:
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


@dataclass(frozen=True)
class ImplementationExposures:
    implementation: str
    exposures: int
    units: int
    """Distinct units (the experiment segment's values), estimated."""
    share: float


@dataclass(frozen=True)
class ValueExposures:
    value: str
    implementation: str
    exposures: int


@dataclass(frozen=True)
class ExposureReport:
    """Exposures of one feature, per implementation and (when asked) per segment value."""

    feature: str
    total: int
    implementations: tuple[ImplementationExposures, ...]
    values: tuple[ValueExposures, ...] | None = None
    values_approximate: bool = False
    versions: tuple[str, ...] = ()
    entries: int = 0
    skipped: int = 0
    first: float | None = None
    last: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "total": self.total,
            "implementations": [
                {
                    "implementation": item.implementation,
                    "exposures": item.exposures,
                    "units": item.units,
                    "share": item.share,
                }
                for item in self.implementations
            ],
            "values": None
            if self.values is None
            else [
                {"value": v.value, "implementation": v.implementation, "exposures": v.exposures}
                for v in self.values
            ],
            "values_approximate": self.values_approximate,
            "versions": list(self.versions),
            "entries": self.entries,
            "skipped": self.skipped,
            "first": self.first,
            "last": self.last,
        }


class ExposureCounter:
    """Feed it exposure-stream entries in order; memory stays bounded whatever their number."""

    def __init__(
        self,
        feature: str,
        *,
        by_value: bool = False,
        since: str | None = None,
        capacity: int = 1_000,
        top: int = 50,
    ) -> None:
        self.feature = feature
        self.since = since
        self.counts: dict[str, int] = {}
        self.units: dict[str, HyperLogLog] = {}
        self.values = SpaceSaving(capacity) if by_value else None
        self.top = top
        self.versions: dict[str, None] = {}
        self.entries = 0
        self.skipped = 0
        self.first: float | None = None
        self.last: float | None = None

    def add_entries(self, entries: Iterable[RawEntry]) -> None:
        for entry in entries:
            self.add_entry(entry)

    def add_entry(self, entry: RawEntry) -> None:
        self.entries += 1
        try:
            groups, skipped = decode(
                _batch, entry.fields.get("batch", ""), limit=MAX_BATCH_BYTES, what="exposure batch"
            )
        except CodecError:
            self.skipped += 1
            return
        self.skipped += skipped
        try:
            when = float(entry.text("t", "nan"))
        except ValueError:
            when = math.nan
        if not 0 <= when <= LAST_RECORD_TIME:
            # A time no clock gives (or NaN) says nothing of when: the exposures still count.
            when = math.nan
        seen = False
        for feature, implementation, version, units in groups:
            if feature != self.feature:
                continue
            if self.since is not None and (version is None or not _at_least(version, self.since)):
                continue
            seen = True
            self.counts[implementation] = self.counts.get(implementation, 0) + len(units)
            distinct = self.units.get(implementation)
            if distinct is None:
                distinct = self.units[implementation] = HyperLogLog()
            for unit in units:
                distinct.add(unit)
                if self.values is not None:
                    self.values.add((unit, implementation))
            if version is not None and version not in self.versions and len(self.versions) < 100:
                self.versions[version] = None
        if seen and math.isfinite(when):
            self.first = when if self.first is None else min(self.first, when)
            self.last = when if self.last is None else max(self.last, when)

    def report(self) -> ExposureReport:
        total = sum(self.counts.values())
        implementations = tuple(
            ImplementationExposures(
                name,
                count,
                len(self.units[name]),
                count / total if total else 0.0,
            )
            for name, count in sorted(self.counts.items(), key=lambda item: -item[1])
        )
        values = None
        if self.values is not None:
            values = tuple(
                ValueExposures(value, implementation, count)
                for (value, implementation), count in self.values.top(self.top)
            )
        return ExposureReport(
            feature=self.feature,
            total=total,
            implementations=implementations,
            values=values,
            values_approximate=bool(self.values is not None and self.values.evicted),
            versions=tuple(self.versions),
            entries=self.entries,
            skipped=self.skipped,
            first=self.first,
            last=self.last,
        )


MAX_BATCH_BYTES = 16 * 1024 * 1024
"""A stream entry of exposures is at most this large (the writer sends 5,000 units)."""


def _batch(document: Any) -> tuple[Batch, int]:
    """An entry's groups, whichever format wrote it, and how many items were unreadable."""
    groups: Batch = []
    skipped = 0
    for item in expect(document, list, "exposure batch"):
        if type(item) is list and len(item) == 4:
            feature, implementation, third, fourth = item
            # [feature, implementation, version, [units]], or before: [.., unit, version]
            version, units = (third, fourth) if type(fourth) is list else (fourth, [third])
            if (
                type(feature) is str
                and type(implementation) is str
                and (version is None or type(version) is str)
            ):
                good = [unit for unit in units if type(unit) is str]
                skipped += len(units) - len(good)
                groups.append((feature, implementation, version, good))
                continue
        skipped += 1
    return groups, skipped


def exposures_in(entry: RawEntry) -> list[tuple[str, str, str, str | None]]:
    """Every exposure one stream entry holds, as ``(feature, implementation, unit,
    version)``; CodecError if it is unreadable (tests and tools that want them one by one)."""
    groups, _ = decode(
        _batch, entry.fields.get("batch", ""), limit=MAX_BATCH_BYTES, what="exposure batch"
    )
    return [
        (feature, implementation, unit, version)
        for feature, implementation, version, units in groups
        for unit in units
    ]


def _at_least(version: str, since: str) -> bool:
    try:
        return version_at_least(version, since)
    except ValueError:
        return False
