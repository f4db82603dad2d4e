"""feature_flag.evaluation events, read back from the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)

import feats
import feats.aio
from feats.contrib.opentelemetry import EvaluationEvents, openfeature_hook
from feats.openfeature import FeatsProvider
from tests.conformance._shop import Shopper, declare_shop, shopper_inputs
from tests.servers import RedisServer, redis_server_available

SEMCONV_NAMES = {
    "feature_flag.key",
    "feature_flag.result.variant",
    "feature_flag.result.value",
    "feature_flag.result.reason",
    "feature_flag.provider.name",
    "feature_flag.version",
    "feature_flag.context.id",
    "error.type",
    "error.message",
}


class MemoryExporter(LogRecordExporter):
    """The SDK's InMemoryLogRecordExporter, typed (its __init__ has no annotations)."""

    def __init__(self) -> None:
        self.records: list[ReadableLogRecord] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.records.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def get_finished_logs(self) -> list[ReadableLogRecord]:
        return list(self.records)

    def clear(self) -> None:
        self.records.clear()


class Telemetry:
    """An SDK logger provider whose records land in memory."""

    def __init__(self) -> None:
        self.exporter = MemoryExporter()
        self.provider = LoggerProvider()
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))

    def events(self) -> list[dict[str, Any]]:
        records = [finished.log_record for finished in self.exporter.get_finished_logs()]
        for record in records:
            assert record.event_name == "feature_flag.evaluation"
            assert record.attributes is not None
            assert set(record.attributes) <= SEMCONV_NAMES, set(record.attributes)
        return [dict(record.attributes or {}) for record in records]

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.provider.shutdown()


@pytest.fixture
def shop() -> Iterator[tuple[feats.App, dict[str, Any]]]:
    app = feats.App(storage=feats.MemoryStorage())
    handles = declare_shop(app)
    with app:
        yield app, handles


def configure(app: feats.App, handles: dict[str, Any]) -> dict[str, str]:
    """Every reason there is: a rule, a split, a static fallthrough, nothing, an experiment."""
    versions = {
        "PaymentProcessor": app.admin.set_state(
            "PaymentProcessor",
            feats.FeatureState(
                segments=[handles["Country"]],
                rules={
                    ("CA",): feats.Static("premium"),
                    ("US",): feats.Rollout(handles["UserId"], {"aperture": 50, "acme": 50}),
                    None: feats.Static("acme"),
                },
            ),
            author="t",
            reason="",
        ),
        "Banner": app.admin.set_state(
            "Banner",
            feats.FeatureState(
                rules={None: feats.Experiment(handles["UserId"], {"plain": 50, "sale": 50})}
            ),
            author="t",
            reason="",
        ),
    }
    return versions


def test_the_listener_emits_one_event_per_evaluation_with_semconv_attributes(
    shop: tuple[feats.App, dict[str, Any]], telemetry: Telemetry
) -> None:
    app, handles = shop
    versions = configure(app, handles)
    events = EvaluationEvents(logger_provider=telemetry.provider)
    app.add_evaluation_listener(events)
    processor, banner, checkout = (
        handles["PaymentProcessor"],
        handles["Banner"],
        handles["new_checkout"],
    )
    processor.create(Shopper(1, "CA"))
    processor.find_implementation(Shopper(2, "US"))
    processor.create(Shopper(3, "GB"))
    banner.create(Shopper(4, "GB"))
    checkout.is_enabled(Shopper(5, "GB", "beta"))
    app.remove_evaluation_listener(events)
    processor.create(Shopper(6, "CA"))
    us = processor.find_implementation(Shopper(2, "US"))
    sale = banner.find_implementation(Shopper(4, "GB"))
    assert telemetry.events() == [
        {
            "feature_flag.key": "PaymentProcessor",
            "feature_flag.result.variant": "premium",
            "feature_flag.result.reason": "targeting_match",
            "feature_flag.provider.name": "feats",
            "feature_flag.version": versions["PaymentProcessor"],
        },
        {
            "feature_flag.key": "PaymentProcessor",
            "feature_flag.result.variant": us,
            "feature_flag.result.reason": "split",
            "feature_flag.provider.name": "feats",
            "feature_flag.version": versions["PaymentProcessor"],
        },
        {
            "feature_flag.key": "PaymentProcessor",
            "feature_flag.result.variant": "acme",
            "feature_flag.result.reason": "static",
            "feature_flag.provider.name": "feats",
            "feature_flag.version": versions["PaymentProcessor"],
        },
        {
            "feature_flag.key": "Banner",
            "feature_flag.result.variant": sale,
            "feature_flag.result.reason": "split",
            "feature_flag.provider.name": "feats",
            "feature_flag.version": versions["Banner"],
        },
        {
            "feature_flag.key": "new_checkout",
            "feature_flag.result.variant": "default",
            "feature_flag.result.reason": "default",
            "feature_flag.provider.name": "feats",
        },
    ]


def test_no_user_identifier_unless_a_segment_is_named(
    shop: tuple[feats.App, dict[str, Any]], telemetry: Telemetry
) -> None:
    app, handles = shop
    configure(app, handles)
    anonymous = EvaluationEvents(logger_provider=telemetry.provider)
    app.add_evaluation_listener(anonymous)
    handles["PaymentProcessor"].create(Shopper(42, "US"))
    app.remove_evaluation_listener(anonymous)
    named = EvaluationEvents(logger_provider=telemetry.provider, context_id_segment="UserId")
    app.add_evaluation_listener(named)
    handles["PaymentProcessor"].create(Shopper(42, "US"))
    handles["PaymentProcessor"].create(Shopper(43, "CA"))  # the CA rule never reads UserId
    first, second, third = telemetry.events()
    assert "feature_flag.context.id" not in first
    assert "42" not in first.values()
    assert second["feature_flag.context.id"] == "42"
    assert "feature_flag.context.id" not in third


def test_drift_is_an_error_with_its_reason(telemetry: Telemetry) -> None:
    storage = feats.MemoryStorage()
    app = feats.App(storage=storage)
    handles = declare_shop(app)
    record = {
        "schema": 1,
        "feature": "Limit",
        "state": {
            "segments": [],
            "rules": [{"key": None, "selector": {"type": "static", "implementation": "huge"}}],
        },
        "author": "other code",
        "reason": "",
        "time": 0,
    }
    app.add_evaluation_listener(EvaluationEvents(logger_provider=telemetry.provider))
    with app:
        ok, version = storage.write("Limit", json.dumps(record), None)
        assert ok
        app.wait_for_version(version, timeout=5)
        handles["Limit"].create(Shopper(1, "CA"))
    (drift,) = telemetry.events()
    assert drift["feature_flag.result.reason"] == "error"
    assert drift["error.type"] == "general"
    assert "huge" in str(drift["error.message"])
    assert drift["feature_flag.result.variant"] == "standard"


@pytest.mark.redis
@pytest.mark.skipif(not redis_server_available(), reason="needs a redis-server binary")
def test_a_stale_app_gives_the_stale_reason(telemetry: Telemetry) -> None:
    """A redis-server of this test's own is killed: the listener and the hook both say
    ``stale`` while the last configuration still answers, at its version."""
    with RedisServer(name="otel-stale") as server:
        client = server.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            app = feats.App(
                storage=feats.RedisStorage(redis=client, namespace="otel-stale", block_ms=300),
                block_ms=300,
            )
            handles = declare_shop(app)
            versions = configure(app, handles)
            stale = threading.Event()

            def on_status(status: feats.Status) -> None:
                if status.state == "stale":
                    stale.set()

            app.add_status_listener(on_status)
            app.add_evaluation_listener(EvaluationEvents(logger_provider=telemetry.provider))
            with app:
                for version in versions.values():
                    app.wait_for_version(version, timeout=10)
                api.set_provider_and_wait(
                    FeatsProvider(app, inputs=shopper_inputs, owns_app=False), domain="otel-stale"
                )
                try:
                    of_client = api.get_client("otel-stale")
                    of_client.add_hooks([openfeature_hook(logger_provider=telemetry.provider)])
                    context = EvaluationContext("1", {"Country": "CA"})
                    shopper = Shopper(1, "CA")
                    handles["PaymentProcessor"].create(shopper)
                    assert of_client.get_string_value("PaymentProcessor", "none", context) == (
                        "premium"
                    )
                    server.kill()
                    assert stale.wait(timeout=15), app.status
                    handles["PaymentProcessor"].create(shopper)
                    assert of_client.get_string_value("PaymentProcessor", "none", context) == (
                        "premium"
                    )
                finally:
                    api.shutdown()
        finally:
            client.close()
    live_listener, live_hook, stale_listener, stale_hook = telemetry.events()
    expected = {
        "feature_flag.key": "PaymentProcessor",
        "feature_flag.result.variant": "premium",
        "feature_flag.provider.name": "feats",
        "feature_flag.version": versions["PaymentProcessor"],
    }
    live = {**expected, "feature_flag.result.reason": "targeting_match"}
    assert live_listener == live_hook == live
    assert stale_listener == stale_hook == {**expected, "feature_flag.result.reason": "stale"}


def test_the_openfeature_hook_emits_successes_and_errors(
    shop: tuple[feats.App, dict[str, Any]], telemetry: Telemetry
) -> None:
    app, handles = shop
    versions = configure(app, handles)
    api.set_provider_and_wait(
        FeatsProvider(app, inputs=shopper_inputs, owns_app=False), domain="otel-hook"
    )
    try:
        client = api.get_client("otel-hook")
        client.add_hooks([openfeature_hook(logger_provider=telemetry.provider)])
        context = EvaluationContext("42", {"Country": "CA"})
        client.get_string_value("PaymentProcessor", "none", context)
        client.get_integer_value("PaymentProcessor", 1, context)
        client.get_boolean_value("Nonexistent", False, context)
        named = api.get_client("otel-hook")
        named.add_hooks(
            [openfeature_hook(logger_provider=telemetry.provider, include_targeting_key=True)]
        )
        named.get_string_value("PaymentProcessor", "none", context)
    finally:
        api.shutdown()
    match, mismatch, missing, with_key = telemetry.events()
    assert match == {
        "feature_flag.key": "PaymentProcessor",
        "feature_flag.result.variant": "premium",
        "feature_flag.result.reason": "targeting_match",
        "feature_flag.provider.name": "feats",
        "feature_flag.version": versions["PaymentProcessor"],
    }
    assert mismatch["error.type"] == "type_mismatch"
    assert mismatch["feature_flag.result.reason"] == "error"
    assert mismatch["feature_flag.result.value"] == 1
    assert "declared to return str" in str(mismatch["error.message"])
    assert missing["error.type"] == "flag_not_found"
    for event in (match, mismatch, missing):
        assert "feature_flag.context.id" not in event
    assert with_key["feature_flag.context.id"] == "42"


def test_the_listener_and_the_provider_give_the_same_reasons(
    shop: tuple[feats.App, dict[str, Any]], telemetry: Telemetry
) -> None:
    """The same inputs through create() and through OpenFeature: one vocabulary."""
    app, handles = shop
    configure(app, handles)
    app.add_evaluation_listener(EvaluationEvents(logger_provider=telemetry.provider))
    provider = FeatsProvider(app, owns_app=False, record_exposures=False)
    shoppers = [
        Shopper(number, country) for number in range(1, 6) for country in ("CA", "US", "GB")
    ]
    resolved = []
    for shopper in shoppers:
        handles["PaymentProcessor"].find_implementation(shopper)
        details = provider.resolve_string_details(
            "PaymentProcessor",
            "none",
            EvaluationContext(str(shopper.id), {"Country": shopper.country}),
        )
        resolved.append((details.variant, str(details.reason).lower()))
    listened = [
        (event["feature_flag.result.variant"], event["feature_flag.result.reason"])
        for event in telemetry.events()
    ]
    assert listened == resolved


async def test_the_listener_on_an_asyncio_app(telemetry: Telemetry) -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    handles = declare_shop(app)
    app.add_evaluation_listener(EvaluationEvents(logger_provider=telemetry.provider))
    async with app:
        assert await handles["Limit"].create(Shopper(1, "CA")) == 10
    (event,) = telemetry.events()
    assert event["feature_flag.key"] == "Limit"
    assert event["feature_flag.result.reason"] == "default"
