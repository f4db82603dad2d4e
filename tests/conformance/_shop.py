"""The features the conformance scenarios resolve, declared on a sync or an asyncio App.

One feature per flag type the spec asks about: implementation names (PaymentProcessor), a
boolean feature (new_checkout), and implementations returning an int, a float, a JSON
object, something that is not JSON, a value of the wrong type at run time, or an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from openfeature.evaluation_context import EvaluationContext

import feats
import feats.aio

SALE_BANNER = {"title": "Sale", "percent": 20, "visible": True}


@dataclass(frozen=True)
class Shopper:
    id: int
    country: str
    plan: str = "free"


class PaperReceipt:
    """Not JSON: an object resolution of Receipt is a type mismatch."""


def shopper_inputs(feature: str, context: EvaluationContext) -> Sequence[Any]:
    """FeatsProvider(inputs=...): the one argument every shop feature takes, from a context."""
    attributes = context.attributes
    return (
        Shopper(
            id=int(context.targeting_key or 0),
            country=str(attributes.get("Country", "")),
            plan=str(attributes.get("Plan", "free")),
        ),
    )


def declare_shop(app: feats.App | feats.aio.App) -> dict[str, Any]:
    """The shop's segments and features; returns the handles by name."""

    class Country:
        def shopper(self, shopper: Shopper) -> str:
            return shopper.country

    class UserId:
        def shopper(self, shopper: Shopper) -> str:
            return str(shopper.id)

    class Plan:
        OPTIONS = ("free", "beta")

        def shopper(self, shopper: Shopper) -> str:
            return shopper.plan

    class PaymentProcessor:
        @feats.App.default
        def acme(self, shopper: Shopper) -> str:
            return "charged by acme"

        def premium(self, shopper: Shopper) -> str:
            return "charged by premium"

        def aperture(self, shopper: Shopper) -> str:
            return "charged by aperture"

    def new_checkout(shopper: Shopper) -> bool:
        return shopper.plan == "beta"

    class Limit:
        @feats.App.default
        def standard(self, shopper: Shopper) -> int:
            return 10

        def none(self, shopper: Shopper) -> int:
            return 0

        def high(self, shopper: Shopper) -> int:
            return 100

    class Discount:
        @feats.App.default
        def nothing(self, shopper: Shopper) -> float:
            return 0.0

        def half(self, shopper: Shopper) -> float:
            return 0.5

    class Banner:
        @feats.App.default
        def plain(self, shopper: Shopper) -> dict[str, Any]:
            return {}

        def sale(self, shopper: Shopper) -> dict[str, Any]:
            return dict(SALE_BANNER)

    class Receipt:
        @feats.App.default
        def paper(self, shopper: Shopper) -> PaperReceipt:
            return PaperReceipt()

        def email(self, shopper: Shopper) -> PaperReceipt:
            return PaperReceipt()

    class Widget:
        @feats.App.default
        def tidy(self, shopper: Shopper) -> Any:
            return {"size": 1}

        def messy(self, shopper: Shopper) -> Any:
            return PaperReceipt()

    class Flaky:
        @feats.App.default
        def steady(self, shopper: Shopper) -> int:
            return 1

        def broken(self, shopper: Shopper) -> int:
            raise RuntimeError("the broken implementation broke")

    class Theme:
        """Takes no inputs: callable without FeatsProvider(inputs=...)."""

        @feats.App.default
        def light(self) -> dict[str, str]:
            return {"background": "white"}

        def dark(self) -> dict[str, str]:
            return {"background": "black"}

    handles: dict[str, Any] = {}
    for segment in (Country, UserId, Plan):
        handles[segment.__name__] = app.segment(segment)
    for feature in (PaymentProcessor, Limit, Discount, Banner, Receipt, Widget, Flaky, Theme):
        handles[feature.__name__] = app.feature(feature)
    handles["new_checkout"] = app.boolean(new_checkout)
    return handles
