"""Deterministic bucketing: the salted 64-bit hash and minimal-reassignment allocations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import xxhash

__all__ = [
    "BUCKETS",
    "Allocation",
    "allocate",
    "bucket",
    "bucket_counts",
    "derive_salt",
    "shares",
]

BUCKETS = 100_000
"""Every rollout and experiment splits its population into this many buckets."""

_SALT_MASK = (1 << 64) - 1

Allocation = tuple[tuple[str, int, int], ...]
"""Half-open bucket ranges ``(implementation, start, end)`` covering ``[0, BUCKETS)`` in order."""

_hash = xxhash.xxh3_64_intdigest


def bucket(salt: int, value: str) -> int:
    """The bucket of ``value`` under ``salt``: XXH3-64 of the UTF-8 value seeded by the salt.

    Pinned forever by golden vectors in the tests: changing it would move every user.
    """
    return int(_hash(value.encode(), seed=salt) % BUCKETS)


def derive_salt(*parts: str) -> int:
    """A stable 64-bit salt from names, so two features never share one by accident."""
    return int(_hash("\x1f".join(parts).encode(), seed=0x5EED_F3A7) & _SALT_MASK)


def bucket_counts(weights: Mapping[str, float]) -> dict[str, int]:
    """Split BUCKETS in proportion to ``weights`` (largest remainder, ties by declaration order)."""
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("weights must have a positive sum")
    exact = {name: weight * BUCKETS / total for name, weight in weights.items()}
    counts = {name: int(share) for name, share in exact.items()}
    missing = BUCKETS - sum(counts.values())
    order = sorted(exact, key=lambda name: counts[name] - exact[name])
    for name in order[:missing]:
        counts[name] += 1
    return counts


def allocate(weights: Mapping[str, float], previous: Allocation | None = None) -> Allocation:
    """Ranges for ``weights`` that move as few buckets as possible away from ``previous``.

    An implementation that shrinks gives up the end of its ranges, one that grows takes
    only freed buckets: raising 5% to 10% keeps every bucket of the first 5%.
    """
    targets = bucket_counts(weights)
    held: dict[str, list[tuple[int, int]]] = {name: [] for name in targets}
    free: list[tuple[int, int]] = []
    # Without a previous allocation every bucket starts free; "" is never an implementation.
    for name, start, end in previous or (("", 0, BUCKETS),):
        if name in held:
            held[name].append((start, end))
        else:
            free.append((start, end))
    for name, ranges in held.items():
        excess = sum(end - start for start, end in ranges) - targets[name]
        while excess > 0:
            start, end = ranges.pop()
            size = end - start
            if size > excess:
                ranges.append((start, end - excess))
                free.append((end - excess, end))
                excess = 0
            else:
                free.append((start, end))
                excess -= size
    free.sort()
    for name in targets:
        ranges = held[name]
        wanted = targets[name] - sum(end - start for start, end in ranges)
        while wanted > 0:
            start, end = free.pop(0)
            if end - start > wanted:
                free.insert(0, (start + wanted, end))
                end = start + wanted
            ranges.append((start, end))
            wanted -= end - start
    return _merge([(name, start, end) for name, rs in held.items() for start, end in rs])


def _merge(ranges: Sequence[tuple[str, int, int]]) -> Allocation:
    merged: list[tuple[str, int, int]] = []
    for name, start, end in sorted(ranges, key=lambda item: item[1]):
        if merged and merged[-1][0] == name and merged[-1][2] == start:
            merged[-1] = (name, merged[-1][1], end)
        elif end > start:
            merged.append((name, start, end))
    return tuple(merged)


def shares(allocation: Allocation) -> dict[str, float]:
    """The fraction of buckets each implementation holds."""
    totals: dict[str, int] = {}
    for name, start, end in allocation:
        totals[name] = totals.get(name, 0) + end - start
    return {name: count / BUCKETS for name, count in totals.items()}
