"""Sharing the interpreter: how long work on a background thread (a full load of thousands of
features) may hold it before other threads, an App's event loop first, run, and how soon a
background thread gets it back from a busy one."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "BREATH_SECONDS",
    "PYTHON_SWITCH_INTERVAL",
    "SWITCH_INTERVAL",
    "Breathe",
    "Breather",
    "lower_switch_interval",
    "release",
    "restore_switch_interval",
    "still",
]

Breathe = Callable[[], None]
"""Called now and then during long work, so other threads can run: an App's event loop must
never wait long for it."""

BREATH_SECONDS = 0.0005
"""Longest stretch of work a Breather lets pass before it lets other threads run."""


def still() -> None:
    """The Breathe of work that need not let anything else run (tests, one-shot tools)."""


class Breather:
    """A Breathe that lets other threads run at least every BREATH_SECONDS of work.

    The interpreter would switch threads only every 5 ms (sys.getswitchinterval), and an
    event loop behind two background threads taking turns can wait several of those: the
    loop would miss its deadlines while 10,000 features are applied. A real sleep, however
    short, hands the interpreter over.
    """

    def __init__(self) -> None:
        self._since = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._since >= BREATH_SECONDS:
            time.sleep(0.0001)
            self._since = time.perf_counter()


def release(objects: list[Any], breathe: Breathe) -> None:
    """Let go of ``objects`` one at a time between breaths, emptying the list.

    Dropping the last reference to a snapshot of 10,000 compiled features frees them all in
    one call, which holds the interpreter for over 10 ms; one at a time, it never does.
    """
    for count in range(len(objects)):
        if not count % 64:
            breathe()
        objects.pop()


PYTHON_SWITCH_INTERVAL = 0.005
"""The interpreter's own thread switch interval (sys.getswitchinterval), until changed."""
SWITCH_INTERVAL = 0.002
"""The switch interval an asyncio App runs with, unless told otherwise (see
lower_switch_interval)."""

_holders: set[int] = set()
_lowered_to: float | None = None
_holders_lock = threading.Lock()


def lower_switch_interval(owner: object, interval: float) -> None:
    """Run with the interpreter's thread switch interval at ``interval`` while ``owner``
    (an App's Follower) runs, if nothing else has changed it from Python's default.

    A thread waiting for the interpreter behind one that computes (an event loop busy with
    requests) gets it only once a whole switch interval has passed, and again after each
    moment the busy thread let go of it and took it back first: at Python's 5 ms, a change
    reached such an App in 5.3 ms at the median and over 10 ms for one in ten. The tail
    needs the interpreter for well under a millisecond per change; at 2 ms the same load
    saw 2.3 ms and 4.2 ms at p99. Threads that compute side by side take turns more often
    (every 2 ms rather than 5): the cost, where any. The first owner sets it; the last one
    to end puts Python's default back, if the interval is still the one it set.
    """
    global _lowered_to
    with _holders_lock:
        if not _holders and math.isclose(sys.getswitchinterval(), PYTHON_SWITCH_INTERVAL):
            sys.setswitchinterval(interval)
            _lowered_to = sys.getswitchinterval()
        _holders.add(id(owner))


def restore_switch_interval(owner: object) -> None:
    """``owner`` has ended: the last one to end puts Python's switch interval back."""
    global _lowered_to
    with _holders_lock:
        _holders.discard(id(owner))
        if _holders or _lowered_to is None:
            return
        if math.isclose(sys.getswitchinterval(), _lowered_to):
            sys.setswitchinterval(PYTHON_SWITCH_INTERVAL)
        _lowered_to = None
