"""The seed README's business objects and declarations, shared by the unit tests.

Declarations are made inside functions that take the App, so every test gets fresh
handles on an App of its own; the classes keep the seed's names because feats names
features and implementations after them.
"""

from dataclasses import dataclass
from typing import NamedTuple

import feats
import feats.aio


@dataclass(frozen=True)
class Address:
    country_code: str
    subdivision_code: str


@dataclass(frozen=True)
class User:
    id: int
    address: Address
    language: str = "en"


Request = dict[str, str]
"""The seed's request objects are mappings (``request['device']``)."""


def user(id: int, country: str = "US", subdivision: str = "WA") -> User:
    return User(id, Address(country, subdivision))


class AcmeProcessor:
    pass


class PremiumProcessor:
    pass


class ApertureProcessor:
    pass


class Segments(NamedTuple):
    country: feats.SegmentHandle
    subdivision: feats.SegmentHandle
    user_id: feats.SegmentHandle
    device: feats.SegmentHandle


def declare_segments(app: feats.App | feats.aio.App) -> Segments:
    """Country, Subdivision, UserId and UserDevice exactly as the seed declares them."""

    class Country:
        """The ISO-3166 2 char country code of the object"""

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return address.country_code

    class Subdivision:
        """The ISO 3166-2 Subdivision Code, e.g US-WA"""

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return f"{address.country_code}-{address.subdivision_code}"

    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    class UserDevice:
        """The user device data from the Request, e.g "ios" """

        OPTIONS = ["ios", "android"]  # noqa: RUF012  (a list, as the seed writes it)

        def request(self, request: Request) -> str:
            return request["device"]

    return Segments(
        app.segment(Country),
        app.segment(Subdivision),
        app.segment(UserId),
        app.segment(UserDevice),
    )


def payment_processor_class() -> type:
    """A fresh copy of the seed's PaymentProcessor (with aperture), as the seed declares it."""

    class PaymentProcessor:
        @feats.App.default
        def acme(self, user: User) -> AcmeProcessor:
            """2% + $0.30 / Transaction"""
            return AcmeProcessor()

        def premium(self, user: User) -> PremiumProcessor:
            """4% + $0.50 / Transaction"""
            return PremiumProcessor()

        def aperture(self, user: User) -> ApertureProcessor:
            """1% + $0.00 / Transaction"""
            return ApertureProcessor()

    return PaymentProcessor


def declare_payments(app: feats.App) -> feats.Feature:
    return app.feature(payment_processor_class())


def declare_payments_aio(app: feats.aio.App) -> feats.aio.Feature:
    return app.feature(payment_processor_class())


def payments_state(segments: Segments, aperture: float = 5) -> feats.FeatureState:
    """DESIGN.md's example: Canada gets premium, ``aperture``% of US users aperture, else acme."""
    return feats.FeatureState(
        segments=[segments.country],
        rules={
            ("CA",): feats.Static("premium"),
            ("US",): feats.Rollout(
                segments.user_id, {"aperture": aperture, "acme": 100 - aperture}
            ),
            None: feats.Static("acme"),
        },
    )
