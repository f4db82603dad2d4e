"""--profile: where the time of one section goes, under cProfile or py-spy, next to the results.

The parent sets two environment variables for the section it profiles; every measured
process of that section (the parent itself, and each child the suite starts) then writes
``<out>/profiles/<name>.prof`` and ``<name>.txt`` (cProfile: every thread, merged) or
``<name>.svg`` (py-spy: a flame graph of every thread, sampled without stopping the
process). Profiling slows what it watches: a profiled run's timings are not results.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "TOOLS",
    "child_command",
    "child_environment",
    "clear",
    "disable",
    "enable",
    "profiled",
    "py_spy",
    "written",
]

TOOLS: Final = ("cprofile", "py-spy")
Tool = Literal["cprofile", "py-spy"]

_FOLDER = "FEATS_BENCH_PROFILE_DIR"
_TOOL = "FEATS_BENCH_PROFILE_TOOL"
_NAME = "FEATS_BENCH_PROFILE_NAME"
_RATE = "250"
_SUFFIXES = (".prof", ".txt", ".svg")


def py_spy() -> str | None:
    """The py-spy executable beside this interpreter, else on PATH (None: not installed)."""
    beside = Path(sys.executable).with_name("py-spy")
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def enable(folder: Path, tool: Tool) -> None:
    """Profile from now on (this process and the children it starts) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[_FOLDER] = str(folder)
    os.environ[_TOOL] = tool


def clear(folder: Path) -> None:
    """Remove the profiles an earlier run left in ``folder`` (only profile files)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.suffix in _SUFFIXES and path.is_file():
                path.unlink()


def disable() -> None:
    for name in (_FOLDER, _TOOL, _NAME):
        os.environ.pop(name, None)


def _active() -> tuple[Path, Tool] | None:
    folder = os.environ.get(_FOLDER)
    tool = os.environ.get(_TOOL)
    if not folder or tool not in TOOLS:
        return None
    return Path(folder), "py-spy" if tool == "py-spy" else "cprofile"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "profile"


def child_environment(name: str, environment: dict[str, str]) -> dict[str, str]:
    """``environment`` for a child called ``name`` (what its profile file is called)."""
    if _active() is not None:
        environment = {**environment, _NAME: _safe(name)}
    return environment


def child_command(command: Sequence[str], name: str) -> list[str]:
    """``command``, run under py-spy when this run profiles with it."""
    active = _active()
    spy = py_spy()
    if active is None or active[1] != "py-spy" or spy is None:
        return list(command)
    output = active[0] / f"{_safe(name)}.svg"
    return [
        spy,
        "record",
        "--threads",
        "--nonblocking",
        "--rate",
        _RATE,
        "--output",
        str(output),
        "--",
        *command,
    ]


def _write_text(profile: Path, path: Path) -> None:
    buffer = io.StringIO()
    stats = pstats.Stats(str(profile), stream=buffer)
    buffer.write("# by cumulative time (every thread merged)\n")
    stats.sort_stats("cumulative").print_stats(60)
    buffer.write("\n# by own time\n")
    stats.sort_stats("tottime").print_stats(40)
    path.write_text(buffer.getvalue(), encoding="utf-8")


@contextlib.contextmanager
def _cprofile(folder: Path, name: str) -> Iterator[None]:
    """cProfile on this thread and on every thread started meanwhile, merged at the end."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(*_: Any) -> None:
        # The first profiler event of a new thread: from here on a profiler of its own
        # replaces this hook for that thread.
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(start_in_thread)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)
        with lock:
            taken = list(profiles)
        stats = pstats.Stats(taken[0])
        for profile in taken[1:]:
            with contextlib.suppress(TypeError, ValueError):  # a thread that never ran code
                stats.add(profile)
        stats.dump_stats(str(folder / f"{name}.prof"))
        _write_text(folder / f"{name}.prof", folder / f"{name}.txt")


@contextlib.contextmanager
def _attach_py_spy(folder: Path, name: str) -> Iterator[None]:
    """py-spy attached to this very process for the duration (as root, or with ptrace)."""
    spy = py_spy()
    if spy is None:
        yield
        return
    process = subprocess.Popen(
        [
            spy,
            "record",
            "--threads",
            "--nonblocking",
            "--rate",
            _RATE,
            "--output",
            str(folder / f"{name}.svg"),
            "--pid",
            str(os.getpid()),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        # SIGINT makes py-spy stop sampling and write what it has.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def profiled(name: str | None = None) -> Iterator[None]:
    """Profile the block if this run profiles; ``name`` defaults to what the parent called
    this child. A child started under py-spy is sampled from outside: nothing to do here."""
    active = _active()
    name = name or os.environ.get(_NAME)
    if active is None or name is None:
        yield
        return
    folder, tool = active
    if tool == "py-spy":
        if os.environ.get(_NAME) == name:  # a child: py-spy started it
            yield
            return
        with _attach_py_spy(folder, _safe(name)):
            yield
        return
    with _cprofile(folder, _safe(name)):
        yield


def written(folder: Path) -> list[str]:
    """The profile files in ``folder``, relative to its parent (the results folder)."""
    if not folder.is_dir():
        return []
    return sorted(
        str(path.relative_to(folder.parent))
        for path in folder.iterdir()
        if path.suffix in _SUFFIXES
    )
