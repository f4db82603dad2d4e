"""Web admin fixtures: a serving App on the real Redis, a users file, signed-in clients."""

from __future__ import annotations

import re
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its TestClient; the supported range still takes httpx.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

import feats
import feats.aio
import feats.web

from ._shop import Shop, declare

PASSWORD = "correct horse battery"
SECRET = "test-secret-key-of-enough-length"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Serving:
    """A started sync App with the shop's declarations, its catalog entry published."""

    app: feats.App
    shop: Shop

    @property
    def admin(self) -> feats.Admin:
        return self.app.admin

    def history(self, feature: str = "PaymentProcessor") -> list[feats.Change]:
        return self.app.admin.history(feature)


@pytest.fixture
def serving(sync_redis: redis.Redis, namespace: str) -> Iterator[Serving]:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace, block_ms=500), block_ms=500)
    shop = declare(app)
    with app:
        # Published on the writer thread soon after start; the pages need it at once.
        app.admin.publish_catalog()
        yield Serving(app, shop)


@pytest.fixture(scope="session")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "users.json"
    feats.web.Users.add(path, "alice", PASSWORD, "editor")
    feats.web.Users.add(path, "victor", PASSWORD, "viewer")
    return path


def csrf_of(client: TestClient, path: str = "/login", **headers: str) -> str:
    found = CSRF.search(client.get(path, headers=headers).text)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: TestClient, name: str = "alice", password: str = PASSWORD) -> None:
    response = client.post(
        "/login",
        data={"csrf": csrf_of(client), "name": name, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


Client = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def client_for(redis_url: str, namespace: str, users_file: Path) -> Client:
    """``with client_for(**create_app options) as client``: a TestClient on a fresh app."""

    @contextmanager
    def make(**options: Any) -> Iterator[TestClient]:
        connection = redis.asyncio.Redis.from_url(redis_url)
        storage = feats.aio.RedisStorage(connection, namespace)
        if not {"auth", "anonymous", "users"} & set(options):
            options["users"] = users_file
        app = feats.web.create_app(storage, secret_key=SECRET, **options)
        with TestClient(app, base_url="http://testserver") as client:
            yield client
            client.portal.call(connection.aclose)  # type: ignore[union-attr]  # set while open

    return make


@pytest.fixture
def editor(client_for: Client, serving: Serving) -> Iterator[TestClient]:
    with client_for() as client:
        sign_in(client, "alice")
        yield client


@pytest.fixture
def viewer(client_for: Client, serving: Serving) -> Iterator[TestClient]:
    with client_for() as client:
        sign_in(client, "victor")
        yield client
