"""The in-memory store behind both MemoryStorages: the Redis layout's semantics in a process,
safe to share between threads and event loops."""

from __future__ import annotations

import asyncio
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Mapping, Sequence

from ._layout import EXPOSURES_MAXLEN, HISTORY_MAXLEN, UNREADABLE, new_epoch
from ._stored import ZERO_VERSION, Loaded, RawEntry, parse_version, version_position

__all__ = ["READ_COUNT", "MemoryLog"]

READ_COUNT = 1_000
"""Entries one read returns at most, as XREAD COUNT does."""


class MemoryLog:
    """A change log, current states, histories, exposures and a catalog, with stream-like
    versions; every method holds one lock, and readers can block until something is written
    (threads on a condition, event loops on futures)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._waiters: set[asyncio.Future[None]] = set()
        self.clear()

    def clear(self) -> None:
        """Lose everything, as a Redis restarted without persistence would."""
        with self.lock:
            self.entries: list[RawEntry] = []
            self._positions: list[tuple[int, int]] = []
            self.states: dict[str, str] = {}
            self.versions: dict[str, str] = {}
            self.histories: dict[str, deque[tuple[str, str]]] = {}
            self.exposures: deque[tuple[str, Mapping[str, str]]] = deque(maxlen=EXPOSURES_MAXLEN)
            self.catalog: dict[str, str] = {}
            self.epoch: str | None = None
            self._last = (0, 0)
            self.changed()

    # -- waiting for entries -------------------------------------------------------------

    def changed(self) -> None:
        """Wake every reader waiting for entries (the lock must be held)."""
        self.lock.notify_all()
        for waiter in self._waiters:
            if not waiter.done():
                try:
                    waiter.get_loop().call_soon_threadsafe(_resolve, waiter)
                except RuntimeError:  # its event loop is closed: nobody waits any more
                    continue
        self._waiters.clear()

    def wait(self, after: str, block_ms: int) -> list[RawEntry]:
        """Entries after ``after``, waiting up to ``block_ms`` for one (a thread's XREAD)."""
        with self.lock:
            entries = self.read_after(after, READ_COUNT)
            if not entries:
                self.lock.wait(block_ms / 1000)
                entries = self.read_after(after, READ_COUNT)
            return entries

    async def wait_async(self, after: str, block_ms: int) -> list[RawEntry]:
        """The same for an event loop, which must not block on the lock's condition."""
        with self.lock:
            entries = self.read_after(after, READ_COUNT)
            if entries:
                return entries
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), block_ms / 1000)
        except TimeoutError:
            pass
        finally:
            with self.lock:
                self._waiters.discard(waiter)
        with self.lock:
            return self.read_after(after, READ_COUNT)

    # -- the layout ----------------------------------------------------------------------

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
        with self.lock:
            current = self.versions.get(feature, "")
            unreadable = current != "" and version_position(current) == (-1, -1)
            if (
                expected is not None
                and expected != current
                and not (expected == UNREADABLE and unreadable)
            ):
                return False, current
            if self.epoch is None:
                self.epoch = new_epoch()
            version = self._next_id()
            self._append(version, feature, record)
            self.histories.setdefault(feature, deque(maxlen=HISTORY_MAXLEN)).append(
                (version, record)
            )
            self.changed()
            return True, version

    def _append(self, version: str, feature: str, record: str) -> None:
        self.entries.append(
            RawEntry(version, {"feature": feature, "record": record, "prev": self.head})
        )
        self._positions.append(parse_version(version))
        self.states[feature] = record
        self.versions[feature] = version

    def reseed(
        self,
        items: Sequence[tuple[str, str, str]],
        epoch: str | None,
        history: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> int | None:
        """RESEED_SCRIPT's semantics: write back what is missing or older, keeping versions."""
        with self.lock:
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
                self._append(entry_id, feature, record)
                if not kept or parse_version(entry_id) > parse_version(kept[-1][0]):
                    kept.append((entry_id, record))
                written += 1
            self.changed()
            return written

    def load(self) -> Loaded:
        with self.lock:
            return Loaded(
                records={f: (self.versions[f], raw) for f, raw in self.states.items()},
                head=self.head,
                epoch=self.epoch,
            )

    def current(self, feature: str) -> tuple[str, str] | None:
        with self.lock:
            if feature not in self.versions:
                return None
            return self.versions[feature], self.states.get(feature, "")

    def epoch_and_head(self) -> tuple[str | None, str]:
        with self.lock:
            return self.epoch, self.head

    def read_after(self, after: str, count: int) -> list[RawEntry]:
        with self.lock:
            start = bisect_right(self._positions, parse_version(after))
            return self.entries[start : start + count]

    def history(self, feature: str) -> list[tuple[str, str]]:
        with self.lock:
            return list(self.histories.get(feature, ()))

    def add_exposures(self, fields: Mapping[str, str]) -> None:
        with self.lock:
            self.exposures.append((self._next_id(), fields))

    def read_exposures(self, after: str, count: int) -> list[RawEntry]:
        with self.lock:
            position = parse_version(after)
            found = [
                RawEntry(entry_id, dict(fields))
                for entry_id, fields in self.exposures
                if parse_version(entry_id) > position
            ]
            return found[:count]

    def publish_catalog(self, fields: Mapping[str, str]) -> None:
        with self.lock:
            self.catalog.update(fields)

    def read_catalog(self) -> dict[str, str]:
        with self.lock:
            return dict(self.catalog)

    def after_fork(self) -> None:
        """Another thread may have held the lock at fork(): the child gets a fresh one."""
        self.lock = threading.Condition()
        self._waiters = set()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
