"""The web admin's tests on the shop model (feats/_cli/_shop.py), plus their own hostile
declarations.

``declare(app)`` declares the seed README's shop as the CLI, the examples and the other
suites do: Country with OPTIONS (the editors show a select of them), UserId without (a
text field). ``declare_hostile`` adds declarations whose docstrings, options and names
carry markup, for the escaping tests.
"""

from __future__ import annotations

from typing import Any, ClassVar

import feats
from feats._base import AppBase
from feats._cli import _shop
from feats._cli._shop import COUNTRIES, SEGMENTS, SHOP, Address, User, declare, user

__all__ = [
    "COUNTRIES",
    "HOSTILE_DOC",
    "HOSTILE_OPTION",
    "SHOP",
    "SHOP_FEATURES",
    "Address",
    "Shop",
    "User",
    "declare",
    "declare_hostile",
    "user",
]

Shop = _shop.Shop[feats.Feature, feats.Boolean]
"""What ``declare`` returns for the sync App the web tests serve."""

SHOP_FEATURES = tuple(name for name in SHOP if name not in SEGMENTS)
"""The features ``declare`` declares (SHOP: its segments, then these)."""

HOSTILE_DOC = '<script>alert("doc")</script><img src=x onerror=alert(1)>'
HOSTILE_OPTION = '"><script>alert("option")</script>'


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
