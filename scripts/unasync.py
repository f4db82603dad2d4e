"""Generate the sync shell's storages and admin from the asyncio ones (feats/aio/ is the source).

    python scripts/unasync.py           write feats/_storage.py and feats/_admin.py
    python scripts/unasync.py --check   exit 1 if either differs from what it would write

The sync twins are the asyncio code with its awaits taken out: a fixed list of word-level
replacements in the style of httpcore's scripts/unasync.py. What truly differs between the
shells is not here but in feats/aio/_io.py and feats/_io.py, which share their names.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FILES = {
    ROOT / "feats" / "aio" / "_storage.py": ROOT / "feats" / "_storage.py",
    ROOT / "feats" / "aio" / "_admin.py": ROOT / "feats" / "_admin.py",
}

SUBSTITUTIONS = [
    # Words, in order; each is a regular expression matched on word boundaries.
    (r"async def ", "def "),
    (r"async with ", "with "),
    (r"async for ", "for "),
    (r"await ", ""),
    (r"AsyncIterator", "Iterator"),
    (r"AsyncIterable", "Iterable"),
    (r"from \.\.", "from ."),
    (r"\bsync\.", ""),
    (r"redis\.asyncio", "redis-py"),
    (r"asyncio shell", "sync shell"),
    (r"asyncio App", "sync App"),
    (r"The asyncio admin", "The sync admin"),
    (r"The asyncio storages", "The sync storages"),
]
MARKER = "  # unasync: "
"""A line ending in ``# unasync: CODE`` becomes CODE in the sync twin (same indentation);
``# unasync: remove`` drops it."""
HEADER = "# Generated from {source} by scripts/unasync.py: edit that file, then run the script.\n"


def _sync_line(line: str) -> str:
    if MARKER not in line:
        return line
    code = line.split(MARKER, 1)[1].strip()
    if code == "remove":
        return ""
    indent = line[: len(line) - len(line.lstrip())]
    return f"{indent}{code}\n"


def unasync_text(text: str) -> str:
    """The sync twin of asyncio source text, before formatting."""
    text = "".join(_sync_line(line) for line in text.splitlines(keepends=True))
    for pattern, replacement in SUBSTITUTIONS:
        text = re.sub(pattern, replacement, text)
    return text


def unasync(source: Path) -> str:
    relative = source.relative_to(ROOT).as_posix()
    return _formatted(HEADER.format(source=relative) + unasync_text(source.read_text()))


def _formatted(text: str) -> str:
    """The text as ruff sorts its imports and formats it (relative imports lose a dot, and
    awaits taken out change where lines break)."""
    for command in (["check", "--select", "I", "--fix", "--exit-zero"], ["format"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--quiet", "--stdin-filename", "gen.py", "-"],
            input=text,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"ruff could not format the generated code:\n{result.stderr}")
        text = result.stdout
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file differs")
    args = parser.parse_args(argv)
    stale = []
    for source, target in FILES.items():
        generated = unasync(source)
        current = target.read_text() if target.exists() else ""
        if generated == current:
            continue
        if args.check:
            stale.append(target)
            diff = difflib.unified_diff(
                generated.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=f"generated from {source.relative_to(ROOT)}",
                tofile=str(target.relative_to(ROOT)),
            )
            sys.stderr.writelines(list(diff)[:60])
        else:
            target.write_text(generated)
            print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        names = ", ".join(str(path.relative_to(ROOT)) for path in stale)
        print(
            f"{names}: not what scripts/unasync.py generates from feats/aio/; edit the "
            "asyncio source and run `python scripts/unasync.py`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
