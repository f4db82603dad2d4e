"""Shared plumbing for the test servers: loopback port reservation, deadline polling."""

from __future__ import annotations

import asyncio
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import redis

LOOPBACK = "127.0.0.1"
POLL_INTERVAL = 0.05

# Ports handed out by this process stay reserved until released, so a server that is down
# between kill() and restart() cannot have its port taken by another helper meanwhile.
_reserved: set[int] = set()
_reserved_lock = threading.Lock()
# The system redis must never be touched, even by accident.
_NEVER = frozenset({6379})

T = TypeVar("T")


class ServerError(RuntimeError):
    """A test server failed for good (exited, bad config): polling for it again is pointless."""


class _Spawner:
    """One long-lived thread that starts every server process.

    Children get SIGKILL when the thread that forked them dies (PR_SET_PDEATHSIG through
    ``setpriv``). Forking from this thread, which lives as long as the interpreter, ties the
    servers to the test process itself: even a SIGKILLed pytest leaves no redis behind, while
    a short-lived worker thread (asyncio.to_thread) never takes its servers down with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            job, future = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(job())
                except BaseException as exc:
                    future.set_exception(exc)

    def call(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="feats-test-spawner", daemon=True
                )
                self._thread.start()
        future: Future[T] = Future()
        self._jobs.put((job, future))
        return future.result()


_spawner = _Spawner()
_SETPRIV = shutil.which("setpriv")


def spawn(argv: Sequence[str], *, cwd: Path, output: Path) -> subprocess.Popen[bytes]:
    """Start a server process that cannot outlive this Python process."""
    prefix = [_SETPRIV, "--pdeathsig", "KILL"] if _SETPRIV else []

    def start() -> subprocess.Popen[bytes]:
        with open(output, "ab") as out:
            return subprocess.Popen(
                [*prefix, *argv],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    return _spawner.call(start)


def reserve_port() -> int:
    """Pick a free loopback TCP port and reserve it for this process until released."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        with _reserved_lock:
            if port in _reserved or port in _NEVER:
                continue
            _reserved.add(port)
            return port
    raise RuntimeError("could not find a free loopback port")


def claim_port(port: int) -> bool:
    """Reserve a port bound by the caller itself; False if another helper reserved it."""
    with _reserved_lock:
        if port in _reserved or port in _NEVER:
            return False
        _reserved.add(port)
        return True


def release_port(port: int) -> None:
    with _reserved_lock:
        _reserved.discard(port)


def conf_quote(value: object) -> str:
    """Quote a value (typically a path) for redis.conf."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (redis.RedisError, OSError),
) -> T:
    """Call ``probe`` until it returns something other than None or the deadline passes.

    Connection-level exceptions (``retry_on``) count as "not yet"; anything else, ServerError
    included, propagates at once. The last retried error is chained to the TimeoutError so a
    failing setup says why it never became ready.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
        except ServerError:
            raise
        except retry_on as exc:
            last_error = exc
        else:
            if result is not None:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}") from (
                last_error
            )
        time.sleep(interval)


async def async_wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = POLL_INTERVAL,
    retry_on: tuple[type[BaseException], ...] = (redis.RedisError, OSError),
) -> T:
    """wait_until for async tests: awaits ``probe`` and sleeps without blocking the loop."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = await probe()
        except ServerError:
            raise
        except retry_on as exc:
            last_error = exc
        else:
            if result is not None:
                return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}{detail}") from (
                last_error
            )
        await asyncio.sleep(interval)


def as_str(value: object) -> str:
    """Decode a RESP bulk string whatever the client's decode_responses setting."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string reply, got {value!r}")


def as_int(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer reply, got {value!r}")
    if isinstance(value, int):
        return value
    return int(as_str(value))


def as_list(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(f"expected an array reply, got {value!r}")


def command(client: redis.Redis, *args: str | int | float | bytes) -> object:
    """Run a raw command; redis-py leaves execute_command untyped, this pins it to ``object``."""
    execute: Callable[..., object] = client.execute_command
    return execute(*args)
