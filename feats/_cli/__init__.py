"""The ``feats`` command line: operate features with only the Redis URL.

click and rich come with the ``cli`` extra (``pip install 'feats[cli]'``). Importing this
package needs neither: ``main`` says how to install them when they are missing, and the
shop model in ``_shop`` (the demo's, the examples' and the tests') is plain feats.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._exit import Exit

if TYPE_CHECKING:
    from ._commands import cli

__all__ = ["Exit", "cli", "main"]

CLI_PACKAGES = frozenset({"click", "rich"})
"""What the ``cli`` extra installs."""


def main(argv: list[str] | None = None) -> None:
    """The console script: ``feats`` (and ``python -m feats``)."""
    try:
        from ._commands import main as run
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in CLI_PACKAGES:
            raise
        sys.stderr.write(
            f"error: the feats command needs {error.name}, which comes with the cli extra: "
            "pip install 'feats[cli]'\n"
        )
        raise SystemExit(int(Exit.ERROR)) from None
    run(argv)


def __getattr__(name: str) -> Any:
    if name == "cli":
        from ._commands import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
