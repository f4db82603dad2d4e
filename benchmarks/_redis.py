"""A private redis-server for the suite, so runs never touch (or are slowed by) a shared one."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

__all__ = ["RedisTarget", "delete_namespace", "fresh_namespace", "redis_target"]

_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class RedisTarget:
    url: str
    # "own redis-server 7.2.4 on 127.0.0.1:PORT" or "external redis://..."
    description: str
    version: str


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_version(url: str) -> str:
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        info = client.info("server")
        return str(info.get("redis_version", "?"))
    finally:
        client.close()


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@contextlib.contextmanager
def _own_server(binary: str) -> Iterator[RedisTarget]:
    directory = Path(tempfile.mkdtemp(prefix="feats-bench-redis-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(5):
            port = _free_port()
            process = subprocess.Popen(
                [
                    binary,
                    "--bind",
                    _LOOPBACK,
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(directory),
                    "--logfile",
                    str(directory / "redis.log"),
                    # 100 Apps each hold a tail and a command connection.
                    "--maxclients",
                    "10000",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            url = f"redis://{_LOOPBACK}:{port}/0"
            deadline = time.monotonic() + 10
            while process.poll() is None and time.monotonic() < deadline:
                if _answers(url):
                    break
                time.sleep(0.02)
            if process.poll() is None and _answers(url):
                version = _server_version(url)
                yield RedisTarget(url, f"own redis-server {version} on {_LOOPBACK}:{port}", version)
                return
            process.kill()
            process.wait(timeout=10)
            process = None
        raise RuntimeError("redis-server did not come up on a free loopback port")
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def redis_target(url: str | None) -> Iterator[RedisTarget | None]:
    """``url`` if given; else a redis-server of our own on a free port; else None (no Redis)."""
    if url is not None:
        if not _answers(url):
            raise RuntimeError(f"no Redis answers at {url}")
        version = _server_version(url)
        yield RedisTarget(url, f"external Redis {version} at {url}", version)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with _own_server(binary) as target:
        yield target


def fresh_namespace(label: str) -> str:
    return f"bench-{label}-{uuid.uuid4().hex[:10]}"


def delete_namespace(url: str, namespace: str) -> None:
    """Remove every key of ``namespace`` (only ours: a shared Redis stays as it was)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"feats:{{{namespace}}}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()
