"""A network guard for the peers: loopback (our own Redis) stays open, everything else fails."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

from benchmarks.check_peers import NetworkGuard

__all__ = ["loopback_only"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _host(address: Any) -> str | None:
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    return None


def _local(address: Any) -> bool:
    # Unix sockets (str paths) and loopback addresses are local; anything else is a network use.
    return isinstance(address, str | bytes) or _host(address) in _LOOPBACK


@contextlib.contextmanager
def loopback_only() -> Iterator[NetworkGuard]:
    """Like check_peers.no_network, but feats' own Redis on 127.0.0.1 keeps working meanwhile."""
    guard = NetworkGuard()
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex
    getaddrinfo, create_connection = socket.getaddrinfo, socket.create_connection

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if not _local(address):
            raise guard.refuse(f"connect {address!r}")
        connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: Any) -> int:
        if not _local(address):
            raise guard.refuse(f"connect_ex {address!r}")
        return connect_ex(sock, address)

    def guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOOPBACK:
            raise guard.refuse(f"getaddrinfo {host!r}:{port!r}")
        return getaddrinfo(host, port, *args, **kwargs)

    def guarded_create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not _local(address):
            raise guard.refuse(f"create_connection {address!r}")
        return create_connection(address, *args, **kwargs)

    # setattr: the socket class and module functions are not meant to be reassigned statically.
    setattr(socket.socket, "connect", guarded_connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", guarded_connect_ex)  # noqa: B010
    setattr(socket, "getaddrinfo", guarded_getaddrinfo)  # noqa: B010
    setattr(socket, "create_connection", guarded_create_connection)  # noqa: B010
    try:
        yield guard
    finally:
        setattr(socket.socket, "connect", connect)  # noqa: B010
        setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
        setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010
        setattr(socket, "create_connection", create_connection)  # noqa: B010
