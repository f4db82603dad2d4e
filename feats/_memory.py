"""The in-memory store behind both MemoryStorages: the Redis layout's semantics in a process."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence

from ._layout import EXPOSURES_MAXLEN, HISTORY_MAXLEN, new_epoch
from ._stored import ZERO_VERSION, Loaded, RawEntry, parse_version

__all__ = ["MemoryLog"]


class MemoryLog:
    """A change log, current states, histories and exposures, with stream-like versions."""

    def __init__(self) -> None:
        self.entries: list[RawEntry] = []
        self._positions: list[tuple[int, int]] = []
        self.states: dict[str, str] = {}
        self.versions: dict[str, str] = {}
        self.histories: dict[str, deque[tuple[str, str]]] = {}
        self.exposures: deque[tuple[str, Mapping[str, str]]] = deque(maxlen=EXPOSURES_MAXLEN)
        self.catalog: dict[str, str] = {}
        self.epoch: str | None = None
        self._last = (0, 0)

    def _next_id(self) -> str:
        now = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        self._last = (now, 0) if now > last_ms else (last_ms, last_seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    @property
    def head(self) -> str:
        return self.entries[-1].id if self.entries else ZERO_VERSION

    def write(self, feature: str, record: str, expected: str | None) -> tuple[bool, str]:
        """Compare-and-set like the Lua script: (True, new version) or (False, current)."""
        current = self.versions.get(feature, "")
        if expected is not None and expected != current:
            return False, current
        if self.epoch is None:
            self.epoch = new_epoch()
        version = self._next_id()
        self.entries.append(
            RawEntry(version, {"feature": feature, "record": record, "prev": self.head})
        )
        self._positions.append(parse_version(version))
        self.states[feature] = record
        self.versions[feature] = version
        self.histories.setdefault(feature, deque(maxlen=HISTORY_MAXLEN)).append((version, record))
        return True, version

    def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> int | None:
        """RESEED_SCRIPT's semantics: write back what is missing or older, keeping versions."""
        if self.epoch != epoch:
            return None
        if self.epoch is None:
            self.epoch = new_epoch()
        written = 0
        for feature, version, record in items:
            current = self.versions.get(feature)
            if current is not None and parse_version(current) >= parse_version(version):
                continue
            kept = self.histories.setdefault(feature, deque(maxlen=HISTORY_MAXLEN))
            for entry_id, entry_record in (history or {}).get(feature, ()):
                if not kept or parse_version(entry_id) > parse_version(kept[-1][0]):
                    kept.append((entry_id, entry_record))
            position = parse_version(version)
            if position > self._last and position > parse_version(self.head):
                self._last = position
                entry_id = version
            else:
                entry_id = self._next_id()
            self.entries.append(
                RawEntry(entry_id, {"feature": feature, "record": record, "prev": self.head})
            )
            self._positions.append(parse_version(entry_id))
            self.states[feature] = record
            self.versions[feature] = entry_id
            if not kept or parse_version(entry_id) > parse_version(kept[-1][0]):
                kept.append((entry_id, record))
            written += 1
        return written

    def load(self) -> Loaded:
        return Loaded(
            records={f: (self.versions[f], raw) for f, raw in self.states.items()},
            head=self.head,
            epoch=self.epoch,
        )

    def read_after(self, after: str, count: int) -> list[RawEntry]:
        start = bisect_right(self._positions, parse_version(after))
        return self.entries[start : start + count]

    def history(self, feature: str) -> list[tuple[str, str]]:
        return list(self.histories.get(feature, ()))

    def add_exposures(self, fields: Mapping[str, str]) -> None:
        self.exposures.append((self._next_id(), fields))

    def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        position = parse_version(after)
        found = [
            RawEntry(entry_id, dict(fields))
            for entry_id, fields in self.exposures
            if parse_version(entry_id) > position
        ]
        return found[:count]
