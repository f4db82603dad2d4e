"""FeatsProvider beyond the conformance scenarios: async implementations, lifecycle choices,
context conversion, declared types, and the optional packages staying optional."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional, TypedDict

import pytest
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode, InvalidContextError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagType, Reason

import feats
import feats.aio
import feats.contrib
import feats.contrib.opentelemetry
import feats.contrib.prometheus
import feats.openfeature
from feats import Implementation
from feats.openfeature import FeatsProvider
from feats.openfeature._context import segment_text, segment_values
from feats.openfeature._values import answers, typed_value
from tests.conformance._shop import Shopper, declare_shop, shopper_inputs


def test_public_names_are_pinned() -> None:
    assert feats.openfeature.__all__ == ["FeatsProvider", "Inputs"]
    assert feats.contrib.__all__ == []
    assert feats.contrib.opentelemetry.__all__ == [
        "CONTEXT_ID",
        "ERROR_MESSAGE",
        "ERROR_TYPE",
        "EVENT_NAME",
        "KEY",
        "PROVIDER_NAME",
        "REASON",
        "VALUE",
        "VARIANT",
        "VERSION",
        "EvaluationEvents",
        "evaluation_attributes",
        "openfeature_hook",
    ]
    assert feats.contrib.prometheus.__all__ == [
        "PROPAGATION_BUCKETS",
        "STATES",
        "FeatsCollector",
        "exposition",
    ]
    for module in (feats.openfeature, feats.contrib.opentelemetry, feats.contrib.prometheus):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_import_feats_imports_no_optional_package() -> None:
    # Not "opentelemetry": redis-py's observability module imports it whenever it is installed.
    optional = (
        "openfeature",
        "prometheus_client",
        "feats.openfeature",
        "feats.contrib.opentelemetry",
        "feats.contrib.prometheus",
    )
    code = (
        "import sys, feats, feats.aio\n"
        f"loaded = [name for name in {optional!r} if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- asyncio Apps and async implementations ------------------------------------------------


def declare_async_quote(app: feats.aio.App) -> Any:
    class Quote:
        @feats.aio.App.default
        async def cheap(self, shopper: Shopper) -> dict[str, Any]:
            return {"price": 1}

        def fast(self, shopper: Shopper) -> dict[str, Any]:
            return {"price": 2}

    return app.feature(Quote)


async def test_async_resolves_await_async_implementations_sync_ones_say_why_not() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    declare_shop(app)
    declare_async_quote(app)
    async with app:
        provider = FeatsProvider(app, inputs=shopper_inputs, owns_app=False)
        awaited = await provider.resolve_object_details_async("Quote", {})
        assert (awaited.value, awaited.variant, awaited.error_code) == ({"price": 1}, "cheap", None)
        refused = provider.resolve_object_details("Quote", {"fallback": True})
        assert refused.value == {"fallback": True}
        assert refused.error_code is ErrorCode.GENERAL
        assert refused.error_message is not None and "async" in refused.error_message
        await app.admin.set_state(
            "Quote", feats.FeatureState(rules={None: feats.Static("fast")}), author="t", reason=""
        )
        assert provider.resolve_object_details("Quote", {}).value == {"price": 2}


def test_an_async_resolve_never_suspends_for_plain_implementations() -> None:
    """No await on I/O, no lock: the coroutine finishes the first time it runs."""
    app = feats.App(storage=feats.MemoryStorage())
    declare_shop(app)
    with app:
        provider = FeatsProvider(app, inputs=shopper_inputs, owns_app=False)
        for kind, key, default in (
            ("boolean", "new_checkout", False),
            ("string", "PaymentProcessor", "none"),
            ("integer", "Limit", 1),
            ("float", "Discount", 0.5),
            ("object", "Banner", {}),
            ("string", "Nonexistent", "none"),
        ):
            coroutine = getattr(provider, f"resolve_{kind}_details_async")(
                key, default, EvaluationContext("7", {"Country": "CA"})
            )
            with pytest.raises(StopIteration) as finished:
                coroutine.send(None)
            sync = getattr(provider, f"resolve_{kind}_details")(
                key, default, EvaluationContext("7", {"Country": "CA"})
            )
            assert finished.value.value == sync, key


async def test_an_aio_provider_made_in_the_loop_starts_its_app_from_another_thread() -> None:
    """set_provider() initializes on the SDK's thread: the App starts on its own loop."""
    import asyncio

    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    declare_shop(app)
    provider = FeatsProvider(app)
    await asyncio.to_thread(provider.initialize, EvaluationContext())
    assert app.status.live
    await asyncio.to_thread(provider.shutdown)
    assert app.status.closed


async def test_initialize_on_the_apps_own_loop_is_refused_unless_the_app_runs() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    declare_shop(app)
    provider = FeatsProvider(app)
    with pytest.raises(Exception, match="own event loop"):
        provider.initialize(EvaluationContext())
    async with app:
        provider.initialize(EvaluationContext())  # already running: nothing to start
        assert app.status.live


# -- lifecycle choices ----------------------------------------------------------------------


def test_a_provider_that_does_not_own_the_app_neither_starts_nor_closes_it() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    declare_shop(app)
    provider = FeatsProvider(app, owns_app=False)
    with pytest.raises(ProviderNotReadyError, match="PROVIDER_READY follows"):
        provider.initialize(EvaluationContext())
    assert app.status.state == "initializing"
    not_ready = provider.resolve_string_details("PaymentProcessor", "none")
    assert not_ready.error_code is ErrorCode.PROVIDER_NOT_READY
    with app:
        provider.initialize(EvaluationContext())
        provider.shutdown()
        assert app.status.live
        assert provider.resolve_string_details("PaymentProcessor", "none").value == "acme"


def test_a_closed_app_answers_its_last_configuration_as_stale() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    declare_shop(app)
    provider = FeatsProvider(app)
    provider.initialize(EvaluationContext())
    app.admin.set_state(
        "Limit", feats.FeatureState(rules={None: feats.Static("high")}), author="t", reason=""
    )
    provider.shutdown()
    details = provider.resolve_string_details("Limit", "none")
    assert (details.value, details.reason) == ("high", Reason.STALE)


# -- inputs ---------------------------------------------------------------------------------


def test_inputs_errors_are_reported_with_their_code() -> None:
    def refuse(feature: str, context: EvaluationContext) -> Sequence[Any]:
        raise InvalidContextError("a shopper needs a Country")

    def too_many(feature: str, context: EvaluationContext) -> Sequence[Any]:
        return (Shopper(1, "CA"), Shopper(2, "US"))

    app = feats.App(storage=feats.MemoryStorage())
    declare_shop(app)
    with app:
        refused = FeatsProvider(app, inputs=refuse, owns_app=False).resolve_integer_details(
            "Limit", 3
        )
        assert (refused.value, refused.error_code) == (3, ErrorCode.INVALID_CONTEXT)
        assert refused.error_message == "a shopper needs a Country"
        wrong = FeatsProvider(app, inputs=too_many, owns_app=False).resolve_integer_details(
            "Limit", 3
        )
        assert wrong.error_code is ErrorCode.GENERAL
        assert wrong.error_message is not None and "2 argument(s)" in wrong.error_message


def test_a_custom_targeting_segment() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    handles = declare_shop(app)
    with app:
        app.admin.set_state(
            "Limit",
            feats.FeatureState(
                segments=[handles["Country"]], rules={("CA",): feats.Static("high")}
            ),
            author="t",
            reason="",
        )
        provider = FeatsProvider(app, targeting_key="Country", owns_app=False)
        assert (
            provider.resolve_string_details("Limit", "x", EvaluationContext("CA")).value == "high"
        )
        ignored = FeatsProvider(app, targeting_key=None, owns_app=False)
        details = ignored.resolve_string_details("Limit", "x", EvaluationContext("CA"))
        assert (details.value, details.reason) == ("standard", Reason.DEFAULT)


# -- contexts and declared types ------------------------------------------------------------


def test_context_values_become_segment_text() -> None:
    import datetime

    assert segment_text("CA") == "CA"
    assert segment_text(42) == "42"
    assert segment_text(1.5) == "1.5"
    assert segment_text(True) == "true"
    assert segment_text(False) == "false"
    assert segment_text(None) is None
    assert segment_text(datetime.datetime(2024, 1, 1)) is None
    assert segment_text(["CA"]) is None
    assert segment_values(None, "UserId") == {}
    assert segment_values(EvaluationContext("7", {"Country": "CA"}), "UserId") == {
        "UserId": "7",
        "Country": "CA",
    }
    assert segment_values(EvaluationContext("", {}), "UserId") == {}


class Card(TypedDict):
    title: str


def implementation(returns: Any) -> Implementation:
    def function() -> Any:
        return None

    function.__annotations__["return"] = returns
    return Implementation("x", function, False, None, getattr(returns, "__name__", "x"))


@pytest.mark.parametrize(
    ("returns", "kinds"),
    [
        (int, {FlagType.INTEGER, FlagType.FLOAT}),
        (float, {FlagType.FLOAT}),
        (bool, set()),
        (str, set()),
        (dict[str, Any], {FlagType.OBJECT}),
        (list[int], {FlagType.OBJECT}),
        (Mapping[str, int], {FlagType.OBJECT}),
        (Optional[dict[str, Any]], {FlagType.OBJECT}),  # noqa: UP045 (the typing spelling too)
        (int | None, {FlagType.INTEGER, FlagType.FLOAT}),
        (Card, {FlagType.OBJECT}),
        (Any, {FlagType.OBJECT}),
        (tuple[int, int], set()),
        (Shopper, set()),
    ],
)
def test_declared_return_types_decide_what_a_resolution_may_answer(
    returns: Any, kinds: set[FlagType]
) -> None:
    declared = {
        kind
        for kind in (FlagType.INTEGER, FlagType.FLOAT, FlagType.OBJECT)
        if answers(implementation(returns), kind)
    }
    assert declared == kinds


def test_returned_values_are_checked_at_run_time() -> None:
    assert typed_value(3, FlagType.FLOAT) == (True, 3.0)
    assert typed_value(True, FlagType.INTEGER) == (False, None)
    assert typed_value({"a": [1, {"b": None}]}, FlagType.OBJECT) == (True, {"a": [1, {"b": None}]})
    assert typed_value({"a": object()}, FlagType.OBJECT) == (False, None)
    assert typed_value({1: "a"}, FlagType.OBJECT) == (False, None)
    assert typed_value((1, 2), FlagType.OBJECT) == (False, None)
    deep: list[Any] = []
    for _ in range(100):
        deep = [deep]
    assert typed_value(deep, FlagType.OBJECT) == (False, None)
