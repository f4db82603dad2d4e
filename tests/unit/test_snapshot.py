"""app.snapshot(): one configuration for everything evaluated inside it, in both shells;
contexts without one read the current configuration, and nothing is left installed."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

import feats
import feats.aio


@dataclass(frozen=True)
class User:
    id: int
    country: str = "CA"


def route_ca(segment: Any, implementation: str) -> feats.FeatureState:
    return feats.FeatureState(segments=[segment], rules={("CA",): feats.Static(implementation)})


def declare(app: feats.App) -> tuple[Any, type[feats.FeatureClass[[User], str]]]:
    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    class PaymentProcessor(feats.FeatureClass[[User], str], app=app):
        @app.default
        def acme(self, user: User) -> str:
            return "acme"

        def premium(self, user: User) -> str:
            return "premium"

    return Country, PaymentProcessor


def test_inside_a_snapshot_a_change_is_not_seen_until_it_ends() -> None:
    app = feats.App()
    country, processor = declare(app)

    @app.boolean
    def Banner(user: User) -> bool:
        return False

    with app:
        with app.snapshot():
            app.admin.set_state(processor, route_ca(country, "premium"), author="t", reason="")
            app.admin.set_state(
                Banner,
                feats.FeatureState(rules={None: feats.Static("enabled")}),
                author="t",
                reason="",
            )
            assert processor.create(User(1)) == "acme"
            assert processor.find_implementation(User(1)) == "acme"
            assert processor.explain(User(1)).implementation == "acme"
            assert Banner.is_enabled(User(1)) is False
            assert app.admin.get_state(processor) is not None  # the admin reads storage
        assert processor.create(User(1)) == "premium"
        assert Banner.is_enabled(User(1)) is True


def test_snapshots_nest_and_leave_nothing_installed() -> None:
    app = feats.App()
    country, processor = declare(app)
    handle = processor._handle
    with app:
        assert handle._core is app._core
        with app.snapshot():
            assert handle._core is not app._core  # the view, while a snapshot is held
            with app.snapshot():
                app.admin.set_state(processor, route_ca(country, "premium"), author="t", reason="")
                assert processor.create(User(1)) == "acme"
            assert processor.create(User(1)) == "acme"  # the outer one still holds
        assert handle._core is app._core  # unpinned again: the hot path reads the core
        assert processor.create(User(1)) == "premium"


def test_other_threads_read_the_current_configuration_meanwhile() -> None:
    app = feats.App()
    country, processor = declare(app)
    seen: list[str] = []
    with app, app.snapshot():
        app.admin.set_state(processor, route_ca(country, "premium"), author="t", reason="")
        thread = threading.Thread(target=lambda: seen.append(processor.create(User(1))))
        thread.start()
        thread.join(timeout=10)
        assert processor.create(User(1)) == "acme"
    assert seen == ["premium"]


def test_a_feature_declared_after_the_snapshot_answers_from_the_current_one() -> None:
    app = feats.App()
    declare(app)
    with app, app.snapshot():

        class Late(feats.FeatureClass[[User], str], app=app):
            @app.default
            def only(self, user: User) -> str:
                return "only"

        assert Late.create(User(1)) == "only"


async def test_the_aio_snapshot_holds_across_awaits_and_tasks() -> None:
    app = feats.aio.App()

    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    class PaymentProcessor(feats.aio.FeatureClass[[User], str], app=app):
        @app.default
        def acme(self, user: User) -> str:
            return "acme"

        async def premium(self, user: User) -> str:
            return "premium"

    async with app:
        with app.snapshot():
            first = await PaymentProcessor.create(User(1))
            await app.admin.set_state(
                PaymentProcessor, route_ca(Country, "premium"), author="t", reason=""
            )
            await asyncio.sleep(0)
            # A task started inside the snapshot inherits it (contextvars).
            child = await asyncio.create_task(PaymentProcessor.create(User(1)))
            assert (first, await PaymentProcessor.create(User(1)), child) == ("acme",) * 3
        assert await PaymentProcessor.create(User(1)) == "premium"


def test_two_apps_pin_independently() -> None:
    one, two = feats.App(), feats.App()
    country_one, first = declare(one)
    country_two, second = declare(two)
    with one, two, one.snapshot():
        one.admin.set_state(first, route_ca(country_one, "premium"), author="t", reason="")
        two.admin.set_state(second, route_ca(country_two, "premium"), author="t", reason="")
        assert (first.create(User(1)), second.create(User(1))) == ("acme", "premium")
