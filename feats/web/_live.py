"""Live pages: one watch of the change log per process, fanned out to every open page.

``Admin.watch`` holds a connection of the host's Redis client while it blocks, so a web
process runs one (per event loop), however many pages are open: started by the first page
that subscribes (never at start-up: a mounted app's lifespan may not run) and stopped when
the last one leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

from feats import HistoryEntry
from feats.aio import Admin

__all__ = ["ChangeHub", "event_data"]

logger = logging.getLogger("feats.web")

QUEUE_SIZE = 100
"""Changes kept for a page that reads slowly; past that its oldest are dropped."""
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)
WATCH_SPAN_SECONDS = 15.0


def event_data(entry: HistoryEntry) -> dict[str, Any]:
    change = entry.change
    return {
        "feature": change.feature,
        "version": change.version,
        "author": change.author,
        "reason": change.reason,
        "time": change.time.timestamp(),
        "diff": [str(line) for line in entry.diff],
    }


class _LoopHub:
    """The subscribers and the watch task of one event loop."""

    def __init__(self, admin: Admin, block_ms: int) -> None:
        self.admin = admin
        self.block_ms = block_ms
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        me = asyncio.current_task()
        failures = 0
        position: str | None = None
        # Watch in bounded spans: a cancellation that redis-py swallows (Python 3.11's
        # wait_for can) still ends a task nobody listens to at the end of its span.
        while self.queues and self.task is me:
            try:
                if position is None:
                    # Fix the starting point before saying "ready": a change written after
                    # that is delivered, whenever the watch gets to read it.
                    position = await self.admin.head()
                self.ready.set()
                async for entry in self.admin.watch(
                    after=position, block_ms=self.block_ms, timeout=WATCH_SPAN_SECONDS
                ):
                    failures = 0
                    position = entry.change.version
                    self.publish(event_data(entry))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.publish({"error": f"live updates paused: {error}"})
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                logger.warning("feats.web: watching changes failed (%s); retrying", error)
                await asyncio.sleep(delay)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self.queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def stop(self) -> None:
        task, self.task = self.task, None
        self.ready = asyncio.Event()
        if task is not None:
            task.cancel()


class ChangeHub:
    """Hands every subscriber each change as it is written (``subscribe()``)."""

    def __init__(self, admin: Admin, *, block_ms: int = 1_000) -> None:
        self.admin = admin
        self.block_ms = block_ms
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopHub] = (
            weakref.WeakKeyDictionary()
        )

    def _hub(self) -> _LoopHub:
        loop = asyncio.get_running_loop()
        hub = self._hubs.get(loop)
        if hub is None:
            hub = self._hubs[loop] = _LoopHub(self.admin, self.block_ms)
        return hub

    def subscribers(self) -> int:
        hub = self._hubs.get(asyncio.get_running_loop())
        return 0 if hub is None else len(hub.queues)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        hub = self._hub()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        hub.queues.add(queue)
        if hub.task is None or hub.task.done():
            hub.task = asyncio.create_task(hub.run(), name="feats-web-watch")
        try:
            yield queue
        finally:
            hub.queues.discard(queue)
            if not hub.queues:
                hub.stop()

    async def wait_ready(self, timeout: float) -> bool:
        """Whether the watch is reading the change log (tests wait on this, not on time)."""
        hub = self._hub()
        try:
            await asyncio.wait_for(hub.ready.wait(), timeout)
        except TimeoutError:
            return False
        return True


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event; JSON has no raw newlines, so one data line is enough."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()
