"""Timing, percentiles, resident memory and answer-share checks shared by the sections."""

from __future__ import annotations

import collections
import gc
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from benchmarks._users import User
from benchmarks.check_peers import expected_shares

__all__ = [
    "gc_paused",
    "loop_overhead_ns",
    "percentile",
    "quantiles",
    "rss_bytes",
    "sanity",
    "shares",
    "time_async",
    "time_async_ns",
    "time_sync",
    "time_sync_ns",
]


@contextmanager
def gc_paused() -> Iterator[None]:
    """What timeit does: no collector pauses inside a timed pass."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def loop_overhead_ns(users: Sequence[User], repeat: int) -> float:
    """Median ns per iteration of the bare loop the timed passes run in (subtracted from them)."""
    runs = []
    with gc_paused():
        for _ in range(repeat):
            started = time.perf_counter_ns()
            for _user in users:
                pass
            runs.append((time.perf_counter_ns() - started) / len(users))
    return statistics.median(runs)


def time_sync_ns(fn: Callable[[User], Any], users: Sequence[User]) -> int:
    """ns to call ``fn`` once per user (the caller pauses the collector)."""
    started = time.perf_counter_ns()
    for user in users:
        fn(user)
    return time.perf_counter_ns() - started


async def time_async_ns(fn: Callable[[User], Awaitable[Any]], users: Sequence[User]) -> int:
    """ns to await ``fn`` once per user, back to back inside the running coroutine."""
    started = time.perf_counter_ns()
    for user in users:
        await fn(user)
    return time.perf_counter_ns() - started


def time_sync(fn: Callable[[User], Any], users: Sequence[User], repeat: int) -> list[float]:
    """ns per call for each of ``repeat`` passes over every user (loop overhead included)."""
    runs = []
    with gc_paused():
        for _ in range(repeat):
            started = time.perf_counter_ns()
            for user in users:
                fn(user)
            runs.append((time.perf_counter_ns() - started) / len(users))
    return runs


async def time_async(
    fn: Callable[[User], Awaitable[Any]],
    users: Sequence[User],
    repeat: int,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Like time_sync, awaiting every call inside one coroutine of the running loop.

    ``between`` runs untimed after each pass (the exposure writer drains there).
    """
    runs = []
    for _ in range(repeat):
        with gc_paused():
            started = time.perf_counter_ns()
            for user in users:
                await fn(user)
            runs.append((time.perf_counter_ns() - started) / len(users))
        if between is not None:
            await between()
    return runs


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in [0, 1]); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def quantiles(values: Sequence[float], points: int = 1001) -> list[float]:
    """Nearest-rank percentiles at ``points`` evenly spaced fractions from 0 to 1."""
    if not values:
        return []
    ordered = sorted(values)
    last = len(ordered) - 1
    return [
        ordered[min(last, max(0, math.ceil(step / (points - 1) * len(ordered)) - 1))]
        for step in range(points)
    ]


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def shares(answers: Sequence[str]) -> dict[str, float]:
    """Percent of answers per implementation, largest first."""
    counts = collections.Counter(answers)
    return {name: 100.0 * count / len(answers) for name, count in counts.most_common()}


def _tolerance(share: float, n: int) -> float:
    """Percentage points allowed off the configured share: 4.5 standard errors, at least 1."""
    p = min(max(share / 100.0, 0.0), 1.0)
    return max(1.0, 450.0 * math.sqrt(p * (1 - p) / max(n, 1)))


def sanity(
    scenario: str, users: Sequence[User], answers: Sequence[str]
) -> tuple[dict[str, float], list[str]]:
    """Shares of every implementation, and what looks wrong about them for this scenario.

    (b) is checked as configured: everyone in CA premium, the three-way rollout elsewhere.
    """
    found: list[str] = []
    overall = shares(answers)
    checked: Sequence[str] = answers
    if scenario == "b":
        canadian = [a for u, a in zip(users, answers, strict=True) if u.country == "CA"]
        if any(a != "premium" for a in canadian):
            found.append(f"CA premium {shares(canadian).get('premium', 0.0):.1f}%, not 100%")
        checked = [a for u, a in zip(users, answers, strict=True) if u.country != "CA"]
    got = shares(checked)
    want: Mapping[str, float] = expected_shares("d" if scenario == "d-off" else scenario)
    for name, share in want.items():
        if abs(got.get(name, 0.0) - share) > _tolerance(share, len(checked)):
            found.append(f"{name} {got.get(name, 0.0):.1f}% vs {share:g}%")
    unexpected = sorted(set(got) - set(want))
    if unexpected:
        found.append(f"unexpected answers {unexpected}")
    return overall, found
