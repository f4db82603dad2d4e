"""The typed class form, FeatureClass[[Inputs], Result] with app=, at run time (the type
checkers' side is tests/typing): it declares the same feature the decorator does, and
feats checks what type checkers cannot."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import feats
import feats.aio
from feats._handles import FeatureHandleBase


@dataclass(frozen=True)
class User:
    id: int
    country: str = "US"


@dataclass(frozen=True)
class Order:
    total: float


class Processor:
    pass


class Acme(Processor):
    pass


def test_the_class_is_the_feature_under_its_own_name() -> None:
    app = feats.App()

    class PaymentProcessor(feats.FeatureClass[[User], Processor], app=app):
        """Who charges the card."""

        @app.default
        def acme(self, user: User) -> Acme:
            return Acme()

        def premium(self, user: User) -> Processor:
            return Processor()

    handle: FeatureHandleBase = PaymentProcessor  # what the admin takes, for type checkers
    assert handle.name == "PaymentProcessor"
    assert PaymentProcessor.name == "PaymentProcessor"
    assert PaymentProcessor.implementations == ("acme", "premium")
    assert PaymentProcessor.default == "acme"
    assert PaymentProcessor.declaration.doc == "Who charges the card."
    assert app.registry.features["PaymentProcessor"].input_types == (User,)
    assert isinstance(PaymentProcessor.create(User(1)), Acme)
    with app:
        app.admin.set_state(
            PaymentProcessor,
            feats.FeatureState(rules={None: feats.Static("premium")}),
            author="t",
            reason="",
        )
        assert type(PaymentProcessor.create(User(1))) is Processor
        assert PaymentProcessor.find_implementation(User(1)) == "premium"
        assert PaymentProcessor.explain(User(1)).reason == "the only rule: static premium"
        assert app.admin.get_state(PaymentProcessor) == app.admin.get_state("PaymentProcessor")


def test_implementations_are_unreachable_from_the_class_but_siblings_can_call() -> None:
    app = feats.App()

    class Greeting(feats.FeatureClass[[User], str], app=app):
        @app.default
        def plain(self, user: User) -> str:
            return "hello"

        def loud(self, user: User) -> str:
            return self.plain(user).upper() + self._suffix()

        def _suffix(self) -> str:
            return "!"

    with pytest.raises(AttributeError, match=r"Greeting\.plain cannot be called directly"):
        Greeting.plain  # noqa: B018
    with override_loud(app):
        assert Greeting.create(User(1)) == "HELLO!"


def override_loud(app: feats.App) -> feats.testing.override:
    import feats.testing

    return feats.testing.override(app, Greeting="loud")


async def test_the_aio_class_awaits_async_implementations() -> None:
    app = feats.aio.App()

    class Shipping(feats.aio.FeatureClass[[User, Order], float], app=app):
        @app.default
        async def standard(self, user: User, order: Order) -> float:
            return 4.99

        def free(self, user: User, order: Order) -> float:
            return 0.0

    assert await Shipping.create(User(1), Order(10.0)) == 4.99
    async with app:
        await app.admin.set_state(
            Shipping, feats.FeatureState(rules={None: feats.Static("free")}), author="t", reason=""
        )
        assert await Shipping.create(User(1), Order(10.0)) == 0.0
        await Shipping.used_implementation("standard", User(1), Order(1.0))
        with pytest.raises(TypeError, match="takes 2 argument"):
            Shipping.find_implementation(User(1))  # type: ignore[call-arg]  # the mistake tested


def test_the_types_in_brackets_must_be_the_implementations() -> None:
    app = feats.App()
    with pytest.raises(feats.DeclarationError, match=r"declared as taking \(Order\)"):

        class Wrong(feats.FeatureClass[[Order], str], app=app):
            @app.default
            def one(self, user: User) -> str:
                return ""

    with pytest.raises(feats.DeclarationError, match=r"Late\.two: returns int, but Late is"):

        class Late(feats.FeatureClass[[User], str], app=app):
            @app.default
            def one(self, user: User) -> str:
                return ""

            def two(self, user: User) -> int:
                return 2

    with pytest.raises(feats.DeclarationError, match="answers create itself"):

        class Clash(feats.FeatureClass[[User], str], app=app):
            @app.default
            def create(self, user: User) -> str:  # type: ignore[override]  # the mistake tested
                return ""

    assert not app.registry.features  # a rejected class leaves nothing declared


def test_the_app_keyword_names_the_right_shell() -> None:
    # mypy and pyright report both; at run time they fail at the class statement.
    with pytest.raises(TypeError, match=r"names the sync feats\.App"):

        class Wrong(feats.FeatureClass[[User], str], app=feats.aio.App()):  # type: ignore[arg-type]  # the mistake tested
            def one(self, user: User) -> str:
                return ""

    with pytest.raises(TypeError, match="app"):

        class Missing(feats.aio.FeatureClass[[User], str]):  # type: ignore[call-arg]  # tested
            def one(self, user: User) -> str:
                return ""


def test_the_decorator_form_keeps_working_beside_it() -> None:
    app = feats.App()

    @app.feature
    class Old:
        @app.default
        def a(self, user: User) -> str:
            return "a"

    class New(feats.FeatureClass[[User], str], app=app):
        @app.default
        def b(self, user: User) -> str:
            return "b"

    assert [feature.name for feature in app.registry] == ["Old", "New"]
    assert New.create(User(1)) == "b"
