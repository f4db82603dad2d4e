"""What storage hands the core, not yet trusted: raw entries and loads, and how versions order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ZERO_VERSION",
    "Loaded",
    "Problem",
    "RawEntry",
    "parse_version",
    "version_at_least",
    "version_position",
]

ZERO_VERSION = "0-0"
"""Before the first change: every version is after it."""


def parse_version(version: str) -> tuple[int, int]:
    """Stream ids order versions across a namespace: ``"<ms>-<seq>"``; ValueError otherwise."""
    ms, _, seq = version.partition("-")
    return int(ms), int(seq or 0)


def version_at_least(version: str, wanted: str) -> bool:
    return parse_version(version) >= parse_version(wanted)


def version_position(version: str) -> tuple[int, int]:
    """parse_version for text read from storage: a malformed version sorts first."""
    try:
        return parse_version(version)
    except ValueError:
        return (-1, -1)


@dataclass(frozen=True)
class RawEntry:
    """One stream entry as storage returns it: an id and its fields, not yet trusted.

    A field is text or the bytes Redis sent: the codec reads records strictly; ``text``
    gives names and ids, which need no more than that.
    """

    id: str
    fields: Mapping[str, str | bytes]

    def text(self, name: str, default: str = "") -> str:
        """A field as text (bytes that are not UTF-8 replaced): names, versions, counts."""
        value = self.fields.get(name)
        if value is None:
            return default
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value

    def size(self) -> int:
        """Characters (or bytes) in its fields: what an oversized entry is judged by."""
        return sum(len(key) + len(value) for key, value in self.fields.items())


@dataclass(frozen=True)
class Loaded:
    """Everything a full load returns, read atomically: current records, log head, epoch.

    ``records`` maps a feature to its version and its record as stored (text or bytes).
    """

    records: Mapping[str, tuple[str, str | bytes]]
    head: str
    epoch: str | None


@dataclass(frozen=True)
class Problem:
    """Something read from storage that was skipped, and why."""

    where: str
    message: str
    time: float
