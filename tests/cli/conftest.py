"""CLI fixtures: a serving App on the real Redis, and the ``feats`` entry point to invoke."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
import redis
from click.testing import CliRunner, Result

import feats
from feats._cli import cli

from ._shop import Handles, declare


@dataclass
class Serving:
    """A started sync App with the shop's declarations: it published the catalog."""

    app: feats.App
    handles: Handles

    def wait(self, version: str) -> None:
        self.app.wait_for_version(version, timeout=5)


class Run(Protocol):
    def __call__(
        self, *args: str, input: Any = None, env: dict[str, str | None] | None = None
    ) -> Result: ...


@pytest.fixture
def serving(sync_redis: redis.Redis, namespace: str) -> Iterator[Serving]:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace, block_ms=500))
    handles = declare(app)
    with app:
        # Published by the App's tail soon after start(); the CLI under test needs it now.
        app.admin.publish_catalog()
        yield Serving(app, handles)


@pytest.fixture
def run(redis_url: str, namespace: str) -> Run:
    """Invoke the click entry point as an operator would, against this test's namespace."""

    def invoke(*args: str, input: Any = None, env: dict[str, str | None] | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(
            cli,
            ["--redis", redis_url, "--namespace", namespace, *args],
            input=input,
            env={
                "FEATS_AUTHOR": None,
                "FEATS_REDIS_URL": None,
                "FEATS_NAMESPACE": None,
                **(env or {}),
            },
            catch_exceptions=False,
        )

    return invoke


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def written(result: Result) -> str:
    """The version a changing command wrote (with --json)."""
    data = json_of(result)
    assert data["changed"] is True, data
    version: str = data["version"]
    return version


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
