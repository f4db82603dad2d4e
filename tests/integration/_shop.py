"""The integration tests' view of the shared shop (feats/_cli/_shop.py): Country and
UserId, PaymentProcessor, AllowedPriorities and the ImageProcessing kill switch, with
typed handles; and the states and stream readers these tests share."""

from __future__ import annotations

from typing import Any, TypeVar

import feats
from feats._base import AppBase
from feats._cli._shop import Address, Shop, User, user
from feats._cli._shop import declare as declare_shop
from feats._exposures import exposures_in
from feats._handles import FeatureHandleBase
from feats._stored import RawEntry

__all__ = [
    "Address",
    "Exposure",
    "Shop",
    "User",
    "canada_premium",
    "declare",
    "decode_exposures",
    "rollout_and_experiment",
    "user",
    "wait_for_catalog",
]

F = TypeVar("F", bound=FeatureHandleBase)
B = TypeVar("B", bound=FeatureHandleBase)

PARTS = ("Country", "UserId", "PaymentProcessor", "AllowedPriorities", "ImageProcessing")


def declare(app: AppBase[F, B]) -> Shop[F, B]:
    """Declare the seed's segments and features on ``app``."""
    return declare_shop(app, PARTS, country_options=None)


def canada_premium(shop: Shop[Any, Any]) -> feats.FeatureState:
    """Canada gets premium, everyone else acme."""
    return feats.FeatureState(
        segments=[shop.Country],
        rules={("CA",): feats.Static("premium"), None: feats.Static("acme")},
    )


def rollout_and_experiment(shop: Shop[Any, Any]) -> dict[str, feats.FeatureState]:
    """DESIGN.md's example rollout, a three-way experiment and a kill switch."""
    return {
        "PaymentProcessor": feats.FeatureState(
            segments=[shop.Country],
            rules={
                ("CA",): feats.Static("premium"),
                ("US",): feats.Rollout(shop.UserId, {"aperture": 5, "acme": 95}),
                None: feats.Static("acme"),
            },
        ),
        "AllowedPriorities": feats.FeatureState(
            rules={
                None: feats.Experiment(
                    shop.UserId, {"no_priority": 1, "two_priorities": 1, "three_priorities": 1}
                )
            }
        ),
        "ImageProcessing": feats.FeatureState(rules={None: feats.Static("disabled")}),
    }


Exposure = tuple[str, str, str, str | None]


def decode_exposures(entries: list[RawEntry]) -> list[Exposure]:
    """The exposures in exposure-stream entries: each entry is one JSON batch."""
    found: list[Exposure] = []
    for entry in entries:
        batch = exposures_in(entry)
        assert int(entry.text("n")) == len(batch)
        found.extend(batch)
    return found


def wait_for_catalog(server_url: str, namespace: str, timeout: float = 5.0) -> None:
    """Wait (bounded) until an App has published its catalog entry: it does so from its
    writer thread soon after start(), and these tests count what happens afterwards."""
    import time

    import redis

    from feats._layout import Keys
    from tests.servers._common import as_str

    client = redis.Redis.from_url(server_url)
    deadline = time.monotonic() + timeout
    try:
        while not any(
            not as_str(field).startswith("seen:") for field in client.hkeys(Keys(namespace).catalog)
        ):
            assert time.monotonic() < deadline, f"no catalog in {namespace} after {timeout}s"
            time.sleep(0.01)
    finally:
        client.close()
