"""Breathing: how long work on a background thread (a full load of thousands of features)
may hold the interpreter before it lets other threads, an App's event loop first, run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["BREATH_SECONDS", "Breathe", "Breather", "release", "still"]

Breathe = Callable[[], None]
"""Called now and then during long work, so other threads can run: an App's event loop must
never wait long for it."""

BREATH_SECONDS = 0.001
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
