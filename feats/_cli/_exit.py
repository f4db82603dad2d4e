"""What ``feats`` exits with: scripts can rely on these codes."""

from __future__ import annotations

import enum

__all__ = ["Exit"]


class Exit(enum.IntEnum):
    """What ``feats`` exits with; scripts can rely on these."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_FOUND = 3
    INVALID = 4
    CONFLICT = 5
    UNREACHABLE = 6
    DECLINED = 7
    DRIFT = 8
