"""Experiment results: exposure counts aggregated from the exposure stream in bounded memory.

The stream holds batches (fields ``t``, ``n`` and ``batch``, a JSON list of
``[feature, implementation, unit, version]``). Counting per implementation is exact;
distinct units are estimated with a HyperLogLog; counts per segment value keep the
heaviest values with the Space-Saving algorithm, exact while the values fit.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import xxhash

from ._stored import RawEntry, version_at_least

__all__ = [
    "EXPOSURE_PAGE",
    "ExposureBuffer",
    "ExposureCounter",
    "ExposureReport",
    "HyperLogLog",
    "ImplementationExposures",
    "SpaceSaving",
    "ValueExposures",
    "encode_exposures",
    "exposures_start",
]

_hash = xxhash.xxh3_64_intdigest

EXPOSURE_PAGE = 1_000
"""Stream entries read per round trip while counting."""


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


def encode_exposures(batch: Sequence[tuple[str, str, str, str | None]]) -> dict[str, str]:
    """One stream entry for a batch: far fewer commands than one entry per exposure."""
    return {
        "t": f"{time.time():.3f}",
        "n": str(len(batch)),
        # json writes tuples as arrays: the same text as converting each item to a list,
        # at half the cost per exposure.
        "batch": json.dumps(list(batch), separators=(",", ":")),
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
            batch = json.loads(entry.fields.get("batch", ""))
            when = float(entry.fields.get("t", "nan"))
        except ValueError:
            self.skipped += 1
            return
        if not isinstance(batch, list):
            self.skipped += 1
            return
        seen = False
        for item in batch:
            if not (isinstance(item, list) and len(item) == 4 and item[0] == self.feature):
                if not (isinstance(item, list) and len(item) == 4):
                    self.skipped += 1
                continue
            _, implementation, unit, version = item
            if not isinstance(implementation, str) or not isinstance(unit, str):
                self.skipped += 1
                continue
            if self.since is not None and (
                not isinstance(version, str) or not _at_least(version, self.since)
            ):
                continue
            seen = True
            self.counts[implementation] = self.counts.get(implementation, 0) + 1
            units = self.units.get(implementation)
            if units is None:
                units = self.units[implementation] = HyperLogLog()
            units.add(unit)
            if self.values is not None:
                self.values.add((unit, implementation))
            if (
                isinstance(version, str)
                and version not in self.versions
                and len(self.versions) < 100
            ):
                self.versions[version] = None
        if seen and not math.isnan(when):
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


def _at_least(version: str, since: str) -> bool:
    try:
        return version_at_least(version, since)
    except ValueError:
        return False
