"""An App in another process that serves the changes the web admin makes.

``python -m tests.web._serving URL NAMESPACE`` starts an aio App with the shop's
declarations, publishes its catalog entry (an App does that on its writer thread soon
after start; the pages need it now), prints ``{"ready": version}``, then answers one
JSON line per command:

- ``{"op": "wait", "version": V, "feature": F, "users": [[id, country], ...]}``: wait
  until V is applied, then answer ``find_implementation`` for each user and the version
  that ``explain`` reports;
- ``{"op": "use", "feature": F, "users": [...]}``: ``create`` for each user (an exposure
  each under an experiment), then wait until the exposures are written;
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio

from feats.aio import App, RedisStorage

from ._shop import declare, user

WAIT_SECONDS = 10.0


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(url: str, namespace: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    app = App(storage=RedisStorage(client, namespace, block_ms=500), block_ms=500, start_timeout=10)
    shop = declare(app)
    handles = {
        "PaymentProcessor": shop.PaymentProcessor,
        "AllowedPriorities": shop.AllowedPriorities,
    }
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with app:
        await app.admin.publish_catalog()
        say({"ready": app.version, "live": app.status.live})
        while line := await reader.readline():
            command = json.loads(line)
            if command["op"] == "quit":
                break
            handle = handles[command["feature"]]
            people = [user(int(i), str(c)) for i, c in command["users"]]
            if command["op"] == "wait":
                await app.wait_for_version(command["version"], timeout=WAIT_SECONDS)
                say(
                    {
                        "version": app.version,
                        "answers": [handle.find_implementation(p) for p in people],
                        "explained": handle.explain(people[0]).version if people else None,
                    }
                )
            elif command["op"] == "use":
                before = app.status.exposures_written
                names = [handle.find_implementation(p) for p in people]
                for person in people:
                    await handle.create(person)
                deadline = time.monotonic() + WAIT_SECONDS
                while app.status.exposures_written < before + len(people):
                    if time.monotonic() > deadline:
                        raise TimeoutError("exposures were not written in time")
                    await asyncio.sleep(0.02)
                say({"answers": names, "version": app.version})
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
