"""The unit tests' view of the shared shop (feats/_cli/_shop.py): the seed's segments
exactly as the seed declares them (Country without OPTIONS, UserDevice reading only the
request) and PaymentProcessor, made anew for every App."""

from typing import Any, NamedTuple

import feats
import feats.aio
from feats._base import AppBase
from feats._cli._shop import (
    AcmeProcessor,
    Address,
    ApertureProcessor,
    PremiumProcessor,
    Request,
    User,
    declare,
    payment_processor_class,
    user,
)

__all__ = [
    "AcmeProcessor",
    "Address",
    "ApertureProcessor",
    "PremiumProcessor",
    "Request",
    "Segments",
    "User",
    "declare_payments",
    "declare_payments_aio",
    "declare_segments",
    "payment_processor_class",
    "payments_state",
    "user",
]


class Segments(NamedTuple):
    country: feats.SegmentHandle
    subdivision: feats.SegmentHandle
    user_id: feats.SegmentHandle
    device: feats.SegmentHandle


def declare_segments(app: feats.App | feats.aio.App) -> Segments:
    """Country, Subdivision, UserId and UserDevice exactly as the seed declares them."""
    base: AppBase[Any, Any] = app
    shop = declare(
        base,
        ("Country", "Subdivision", "UserId", "UserDevice"),
        country_options=None,
        device_reads_user=False,
    )
    return Segments(shop.Country, shop.Subdivision, shop.UserId, shop.UserDevice)


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
