"""The seed README's payments and priorities declarations, for the CLI tests.

``declare(app)`` puts them on any App; ``app`` is a module-level App that has them, for
``feats --app tests.cli._shop:app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import feats
from feats._base import AppBase


@dataclass(frozen=True)
class Address:
    country_code: str


@dataclass(frozen=True)
class User:
    id: int
    address: Address


class PremiumUser(User):
    """A subclass: segments reading User must still read it (through the catalog too)."""


def user(id: int, country: str = "US") -> PremiumUser:
    return PremiumUser(id, Address(country))


class Handles(NamedTuple):
    PaymentProcessor: Any
    AllowedPriorities: Any
    ImageProcessing: Any


def declare(app: AppBase[Any, Any]) -> Handles:
    @app.segment
    class Country:
        """The ISO-3166 2 char country code of the object"""

        OPTIONS = ("US", "CA", "GB", "DE", "MX")

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return address.country_code

    @app.segment
    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    @app.feature
    class PaymentProcessor:
        @app.default
        def acme(self, user: PremiumUser) -> str:
            """2% + $0.30 / Transaction"""
            return "acme"

        def premium(self, user: PremiumUser) -> str:
            """4% + $0.50 / Transaction"""
            return "premium"

        def aperture(self, user: PremiumUser) -> str:
            """1% + $0.00 / Transaction"""
            return "aperture"

    @app.feature
    class AllowedPriorities:
        @app.default
        def no_priority(self, user: User) -> list[str]:
            return []

        def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

        def three_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal", "Unimportant"]

    @app.boolean
    def ImageProcessing(user: User) -> bool:
        return True

    return Handles(PaymentProcessor, AllowedPriorities, ImageProcessing)


app = feats.App()
handles = declare(app)
