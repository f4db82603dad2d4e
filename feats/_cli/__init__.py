"""The ``feats`` command line: operate features with only the Redis URL."""

from ._commands import cli, main
from ._context import Exit

__all__ = ["Exit", "cli", "main"]
