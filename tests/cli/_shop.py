"""The CLI tests' view of the shared shop (feats/_cli/_shop.py): PaymentProcessor,
AllowedPriorities and ImageProcessing, segmented by Country (with OPTIONS) and UserId.

``declare(app)`` puts them on any App; ``app`` is a module-level App that has them, for
``feats --app tests.cli._shop:app``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import feats
from feats._base import AppBase
from feats._cli._shop import Address, User, user
from feats._cli._shop import declare as declare_shop

__all__ = ["Address", "Handles", "User", "app", "declare", "handles", "user"]

PARTS = ("Country", "UserId", "PaymentProcessor", "AllowedPriorities", "ImageProcessing")
COUNTRIES = ("US", "CA", "GB", "DE", "MX")


class Handles(NamedTuple):
    PaymentProcessor: Any
    AllowedPriorities: Any
    ImageProcessing: Any


def declare(app: AppBase[Any, Any]) -> Handles:
    shop = declare_shop(app, PARTS, country_options=COUNTRIES)
    return Handles(shop.PaymentProcessor, shop.AllowedPriorities, shop.ImageProcessing)


app = feats.App()
handles = declare(app)
