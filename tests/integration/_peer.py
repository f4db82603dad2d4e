"""A second App process for the propagation tests, driven by JSON lines on stdin.

``python -m tests.integration._peer URL NAMESPACE`` starts an aio App on that namespace,
prints ``{"ready": version}``, then answers one line per command:

- ``{"op": "wait", "version": V}``: wait_for_version(V), then report what it evaluates;
- ``{"op": "write", "country": C, "implementation": I}``: route country C to I, report the
  version written;
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio

import feats
from feats.aio import App, RedisStorage

from ._shop import declare, user

USERS = {"US": user(1, "US"), "CA": user(2, "CA"), "GB": user(3, "GB")}


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(url: str, namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    app = App(storage=RedisStorage(client, namespace), start_timeout=10)
    shop = declare(app)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with app:
        say({"ready": app.version, "live": app.status.live})
        while line := await reader.readline():
            command = json.loads(line)
            if command["op"] == "wait":
                started = time.perf_counter()
                await app.wait_for_version(command["version"], timeout=10)
                say(
                    {
                        "version": app.version,
                        "waited": time.perf_counter() - started,
                        "live": app.status.live,
                        "answers": {
                            country: shop.PaymentProcessor.find_implementation(person)
                            for country, person in USERS.items()
                        },
                        "evaluated_version": shop.PaymentProcessor.explain(USERS["CA"]).version,
                    }
                )
            elif command["op"] == "write":
                state = feats.FeatureState(
                    segments=[shop.Country],
                    rules={
                        (command["country"],): feats.Static(command["implementation"]),
                        None: feats.Static("acme"),
                    },
                )
                version = await app.admin.set_state(
                    shop.PaymentProcessor, state, author="peer", reason="test"
                )
                say({"written": version})
            else:
                break
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
