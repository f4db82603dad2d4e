"""The tail's decisions without I/O: what to do next after each answer from storage."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from ._codec import encode_record
from ._core import AppCore
from ._errors import CodecError
from ._stored import Loaded, RawEntry, version_position

__all__ = [
    "MAX_RESEED_ATTEMPTS",
    "Action",
    "CheckEpoch",
    "Load",
    "Read",
    "Reseed",
    "Tail",
    "Wait",
]

logger = logging.getLogger("feats")

MAX_RESEED_ATTEMPTS = 3
"""Re-seeding that keeps failing (a read-only ACL) stops after this many tries."""


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
