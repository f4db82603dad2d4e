"""The tail: its decisions without I/O (what to do next after each answer from storage), and
the Follower that carries them out on an App's background threads, for both shells."""

from __future__ import annotations

import gc
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ._breath import Breathe, Breather, lower_switch_interval, restore_switch_interval, still
from ._catalog import CatalogPublisher, catalog_fields
from ._core import AppCore
from ._exposures import encode_exposures
from ._snapshot import CompiledFeature
from ._stored import Loaded, RawEntry, version_position

__all__ = [
    "MAX_RESEED_ATTEMPTS",
    "Action",
    "CheckEpoch",
    "Follower",
    "FollowerStorage",
    "Load",
    "Read",
    "Reseed",
    "Tail",
    "Wait",
    "freeze_heap",
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

    def on_loaded(self, loaded: Loaded, breathe: Breathe = still) -> None:
        """``breathe``: called now and then while thousands of features are applied."""
        self.failures = 0
        self.core.note_epoch(loaded.epoch)
        ahead = self.core.ahead_of(loaded, breathe)
        if ahead and self.reseed and self._reseeds_left > 0:
            # The records go back exactly as this store once had them: nothing to encode,
            # so nothing an unusual record holds can keep the healthy ones from going back.
            self._reseeds_left -= 1
            self.core.confirmed()
            self.core.set_state(
                "stale",
                f"the store lacks {len(ahead)} feature(s) this App serves (restarted "
                "empty or failed over?); writing them back from this App's snapshot",
            )
            self._next = Reseed(tuple(ahead), loaded.epoch)
            return
        if not ahead:
            self._reseeds_left = MAX_RESEED_ATTEMPTS
        self.core.apply_loaded(loaded, breathe)
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

    def on_entries(self, entries: list[RawEntry], breathe: Breathe = still) -> None:
        """``breathe``: called now and then while a thousand entries are applied."""
        self.failures = 0
        if not entries:
            # An idle BLOCK timed out: a cheap moment to notice a replaced store.
            self.core.confirmed()
            self._next = CheckEpoch()
            return
        if self.core.apply_entries(entries, breathe):
            self._next = Load()
            return
        self._healthy()
        self._next = Read(self.core.head, self.block_ms)

    def on_epoch(self, epoch: str | None, head: str | None = None) -> None:
        """``head``: the store's last log id, if the storage can tell (None: unknown)."""
        self.failures = 0
        self.core.note_epoch(epoch)
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


# -- carrying it out -------------------------------------------------------------------


class FollowerStorage(Protocol):
    """What the background threads need from a (sync) storage."""

    namespace: str

    def load(self) -> Loaded: ...
    def read(self, after: str, block_ms: int) -> list[RawEntry]: ...
    def get_epoch(self) -> str | None: ...
    def epoch_and_head(self) -> tuple[str | None, str]: ...
    def reseed(self, items: Sequence[tuple[str, str, str]], epoch: str | None) -> int | None: ...
    def add_exposures(self, entries: Sequence[Mapping[str, str]]) -> None: ...
    def catalog_has(self, identity: str) -> bool: ...
    def publish_catalog(self, fields: Mapping[str, str]) -> None: ...
    def block_ms(self, wanted: int) -> int: ...
    def interrupt(self) -> None: ...
    def after_fork(self) -> None: ...


FREEZE_AFTER_COMPILES = 1_000
"""The writer freezes the heap again once this many features were compiled since the last
time, and none for FREEZE_SETTLED_SECONDS."""
FREEZE_SETTLED_SECONDS = 1.0
MAX_FREEZES = 64
"""Freezes per process at most: each keeps whatever old garbage it finds, forever. A
process holding many Apps (a test run, the fan-out benchmark's 25 per process) asks two
freezes of each App as it starts."""
RECENT_FREEZE_SECONDS = 1.0
"""A freeze asked for ``if_not_recent`` within this long of the last one is not needed:
what existed then is frozen already."""

_freezes = 0
_last_freeze = -math.inf
_freeze_lock = threading.Lock()


def freeze_heap(*, if_not_recent: bool = False, collect_young: bool = False) -> bool:
    """Move every object the cyclic collector tracks into its permanent generation, so full
    collections stop walking the snapshot (and the declarations, and the application's own
    long-lived objects): thousands of compiled features would otherwise cost each full
    collection tens of milliseconds, on every thread. False once MAX_FREEZES were done, or
    when ``if_not_recent`` and the last freeze was under RECENT_FREEZE_SECONDS ago.

    With ``collect_young``, young garbage is collected first, so it is not kept forever.
    The Follower asks for that only while few features were compiled since the last freeze:
    compiling thousands (a load, or their first use) leaves tens of thousands of long-lived
    objects in the young generations, which no collection was due for (first use frees
    about as much as it makes), and walking 41,869 of them held the interpreter for
    20-40 ms (and found no garbage). The freeze itself takes microseconds.
    """
    global _freezes, _last_freeze
    with _freeze_lock:
        now = time.monotonic()
        if _freezes >= MAX_FREEZES or (
            if_not_recent and now - _last_freeze < RECENT_FREEZE_SECONDS
        ):
            return False
        _freezes += 1
        _last_freeze = now
        if collect_young:
            gc.collect(1)
        gc.freeze()
        return True


INTERRUPT_AGAIN_SECONDS = 0.05
"""How often ``Follower.join`` cuts short a read the tail began after it was told to stop."""
EXPOSURE_ENTRIES_PER_WRITE = 20
"""Stream entries per round trip at most: behind a thread evaluating flat out, the writer
gets the interpreter only every switch interval (5 ms) or so, and each round trip needs it
twice; a whole backlog must fit in few of them."""


class Follower:
    """An App's background work on two daemon threads: the tail (full loads, the change
    log, epoch checks, re-seeding) and the writer (exposures, the catalog). Both shells use
    it: evaluations never wait for it, and neither does an event loop."""

    def __init__(
        self,
        core: AppCore,
        storage: FollowerStorage,
        publisher: CatalogPublisher,
        *,
        block_ms: int,
        reseed: bool,
        flush_interval: float,
        advanced: Callable[[], None],
        loaded: Callable[[], None],
        freeze_gc: bool = True,
        switch_interval: float | None = None,
    ) -> None:
        """``advanced()``: told after every step of the tail (waiters check the version);
        ``loaded()``: told after the first full load; ``switch_interval``: the interpreter's
        while the threads run (see lower_switch_interval; None: left alone)."""
        self.core = core
        self.storage = storage
        self.publisher = publisher
        self.block_ms = storage.block_ms(block_ms)
        self.reseed = reseed
        self.flush_interval = flush_interval
        self._advanced = advanced
        self._loaded = loaded
        self.freeze_gc = freeze_gc
        self.switch_interval = switch_interval
        self._frozen_compiles = CompiledFeature.compiles
        self._loading = False
        """The tail is applying a full load (the writer waits to publish the catalog)."""
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        self._stop = threading.Event()
        tail = Tail(self.core, block_ms=self.block_ms, reseed=self.reseed)
        self._threads = [
            threading.Thread(target=self._tail_loop, args=(tail,), name="feats-tail", daemon=True),
            threading.Thread(target=self._flush_loop, name="feats-exposures", daemon=True),
        ]
        if self.switch_interval is not None:
            lower_switch_interval(self, self.switch_interval)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Ask both threads to end, and cut a blocked read short."""
        restore_switch_interval(self)
        self._stop.set()
        self.core.exposures.wanted.set()
        self.storage.interrupt()

    def join(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) for both threads; True once they have ended.

        A read the tail began just after ``stop()`` cut the last one short (it was between
        two reads) would block for its whole BLOCK: while a thread lives, it is cut short
        again every INTERRUPT_AGAIN_SECONDS.
        """
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
                thread.join(min(left, INTERRUPT_AGAIN_SECONDS))
                if thread.is_alive():
                    self.storage.interrupt()
        return not self.running

    def _tail_loop(self, tail: Tail) -> None:
        storage, stop = self.storage, self._stop
        while not stop.is_set():
            action = tail.next_action()
            try:
                if isinstance(action, Read):
                    tail.on_entries(storage.read(action.after, action.block_ms), Breather())
                elif isinstance(action, Load):
                    self._loading = True
                    if self.freeze_gc:
                        # First: what exists now (declarations, the application's own
                        # objects) is long-lived, and the load's thousands of allocations
                        # must not make a full collection walk it.
                        freeze_heap(if_not_recent=True, collect_young=self._few_compiled())
                    epoch = self.core.epoch
                    tail.on_loaded(storage.load(), Breather())
                    if self.core.epoch != epoch:
                        self.publisher.forget()
                    self._loaded()
                    if self.freeze_gc:
                        freeze_heap(collect_young=self._few_compiled())
                        self._frozen_compiles = CompiledFeature.compiles
                    self._loading = False
                elif isinstance(action, CheckEpoch):
                    if action.head:
                        tail.on_epoch(*storage.epoch_and_head())
                    else:
                        tail.on_epoch(storage.get_epoch())
                elif isinstance(action, Reseed):
                    tail.on_reseeded(storage.reseed(action.items, action.epoch))
                elif isinstance(action, Wait):
                    stop.wait(action.seconds)
                    tail.on_waited()
            except Exception as error:
                self._loading = False
                if stop.is_set():
                    break
                tail.on_error(error)
            self._advanced()

    def publish(self) -> None:
        """Publish the declarations for tools that lack the code (the CLI); never fatal."""
        publisher = self.publisher
        now = time.time()
        if not publisher.due(now):
            return
        try:
            identity, document = publisher.entry(Breather())
            if publisher.needs_entry(identity) and not self.storage.catalog_has(identity):
                self.storage.publish_catalog(catalog_fields(identity, document))
            else:
                self.storage.publish_catalog(catalog_fields(identity))
        except Exception as error:
            publisher.failed(now)
            logger.warning("feats: could not publish the catalog: %s", error)
        else:
            publisher.published(now, identity)

    def flush(self) -> None:
        """Write the buffered exposures; what cannot be written goes back to the buffer."""
        buffer = self.core.exposures
        while batches := buffer.take_batches(EXPOSURE_ENTRIES_PER_WRITE):
            try:
                self.storage.add_exposures([encode_exposures(batch) for batch in batches])
            except Exception:
                buffer.unsent(batches)
                return
            buffer.sent(batches)

    def close(self) -> None:
        """After join(): write the exposures still buffered, then close every connection
        the storage holds, among them any that a write the writer thread was making as
        stop() cut them had to open anew."""
        self.flush()
        self.storage.interrupt()

    def _flush_loop(self) -> None:
        """The writer: exposures, and the catalog once something was loaded (off the tail,
        whose connection and time belong to following changes), never while a load is
        applied: the two would take turns with the event loop for the interpreter."""
        stop, wanted = self._stop, self.core.exposures.wanted
        while True:
            wanted.wait(self.flush_interval)
            wanted.clear()
            if stop.is_set():
                return
            self.flush()
            if self.core.reloads and not self._loading:
                self.publish()
            self._settle_heap()

    def _few_compiled(self) -> bool:
        """Few features compiled since the last freeze: the young generations are small."""
        return CompiledFeature.compiles - self._frozen_compiles < FREEZE_AFTER_COMPILES

    def _settle_heap(self) -> None:
        """Freeze the heap again once many features were compiled (on first use) and
        compiling has settled: they too stay out of full collections."""
        compiles = CompiledFeature.compiles
        if (
            self.freeze_gc
            and compiles - self._frozen_compiles >= FREEZE_AFTER_COMPILES
            and time.monotonic() - CompiledFeature.compiled_at >= FREEZE_SETTLED_SECONDS
        ):
            freeze_heap()
            self._frozen_compiles = compiles

    def after_fork(self) -> None:
        """In a forked child: no thread survived; locks another thread held are reset."""
        self._threads = []
        restore_switch_interval(self)
        self.core.lock = threading.RLock()
        self.storage.after_fork()
