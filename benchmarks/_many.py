"""Many configured features (start-up, loop stalls, GC): declarations, states, seeding."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio

import feats
import feats.aio
from benchmarks._scenarios import declare_flags
from benchmarks._users import User
from feats import FeatureState, Rollout, Static

__all__ = [
    "KINDS",
    "USER",
    "burst_state",
    "declare_many",
    "seed",
    "state_of",
    "states_key",
    "version_key",
    "write_burst",
    "writer",
]

USER: Final = User(id=42, country="US")
# What the configured features look like: "static" mirrors the peers' documents (every flag
# on); "rollouts" gives every feature a Country rule and a salted rollout by user id.
KINDS: Final = ("static", "rollouts")


def states_key(namespace: str) -> str:
    """The hash of current records (what the start-up floor reads with one HGETALL)."""
    return f"feats:{{{namespace}}}:states"


def state_of(kind: str) -> FeatureState:
    if kind == "static":
        return FeatureState(rules={None: Static("enabled")})
    return FeatureState(
        segments=["Country"],
        rules={
            ("CA",): Static("disabled"),
            None: Rollout("UserId", {"enabled": 20, "disabled": 80}),
        },
    )


def burst_state(index: int) -> FeatureState:
    """A different state for every change of a burst, so each really changes the snapshot."""
    share = 1 + index % 98
    split = {"enabled": share, "disabled": 100 - share}
    return FeatureState(rules={None: Rollout("UserId", split)})


def declare_many(app: feats.App | feats.aio.App, flags: int) -> list[Any]:
    """The UserId and Country segments and ``flags`` booleans ``flag_0 ...``."""

    @app.segment
    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    return declare_flags(app, flags)


def writer(url: str, namespace: str, flags: int) -> tuple[feats.aio.App, list[Any]]:
    """An asyncio App that only writes (its admin); not started: it follows nothing."""
    client = redis.asyncio.Redis.from_url(url)
    app = feats.aio.App(storage=feats.aio.RedisStorage(redis=client, namespace=namespace))
    return app, declare_many(app, flags)


async def write_burst(
    app: feats.aio.App, handles: Sequence[Any], changes: int, concurrency: int = 16
) -> str:
    """``changes`` writes over ``handles`` (round robin), ``concurrency`` in flight; the
    newest version written."""
    versions: list[str] = []
    for start in range(0, changes, concurrency):
        versions += await asyncio.gather(
            *(
                app.admin.set_state(
                    handles[index % len(handles)],
                    burst_state(index),
                    author="bench",
                    reason="burst",
                )
                for index in range(start, min(changes, start + concurrency))
            )
        )
    return max(versions, key=version_key)


def version_key(version: str) -> tuple[int, int]:
    """A change-log version (a stream id, "ms-seq") as something that sorts."""
    milliseconds, _, sequence = version.partition("-")
    return int(milliseconds), int(sequence or 0)


async def seed(url: str, namespace: str, flags: int, kind: str, concurrency: int = 64) -> str:
    """Configure ``flags`` features through the admin, a few dozen writes in flight; the
    newest version written."""
    app, handles = writer(url, namespace, flags)
    state = state_of(kind)
    versions: list[str] = []
    try:
        for start in range(0, flags, concurrency):
            versions += await asyncio.gather(
                *(
                    app.admin.set_state(handle, state, author="bench", reason="seed")
                    for handle in handles[start : start + concurrency]
                )
            )
    finally:
        await app.aclose()
        storage = app.storage
        if isinstance(storage, feats.aio.RedisStorage):
            await storage.redis.aclose()
    return max(versions, key=version_key, default="0-0")
