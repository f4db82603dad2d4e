"""Silent misuse made loud: an App evaluated before start() says so, in the log and in
explain(), in both shells; once started, the note is gone."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

import feats
import feats.aio

NEVER_STARTED = "this App was never started"


@dataclass(frozen=True)
class User:
    id: int


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "feats" and record.levelno == logging.WARNING
    ]


def test_sync_app_evaluated_before_start_warns_and_explains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = feats.MemoryStorage()
    writer = feats.App(storage=storage)
    app = feats.App(storage=storage)
    for target in (writer, app):

        class Checkout(feats.FeatureClass[[User], str], app=target):
            @target.default
            def classic(self, user: User) -> str:
                return "classic"

            def express(self, user: User) -> str:
                return "express"

    with writer:
        writer.admin.set_state(
            "Checkout",
            feats.FeatureState(rules={None: feats.Static("express")}),
            author="t",
            reason="",
        )
    caplog.clear()
    assert Checkout.create(User(1)) == "classic"  # the configured express is not loaded
    assert Checkout.create(User(2)) == "classic"
    explained = Checkout.explain(User(1))
    assert explained.reason.startswith(NEVER_STARTED), explained.reason
    assert "no configuration was loaded" in explained.reason
    logged = [message for message in warnings_of(caplog) if NEVER_STARTED in message]
    assert len(logged) == 1, logged
    with app:
        assert Checkout.create(User(1)) == "express"
        assert not Checkout.explain(User(1)).reason.startswith(NEVER_STARTED)


async def test_aio_app_evaluated_before_start_warns_and_explains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = feats.aio.App()

    class Checkout(feats.aio.FeatureClass[[User], str], app=app):
        @app.default
        def classic(self, user: User) -> str:
            return "classic"

        async def express(self, user: User) -> str:
            return "express"

    @app.boolean
    def Banner(user: User) -> bool:
        return False

    caplog.clear()
    assert await Checkout.create(User(1)) == "classic"
    assert Checkout.find_implementation(User(1)) == "classic"
    assert Checkout.explain(User(1)).reason.startswith(NEVER_STARTED)
    assert Banner.explain(User(1)).reason.startswith(NEVER_STARTED)
    assert sum(NEVER_STARTED in message for message in warnings_of(caplog)) >= 1
    async with app:
        await app.admin.set_state(
            Checkout,
            feats.FeatureState(rules={None: feats.Static("express")}),
            author="t",
            reason="",
        )
        assert await Checkout.create(User(1)) == "express"
        assert not Checkout.explain(User(1)).reason.startswith(NEVER_STARTED)
        assert not Banner.explain(User(1)).reason.startswith(NEVER_STARTED)


def test_one_warning_per_app_not_per_feature(caplog: pytest.LogCaptureFixture) -> None:
    app = feats.App()

    @app.boolean
    def One(user: User) -> bool:
        return True

    @app.boolean
    def Two(user: User) -> bool:
        return True

    caplog.clear()
    One.is_enabled(User(1))
    Two.is_enabled(User(1))
    assert sum(NEVER_STARTED in message for message in warnings_of(caplog)) == 1
