"""The shared shop model: one declaration of the seed's shop, fresh handles per App."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import feats
import feats.aio
from feats._catalog import declarations_document
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


# -- examples/shop.py: the shop model's features, in the typed form ---------------------------

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _examples_shop(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """examples/shop.py, imported afresh on memory (as the examples run without Redis)."""
    monkeypatch.delenv("FEATS_REDIS_URL", raising=False)
    spec = importlib.util.spec_from_file_location("examples_shop", EXAMPLES / "shop.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _without_feature_modules(document: dict[str, Any]) -> dict[str, Any]:
    """The declarations, less the module each feature was declared in (the model's or the
    example's); the types, names, docs, defaults and segments all stay."""
    return {
        **document,
        "features": [
            {key: value for key, value in feature.items() if key != "module"}
            for feature in document["features"]
        ],
    }


def test_examples_shop_declares_what_the_shop_model_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = _examples_shop(monkeypatch)
    model = feats.aio.App()
    declare(model)
    declared = declarations_document(example.app.registry)
    assert _without_feature_modules(declared) == _without_feature_modules(
        declarations_document(model.registry)
    )
    # Segments are the model's own; the features are declared in the example, typed.
    assert declared["segments"] == declarations_document(model.registry)["segments"]
    assert {feature["module"] for feature in declared["features"]} == {"examples_shop"}
    for name in ("PaymentProcessor", "AllowedPriorities", "ConfirmText"):
        assert issubclass(getattr(example, name), feats.aio.FeatureClass), name
    assert isinstance(example.ImageProcessing, feats.aio.Boolean)


async def test_examples_shop_answers_as_the_shop_model(monkeypatch: pytest.MonkeyPatch) -> None:
    example = _examples_shop(monkeypatch)
    customer = User(1, "DE", language="de")
    async with example.app:
        assert isinstance(await example.PaymentProcessor.create(customer), AcmeProcessor)
        assert await example.AllowedPriorities.create(customer) == []
        assert await example.ConfirmText.create(customer) == "Absenden"
        assert await example.ImageProcessing.is_enabled(customer) is True
        assert example.PaymentProcessor.valid_segments() == list(SEGMENTS)


def test_the_readme_shop_listings_features_are_examples_shop_code() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("### The shop the stories run on") :]
    listing = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    features = listing[listing.index("class PaymentProcessor(") :]
    assert features.count("FeatureClass[") == 3
    assert features in (EXAMPLES / "shop.py").read_text(), (
        "the README's shop features are not examples/shop.py's code"
    )
