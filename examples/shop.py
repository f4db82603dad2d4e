"""The seed README's shop on one aio App, shared by every example; run it to serve the shop.

The business objects and segments are feats' shop model (feats/_cli/_shop.py): the same
one ``feats demo`` and the test suite run on. The features are that model's, declared here in
the typed form (``feats.aio.FeatureClass``), as the README's shop listing shows them:
``await PaymentProcessor.create(user)`` is typed ``(User) -> Processor`` for mypy and
pyright. tests/unit/test_shop.py checks that this App declares what the model declares.

``python examples/shop.py`` runs the shop's App the way a service would, for the README's
``feats`` stories: it publishes its catalog to Redis, then prints what a few customers get
after every change it applies, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

import redis.asyncio

import feats.aio
from feats._cli._redact import redact
from feats._cli._shop import (
    SEGMENTS,
    AcmeProcessor,
    Address,
    ApertureProcessor,
    PremiumProcessor,
    Processor,
    Request,
    Shop,
    User,
    declare,
    translate,
)
from feats.aio import App

__all__ = [
    "NAMESPACE",
    "AcmeProcessor",
    "Address",
    "AllowedPriorities",
    "ApertureProcessor",
    "ConfirmText",
    "Country",
    "ImageProcessing",
    "PaymentProcessor",
    "PremiumProcessor",
    "Processor",
    "Request",
    "Subdivision",
    "User",
    "UserDevice",
    "UserId",
    "app",
    "describe",
    "describe_storage",
    "read_exposures",
    "serve",
    "users",
]

REDIS_URL = os.environ.get("FEATS_REDIS_URL")
"""Set it (e.g. ``redis://127.0.0.1:6379/0``) to run the examples on Redis instead of memory."""
NAMESPACE = os.environ.get("FEATS_NAMESPACE", "feats-examples")


def users(country: str, count: int, *, first_id: int = 1) -> list[User]:
    """``count`` users living in ``country``, with consecutive ids from ``first_id``."""
    return [User(i, country) for i in range(first_id, first_id + count)]


# -- the App ----------------------------------------------------------------------------------


def _storage() -> feats.aio.Storage:
    if REDIS_URL:
        return feats.aio.RedisStorage(
            redis=redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True, socket_timeout=5),
            namespace=NAMESPACE,
        )
    return feats.aio.MemoryStorage(namespace=NAMESPACE)


app = App(storage=_storage())
segments = declare(app, SEGMENTS)

Country = segments.Country
Subdivision = segments.Subdivision
UserId = segments.UserId
UserDevice = segments.UserDevice


# -- the features: the shop model's, typed (tests/unit/test_shop.py checks they are the same) --


class PaymentProcessor(feats.aio.FeatureClass[[User], Processor], app=app):
    @app.default
    def acme(self, user: User) -> AcmeProcessor:
        """2% + $0.30 / Transaction"""
        return AcmeProcessor()

    def premium(self, user: User) -> PremiumProcessor:
        """4% + $0.50 / Transaction"""
        return PremiumProcessor()

    def aperture(self, user: User) -> ApertureProcessor:
        """1% + $0.00 / Transaction"""
        return ApertureProcessor()


class AllowedPriorities(feats.aio.FeatureClass[[User], list[str]], app=app):
    @app.default
    def no_priority(self, user: User) -> list[str]:
        return []

    def two_priorities(self, user: User) -> list[str]:
        return ["Important", "Normal"]

    def three_priorities(self, user: User) -> list[str]:
        return ["Important", "Normal", "Unimportant"]


@app.boolean
def ImageProcessing(user: User) -> bool:
    return True  # This is the default value


class ConfirmText(feats.aio.FeatureClass[[User], str], app=app):
    @app.default
    def submit(self, user: User) -> str:
        return translate(user.language, "Submit")

    def save(self, user: User) -> str:
        return translate(user.language, "Save")


def describe(state: feats.aio.FeatureState | None) -> str:
    """A feature state in one line, e.g. ``CA -> premium; everyone else -> acme``."""
    if state is None:
        return "no configuration (the default answers)"
    parts = [f"{'/'.join(key)} -> {s.describe()}" for key, s in state.rules.items() if key]
    if state.fallthrough is not None:
        everyone = "everyone else" if parts else "everyone"
        parts.append(f"{everyone} -> {state.fallthrough.describe()}")
    return "; ".join(parts) or "no rules (the default answers)"


async def read_exposures(storage: feats.aio.Storage) -> tuple[int, list[list[Any]]]:
    """Every exposure stored so far, read back in pages: (stream entries, exposures).

    Each stream entry is one batch written by the App's exposure writer; its ``batch`` field
    is JSON, a list of ``[feature, implementation, version, [segment value, ...]]``; each
    exposure comes back as ``[feature, implementation, segment value, version]``.
    """
    entries, after = 0, "0-0"
    exposures: list[list[Any]] = []
    while page := await storage.read_exposures(after, 1000):
        for entry in page:
            entries += 1
            for feature, implementation, version, units in json.loads(entry.fields["batch"]):
                exposures.extend([feature, implementation, unit, version] for unit in units)
        after = page[-1].id
    return entries, exposures


def describe_storage() -> str:
    if REDIS_URL:
        return f"RedisStorage at {REDIS_URL}, namespace {NAMESPACE!r}"
    return "MemoryStorage (in-process; set FEATS_REDIS_URL to use Redis)"


# -- serving the shop -------------------------------------------------------------------------

CUSTOMERS = (User(1, "US"), User(2, "CA"), User(3, "GB"))
"""Whose answers ``serve`` prints after each change."""
TRAFFIC_COUNTRIES = ("US", "US", "US", "CA", "CA", "GB", "DE", "MX")


async def _traffic(handles: Shop[feats.aio.Feature, feats.aio.Boolean], users: int) -> None:
    """Customers checking out and opening their TODO lists, about once a second each: the
    calls a web service would make (an experiment records their exposures)."""
    population = [
        User(i, TRAFFIC_COUNTRIES[i % len(TRAFFIC_COUNTRIES)]) for i in range(1, users + 1)
    ]
    while True:
        for index, customer in enumerate(population):
            await handles.PaymentProcessor.create(customer)
            await handles.AllowedPriorities.create(customer)
            if index % 100 == 99:
                await asyncio.sleep(0)
        await asyncio.sleep(1.0)


async def serve(redis_url: str, namespace: str, users: int = 1000) -> None:
    """Run the shop's App on Redis until SIGINT or SIGTERM, with ``users`` customers
    evaluating its features, printing each change the App applies."""
    client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=5)
    # An App of its own, on redis_url and namespace: the shop model declares on it the same
    # features as the typed classes above declare on ``app``.
    serving = App(storage=feats.aio.RedisStorage(client, namespace))
    handles = declare(serving)

    shown: dict[str, str] = {}
    """Each feature's version when last printed: a reload tells of every feature."""

    def applied(version: str, features: tuple[str, ...]) -> None:
        # Called on the App's tail thread: find_implementation is a plain, safe call there.
        for name in features:
            if name not in handles.features:
                continue
            feature = handles.feature(name)
            answers = ", ".join(f"{c.country} {feature.find_implementation(c)}" for c in CUSTOMERS)
            own = feature.explain(CUSTOMERS[0]).version or version
            if shown.get(name) != own:
                shown[name] = own
                print(f"applied {own}: {name} now gives {answers}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serving:
            # start() publishes the catalog soon after; the operator's first command must
            # find it, so this line is printed only once it is there.
            await serving.admin.publish_catalog()
            serving.add_listener(applied)
            traffic = asyncio.create_task(_traffic(handles, users))
            print(
                f"serving the shop to {users:,} customers in namespace {namespace!r} at "
                f"{redact(redis_url)}: try feats -n {namespace} list (Ctrl-C to stop)",
                flush=True,
            )
            await stop.wait()
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python examples/shop.py", description=serve.__doc__)
    parser.add_argument(
        "--redis",
        default=REDIS_URL or "redis://localhost:6379/0",
        help="Redis URL (default: $FEATS_REDIS_URL, else redis://localhost:6379/0)",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get("FEATS_NAMESPACE", "shop"),
        help="namespace (default: $FEATS_NAMESPACE, else shop)",
    )
    parser.add_argument("--users", type=int, default=1000, help="simulated customers")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.redis, args.namespace, args.users))
    return 0


if __name__ == "__main__":
    sys.exit(main())
