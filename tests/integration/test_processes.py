"""Two App processes on one namespace: a change made by either reaches the other via the stream."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from feats.aio import App, RedisStorage

from ._shop import canada_premium, declare, user

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


class Peer:
    """The other process: an aio App in a subprocess, spoken to in JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def receive(self, timeout: float = 15) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            assert self.process.stderr is not None
            error = await self.process.stderr.read()
            raise AssertionError(f"the peer exited: {error.decode(errors='replace')}")
        message: dict[str, Any] = json.loads(line)
        return message

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        return await self.receive()


@pytest.fixture
async def peer(redis_url: str, namespace: str) -> AsyncIterator[Peer]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration._peer",
        redis_url,
        namespace,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    peer = Peer(process)
    try:
        yield peer
    finally:
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_a_change_made_here_reaches_the_other_process(
    peer: Peer, redis_url: str, namespace: str
) -> None:
    ready = await peer.receive()
    assert ready == {"ready": None, "live": True}
    client = redis.asyncio.Redis.from_url(redis_url)
    app = App(storage=RedisStorage(client, namespace))
    shop = declare(app)
    async with app:
        version = await app.admin.set_state(
            shop.PaymentProcessor, canada_premium(shop), author="test", reason="CA outage"
        )
        # The writing process sees its own write at once.
        assert shop.PaymentProcessor.find_implementation(user(2, "CA")) == "premium"
        report = await peer.ask(op="wait", version=version)
    await client.aclose()
    assert report["version"] == version
    assert report["evaluated_version"] == version
    assert report["live"] is True
    assert report["answers"] == {"US": "acme", "CA": "premium", "GB": "acme"}
    assert report["waited"] < 5


async def test_a_change_made_by_the_other_process_reaches_this_one(
    peer: Peer, redis_url: str, namespace: str
) -> None:
    await peer.receive()
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    app = App(storage=RedisStorage(client, namespace))
    shop = declare(app)
    async with app:
        canadian = user(2, "CA")
        assert await shop.PaymentProcessor.create(canadian) == "acme"
        written = (await peer.ask(op="write", country="CA", implementation="premium"))["written"]
        await app.wait_for_version(written, timeout=5)
        assert app.version == written
        assert await shop.PaymentProcessor.create(canadian) == "premium"
        assert shop.PaymentProcessor.explain(canadian).version == written
        assert shop.PaymentProcessor.find_implementation(user(1, "US")) == "acme"

        # And back: this process writes, the peer follows; then the peer writes again.
        mine = await app.admin.set_state(
            shop.PaymentProcessor, None, author="test", reason="outage over"
        )
        report = await peer.ask(op="wait", version=mine)
        assert report["answers"] == {"US": "acme", "CA": "acme", "GB": "acme"}
        again = (await peer.ask(op="write", country="GB", implementation="aperture"))["written"]
        await app.wait_for_version(again, timeout=5)
        assert shop.PaymentProcessor.find_implementation(user(3, "GB")) == "aperture"
        assert shop.PaymentProcessor.find_implementation(canadian) == "acme"
        assert app.status.live
    await client.aclose()
