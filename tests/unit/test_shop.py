"""The shared shop model: one declaration of the seed's shop, fresh handles per App."""

from __future__ import annotations

import pytest

import feats
import feats.aio
from feats._cli._shop import (
    FEATURES,
    SEGMENTS,
    SHOP,
    AcmeProcessor,
    Address,
    ApertureProcessor,
    User,
    declare,
    user,
)


def test_the_default_shop_is_the_seeds() -> None:
    app = feats.App()
    shop = declare(app)
    assert list(app.registry.segments) == list(SEGMENTS)
    assert [d.name for d in app.registry] == [f for f in FEATURES if f in SHOP]
    assert "Checkout" not in shop.features
    assert shop.Country.OPTIONS == ("US", "CA", "GB", "DE", "MX", "FR")
    assert shop.PaymentProcessor.valid_segments() == list(SEGMENTS)
    with app:
        assert shop.PaymentProcessor.create(user(1, "CA")) == "acme"
        assert isinstance(shop.PaymentProcessor.create(user(1)), AcmeProcessor)
        assert shop.ImageProcessing.is_enabled(user(1)) is True
        assert shop.ConfirmText.create(User(1, "DE", language="de")) == "Absenden"


def test_parts_and_knobs() -> None:
    app = feats.aio.App()
    shop = declare(app, ("Country", "UserId", "Checkout"), country_options=None)
    assert list(shop.segments) == ["Country", "UserId"]
    assert shop.Country.OPTIONS is None
    assert shop.Checkout.implementations == ("classic", "express", "oneclick")
    with pytest.raises(LookupError, match="PaymentProcessor is not declared in this shop"):
        shop.PaymentProcessor  # noqa: B018
    with pytest.raises(ValueError, match="not parts of the shop: Nope"):
        declare(feats.App(), ("Nope",))
    seed = declare(feats.App(), ("UserDevice", "PaymentProcessor"), device_reads_user=False)
    assert seed.PaymentProcessor.valid_segments() == []


def test_each_app_gets_handles_of_its_own() -> None:
    one, two = feats.App(), feats.App()
    assert declare(one).PaymentProcessor is not declare(two).PaymentProcessor


def test_the_business_objects() -> None:
    assert User(7, "CA") == User(7, Address("CA", "QC"))
    assert User(7, "CA").country == "CA" and User(7, "CA").name == "user7"
    assert user(2, "US").address == Address("US", "WA")
    processor = ApertureProcessor()
    assert processor == "aperture" and repr(processor) == "ApertureProcessor()"
    assert processor.charge(40.0) == "Aperture charged $40.00 (fee $0.40)"
