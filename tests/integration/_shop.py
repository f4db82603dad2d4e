"""The seed's shop declarations for the integration tests, on any App, with typed handles.

The decorators are called as functions (``app.feature(cls)``) so that mypy sees the handle
types: it ignores what a class decorator returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import feats
from feats._base import AppBase
from feats._exposures import exposures_in
from feats._handles import FeatureHandleBase, SegmentHandle
from feats._stored import RawEntry

F = TypeVar("F", bound=FeatureHandleBase)
B = TypeVar("B", bound=FeatureHandleBase)


@dataclass(frozen=True)
class Address:
    country_code: str


@dataclass(frozen=True)
class User:
    id: int
    address: Address


def user(id: int, country: str = "US") -> User:
    return User(id, Address(country))


@dataclass(frozen=True)
class Shop(Generic[F, B]):
    """The handles ``declare`` returns."""

    Country: SegmentHandle
    UserId: SegmentHandle
    PaymentProcessor: F
    AllowedPriorities: F
    ImageProcessing: B


def declare(app: AppBase[F, B]) -> Shop[F, B]:
    """Declare the seed's segments and features on ``app``."""

    class Country:
        """The ISO-3166 2 char country code of the object"""

        def user(self, user: User) -> str:
            return user.address.country_code

    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    class PaymentProcessor:
        @app.default
        def acme(self, user: User) -> str:
            """2% + $0.30 / Transaction"""
            return "acme"

        def premium(self, user: User) -> str:
            """4% + $0.50 / Transaction"""
            return "premium"

        def aperture(self, user: User) -> str:
            """1% + $0.00 / Transaction"""
            return "aperture"

    class AllowedPriorities:
        @app.default
        def no_priority(self, user: User) -> list[str]:
            return []

        def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

        def three_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal", "Unimportant"]

    def ImageProcessing(user: User) -> bool:
        return True

    return Shop(
        Country=app.segment(Country),
        UserId=app.segment(UserId),
        PaymentProcessor=app.feature(PaymentProcessor),
        AllowedPriorities=app.feature(AllowedPriorities),
        ImageProcessing=app.boolean(ImageProcessing),
    )


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
