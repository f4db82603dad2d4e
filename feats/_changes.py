"""Admin decisions without I/O: what a write stores, what history and rollback mean."""

from __future__ import annotations

import getpass
import time
from typing import TypeAlias

from ._codec import Record, decode_record, encode_record
from ._errors import CodecError, NotFoundError
from ._handles import FeatureHandleBase
from ._layout import UNREADABLE
from ._state import Change, FeatureState
from ._stored import version_position

__all__ = [
    "MAX_WRITE_ATTEMPTS",
    "FeatureRef",
    "decode_current",
    "default_author",
    "feature_name",
    "find_change",
    "history_changes",
    "new_record",
    "write_expectation",
]

MAX_WRITE_ATTEMPTS = 20
"""Writes without expected_version retry their compare-and-set this often under contention."""


FeatureRef: TypeAlias = FeatureHandleBase | str
"""What the admin takes wherever it names a feature: its handle, or its name."""


def feature_name(feature: FeatureRef) -> str:
    """Accept a feature handle or its name."""
    if isinstance(feature, str):
        return feature
    name = getattr(feature, "name", None)
    if isinstance(name, str):
        return name
    raise TypeError(f"expected a feature or its name, got {feature!r}")


def write_expectation(version: str | None) -> str:
    """What the compare-and-set of a write planned on ``version`` (as read) expects: "" for
    never configured, UNREADABLE for a stored value that is not a version (so the write can
    repair it), else the version itself."""
    if not version:
        return ""
    return UNREADABLE if version_position(version) == (-1, -1) else version


def default_author() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def new_record(
    feature: str, state: FeatureState | None, *, author: str, reason: str
) -> tuple[Record, str]:
    """The record a write stores for a planned (validated and resolved) ``state``, encoded."""
    record = Record(feature, state, author, reason, time.time())
    return record, encode_record(record)


def decode_current(
    current: tuple[str, str | bytes] | None, *, overwriting: bool = False
) -> tuple[str | None, Record | None]:
    """The stored version and record; CodecError if the record is unreadable.

    ``overwriting``: an unreadable record counts as no configuration, so a write can
    replace garbage that got into the store (its version still guards the write).
    """
    if current is None:
        return None, None
    version, raw = current
    try:
        return version, decode_record(raw)
    except CodecError:
        if overwriting:
            return version, None
        raise


def history_changes(items: list[tuple[str, str]]) -> list[Change]:
    """Decoded history, oldest first; unreadable entries are left out, not fatal."""
    changes = []
    for version, raw in items:
        try:
            changes.append(decode_record(raw).change(version))
        except CodecError:
            continue
    return changes


def find_change(feature: str, changes: list[Change], version: str) -> Change:
    for change in changes:
        if change.version == version:
            return change
    known = ", ".join(change.version for change in changes[-5:]) or "none"
    raise NotFoundError(f"{feature} has no version {version!r} in its history (latest: {known})")
