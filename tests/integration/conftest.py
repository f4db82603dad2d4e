"""Fixtures of the integration tests: a redis-server of their own when the shared one won't do."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import RedisServer, redis_server_available


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server on a free loopback port that only this test talks to."""
    if not redis_server_available():
        pytest.fail("redis-server is not installed (see .ci/run)")
    with RedisServer(name="integration") as server:
        yield server
