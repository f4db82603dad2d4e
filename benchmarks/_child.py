"""Measured processes: a fresh interpreter per child, spoken to in lines of JSON on its pipes.

The parent writes commands to the child's stdin and reads one JSON document per line from
its stdout; a reader thread queues the lines, so every wait is bounded. The child's stderr
goes to a temporary file whose tail explains a child that died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from benchmarks._profile import child_command, child_environment

__all__ = ["Child", "ChildError", "answer", "child_env", "command", "repo_root"]

_REPO = Path(__file__).resolve().parent.parent
_EOF = object()


class ChildError(RuntimeError):
    """A child that died, said something unexpected or did not answer in time."""


def repo_root() -> Path:
    return _REPO


def child_env(name: str) -> dict[str, str]:
    """The environment of a child: this checkout importable, and the profiling settings."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_REPO), environment.get("PYTHONPATH")])
    )
    return child_environment(name, environment)


def command(module: str, arguments: Sequence[str], name: str) -> list[str]:
    """``python -m module arguments``, under py-spy when this run profiles with it."""
    return child_command([sys.executable, "-m", module, *arguments], name)


class Child:
    """One child process; ``name`` says what it measures (and names its profile)."""

    def __init__(self, module: str, arguments: Sequence[str], name: str) -> None:
        self.name = name
        # Kept open for the child's life; close() closes it.
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.process = subprocess.Popen(
            command(module, arguments, name),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=child_env(name),
            cwd=str(_REPO),
        )
        self._lines: queue.Queue[object] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"bench-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self._stdout
        for line in stdout:
            self._lines.put(line)
        self._lines.put(_EOF)

    @property
    def _stdout(self) -> IO[str]:
        assert self.process.stdout is not None
        return self.process.stdout

    def _why(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read().strip().splitlines()[-4:]
        code = self.process.poll()
        said = " | ".join(tail) if tail else "nothing on stderr"
        return f"{self.name} (exit {code}): {said}"

    def send(self, line: str) -> None:
        stdin = self.process.stdin
        if stdin is None:
            raise ChildError(f"{self.name}: no stdin")
        try:
            stdin.write(line.rstrip("\n") + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError) as error:
            raise ChildError(f"could not write to {self._why()}") from error

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next JSON line the child printed (other lines are skipped)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise ChildError(f"no answer within {timeout:g}s from {self._why()}") from None
            if line is _EOF:
                self.process.wait(timeout=30)
                raise ChildError(f"ended early: {self._why()}")
            assert isinstance(line, str)
            text = line.strip()
            if not text.startswith("{"):
                continue
            document: dict[str, Any] = json.loads(text)
            return document

    async def areceive(self, timeout: float) -> dict[str, Any]:
        return await asyncio.to_thread(self.receive, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Wait for the child to end by itself (it ends on EOF), else kill it."""
        stdin = self.process.stdin
        if stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        self._stdout.close()
        self._stderr.close()


def answer(document: dict[str, Any]) -> None:
    """In a child: one JSON line to the parent."""
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()
