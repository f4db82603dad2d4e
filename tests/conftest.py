"""Fixtures shared by the whole suite: the local Redis and a fresh namespace per test."""

from __future__ import annotations

import gc
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

REDIS_URL = os.environ.get("FEATS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real redis-server every integration test talks to (.ci/run starts one)."""
    if not _redis_answers():
        pytest.fail(f"no Redis answers at {REDIS_URL}; start one (see .ci/run)")
    return REDIS_URL


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace no other test uses; its keys are deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"feats:{{{name}}}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def async_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def feats_logs_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """Every test sees feats' warnings, whatever an earlier in-process run did to the logger."""
    caplog.set_level(logging.WARNING, logger="feats")


@pytest.fixture(autouse=True)
def garbage_of_this_test_is_collected_now() -> Iterator[None]:
    """Collect cyclic garbage as each test ends, so an unclosed socket or loop it left
    behind is reported against that test (warnings are errors), not a later one."""
    yield
    gc.collect()
