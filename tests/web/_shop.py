"""The seed README's shop for the web admin's tests: its segments and features on any App.

Country declares OPTIONS here, so the editors show a select of them; UserId does not, so
they show a text field. ``declare_hostile`` adds declarations whose docstrings, options
and names carry markup, for the escaping tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from feats._base import AppBase

COUNTRIES = ("US", "CA", "GB", "DE", "MX")
HOSTILE_DOC = '<script>alert("doc")</script><img src=x onerror=alert(1)>'
HOSTILE_OPTION = '"><script>alert("option")</script>'


@dataclass(frozen=True)
class Address:
    country_code: str


@dataclass(frozen=True)
class User:
    id: int
    address: Address
    device: str = "web"


def user(id: int, country: str = "US") -> User:
    return User(id, Address(country))


@dataclass(frozen=True)
class Shop:
    Country: Any
    UserId: Any
    UserDevice: Any
    PaymentProcessor: Any
    AllowedPriorities: Any
    ImageProcessing: Any


def declare(app: AppBase[Any, Any]) -> Shop:
    """The seed's segments and features, as the README declares them."""

    class Country:
        """
        The ISO-3166 2 char country code of the object
        """

        OPTIONS: ClassVar[tuple[str, ...]] = COUNTRIES

        def user(self, user: User) -> str:
            return self.address(user.address)

        def address(self, address: Address) -> str:
            return address.country_code

    class UserId:
        """The user's id: what rollouts and experiments split by"""

        def user(self, user: User) -> str:
            return str(user.id)

    class UserDevice:
        """
        The user device data from the Request, e.g "ios"
        """

        OPTIONS: ClassVar[list[str]] = ["ios", "android"]

        def user(self, user: User) -> str:
            return user.device

    class PaymentProcessor:
        """Which card processor charges a user."""

        @app.default
        def acme(self, user: User) -> str:
            """
            2% + $0.30 / Transaction
            """
            return "acme"

        def premium(self, user: User) -> str:
            """
            4% + $0.50 / Transaction
            """
            return "premium"

        def aperture(self, user: User) -> str:
            """
            1% + $0.00 / Transaction
            """
            return "aperture"

    class AllowedPriorities:
        """Which priorities a TODO item can have."""

        @app.default
        def no_priority(self, user: User) -> list[str]:
            return []

        def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

        def three_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal", "Unimportant"]

    def ImageProcessing(user: User) -> bool:
        """Process uploaded images (turn it off during a DDoS)."""
        return True

    return Shop(
        Country=app.segment(Country),
        UserId=app.segment(UserId),
        UserDevice=app.segment(UserDevice),
        PaymentProcessor=app.feature(PaymentProcessor),
        AllowedPriorities=app.feature(AllowedPriorities),
        ImageProcessing=app.boolean(ImageProcessing),
    )


def declare_hostile(app: AppBase[Any, Any]) -> None:
    """Markup in every string a declaration can carry."""

    class Hostile:
        __doc__ = HOSTILE_DOC
        OPTIONS: ClassVar[tuple[str, ...]] = (HOSTILE_OPTION, "plain")

        def user(self, user: User) -> str:
            return "plain"

    class Sneaky:
        __doc__ = HOSTILE_DOC

        @app.default
        def safe(self, user: User) -> str:
            return "safe"

        def risky(self, user: User) -> str:
            return "risky"

    Sneaky.risky.__doc__ = HOSTILE_DOC
    app.segment(Hostile)
    app.feature(Sneaky)
