"""A real redis-server process on a free loopback port, with crash, restart and wipe controls."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from ._common import (
    LOOPBACK,
    ServerError,
    as_int,
    as_list,
    as_str,
    command,
    conf_quote,
    release_port,
    reserve_port,
    spawn,
    wait_until,
)
from .tls import TlsMaterial, make_tls_material

Persistence = Literal["none", "aof"]
TlsAuthClients = Literal["yes", "no", "optional"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def redis_server_available() -> bool:
    """True when a redis-server binary can be run (tests skip otherwise)."""
    return os.access(REDIS_SERVER, os.X_OK)


class _ProcessState:
    """Everything the finalizer needs, kept apart from the server so GC can still collect it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.popen: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    def kill(self) -> None:
        popen, self.popen = self.popen, None
        if popen is not None and popen.poll() is None:
            popen.kill()
        if popen is not None:
            popen.wait(timeout=10)

    def cleanup(self) -> None:
        self.kill()
        if self.port is not None:
            release_port(self.port)
            self.port = None
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer:
    """One redis-server on 127.0.0.1, living in its own temporary directory.

    ``stop()`` and ``kill()`` leave the directory so ``restart()`` brings the same server back
    on the same port; ``close()`` (or leaving the ``with`` block) kills it and removes
    everything. A finalizer does the same at interpreter exit, so a failing test never leaks a
    process.
    """

    def __init__(
        self,
        *,
        persistence: Persistence = "none",
        tls: bool = False,
        tls_material: TlsMaterial | None = None,
        tls_auth_clients: TlsAuthClients = "yes",
        acl_lines: Sequence[str] = (),
        extra_config: Sequence[str] = (),
        name: str = "redis",
        startup_timeout: float = 10.0,
    ) -> None:
        self.persistence: Persistence = persistence
        self.tls = tls
        self.tls_auth_clients: TlsAuthClients = tls_auth_clients
        self.acl_lines = tuple(acl_lines)
        self.extra_config = tuple(extra_config)
        self.name = name
        self.startup_timeout = startup_timeout
        self.directory = Path(tempfile.mkdtemp(prefix=f"feats-{name}-"))
        self._tls_material = tls_material
        self._state = _ProcessState(self.directory)
        self._finalizer = weakref.finalize(self, self._state.cleanup)

    # -- addresses -----------------------------------------------------------------------

    host = LOOPBACK

    @property
    def port(self) -> int:
        if self._state.port is None:
            raise ServerError(f"{self.name} has no port yet: call start() first")
        return self._state.port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def config_path(self) -> Path:
        return self.directory / "redis.conf"

    @property
    def pid(self) -> int | None:
        popen = self._state.popen
        return popen.pid if popen is not None else None

    @property
    def running(self) -> bool:
        popen = self._state.popen
        return popen is not None and popen.poll() is None

    # -- TLS -----------------------------------------------------------------------------

    @property
    def tls_material(self) -> TlsMaterial:
        if not self.tls:
            raise ServerError(f"{self.name} was not started with tls=True")
        if self._tls_material is None:
            self._tls_material = make_tls_material(self.directory / "tls")
        return self._tls_material

    @property
    def ssl_ca_certs(self) -> str:
        return str(self.tls_material.ca_cert)

    @property
    def ssl_certfile(self) -> str:
        return str(self.tls_material.client_cert)

    @property
    def ssl_keyfile(self) -> str:
        return str(self.tls_material.client_key)

    @property
    def ssl_kwargs(self) -> dict[str, Any]:
        """redis-py keyword arguments for this server's TLS (empty for a plain server)."""
        if not self.tls:
            return {}
        return {"ssl": True, **self.tls_material.client_kwargs()}

    # -- configuration -------------------------------------------------------------------

    def _config_lines(self) -> list[str]:
        lines = [
            f"bind {LOOPBACK}",
            "daemonize no",
            f"dir {conf_quote(self.data_dir)}",
            f"logfile {conf_quote(self.log_path)}",
            'save ""',
            "dbfilename dump.rdb",
            f"appendonly {'yes' if self.persistence == 'aof' else 'no'}",
            "appendfsync always",
            # DEBUG SLEEP and friends are handy fault injectors; loopback-only anyway.
            "enable-debug-command local",
            # The default 5 s wait for more replicas would dominate every replica's first sync.
            "repl-diskless-sync-delay 0",
            # A graceful stop of a master must not wait 10 s for replicas in tests.
            "shutdown-timeout 1",
        ]
        if self.tls:
            material = self.tls_material
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {conf_quote(material.server_cert)}",
                f"tls-key-file {conf_quote(material.server_key)}",
                f"tls-ca-cert-file {conf_quote(material.ca_cert)}",
                f"tls-auth-clients {self.tls_auth_clients}",
            ]
        else:
            lines.append(f"port {self.port}")
        if self.acl_lines:
            acl_path = self.directory / "users.acl"
            acl_path.write_text("\n".join(self.acl_lines) + "\n")
            lines.append(f"aclfile {conf_quote(acl_path)}")
        lines += self.extra_config
        return lines

    def _write_config(self) -> None:
        self.config_path.write_text("\n".join(self._config_lines()) + "\n")

    def _argv(self) -> list[str]:
        return [REDIS_SERVER, str(self.config_path)]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server (on a fresh port the first time) and wait until it answers."""
        if not self._finalizer.alive:
            raise ServerError(f"{self.name} was closed; create a new RedisServer")
        if self.running:
            return self
        first_start = self._state.port is None
        for _ in range(3 if first_start else 1):
            if self._state.port is None:
                self._state.port = reserve_port()
            try:
                self._spawn_and_wait()
                return self
            except ServerError as exc:
                # Another process may grab a port between our probe and redis' bind; only a
                # first start may move elsewhere, a restart must keep its address.
                if not (first_start and "Address already in use" in str(exc)):
                    raise
                release_port(self._state.port)
                self._state.port = None
        raise ServerError(f"{self.name}: no usable port after 3 attempts")

    def _spawn_and_wait(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self._state.popen = spawn(
            self._argv(), cwd=self.directory, output=self.directory / "stdout.log"
        )
        try:
            wait_until(
                self._probe, timeout=self.startup_timeout, what=f"{self.name} to answer PING"
            )
        except BaseException:
            self._state.kill()
            raise

    def _probe(self) -> bool | None:
        popen = self._state.popen
        if popen is None or popen.poll() is not None:
            code = popen.returncode if popen is not None else None
            raise ServerError(f"{self.name} exited with {code}:\n{self.log_tail()}")
        client = self.client(
            socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        try:
            client.ping()
            process_id = as_int(client.info("server")["process_id"])
        except (redis.AuthenticationError, redis.ResponseError):
            # An ACL that locks out the default user still proves the server is serving.
            return True
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        finally:
            client.close()
        if process_id != popen.pid:
            # Another process (a parallel test run) owns the port and ours is about to fail
            # to bind; start() retries elsewhere on this message.
            raise ServerError(f"{self.name}: Address already in use by pid {process_id}")
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log and of its stdout/stderr, for failure messages."""
        chunks = []
        for path in (self.directory / "stdout.log", self.log_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            chunks.append(f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(chunks)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no AOF rewrite, no goodbye to clients)."""
        self._state.kill()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server and wait; SIGKILL it if it does not exit within ``timeout``."""
        popen = self._state.popen
        if popen is None:
            return
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=10)
        self._state.popen = None

    def restart(self, *, graceful: bool = False) -> Self:
        """Bring the server back on the same port with the same data directory.

        A running server is SIGKILLed first (``graceful=True`` uses SIGTERM instead). With AOF
        persistence every acknowledged write comes back; without persistence the data is gone.
        """
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()

    def restart_empty(self) -> Self:
        """SIGKILL the server, wipe its data directory and start it again on the same port."""
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.start()

    def close(self) -> None:
        """Kill the server, release its port and delete its directory (idempotent)."""
        self._finalizer()

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def arestart(self, *, graceful: bool = False) -> None:
        await asyncio.to_thread(self.restart, graceful=graceful)

    async def arestart_empty(self) -> None:
        await asyncio.to_thread(self.restart_empty)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        port = self._state.port
        return f"<RedisServer {self.name} port={port} running={self.running}>"

    # -- clients -------------------------------------------------------------------------

    def _client_params(
        self, username: str | None, password: str | None, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"host": self.host, "port": self.port, **self.ssl_kwargs}
        if username is not None:
            params["username"] = username
        if password is not None:
            params["password"] = password
        params.update(kwargs)
        return params

    def client(
        self, *, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> redis.Redis:
        """A sync redis-py client for this server (TLS settings included); caller closes it."""
        return redis.Redis(**self._client_params(username, password, kwargs))

    def async_client(
        self, *, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> redis.asyncio.Redis:
        """An asyncio redis-py client for this server; caller closes it with ``aclose()``."""
        return redis.asyncio.Redis(**self._client_params(username, password, kwargs))

    def role(self) -> list[object]:
        """The raw ROLE reply (``["master", ...]`` or ``["slave", host, port, state, ...]``)."""
        client = self.client(decode_responses=True, socket_timeout=2.0, retry=Retry(NoBackoff(), 0))
        try:
            return as_list(command(client, "ROLE"))
        finally:
            client.close()

    def role_name(self) -> str:
        return as_str(self.role()[0])
