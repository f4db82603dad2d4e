"""The Prometheus collector, read the way Prometheus does: generate_latest, parsed back."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import feats
from feats._layout import Keys
from feats.contrib.prometheus import FeatsCollector, exposition
from tests.conformance._shop import Shopper, declare_shop
from tests.servers import FaultProxy, RedisServer, redis_server_available
from tests.servers._common import as_str

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def poll(condition: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_status_is_read_at_scrape_time(registry: CollectorRegistry) -> None:
    app = feats.App(storage=feats.MemoryStorage())
    handles = declare_shop(app)
    collector = FeatsCollector(app, labels={"namespace": "shop"})
    registry.register(collector)
    before = scrape(registry)
    assert value(before, "feats_state", namespace="shop", state="initializing") == 1.0
    assert value(before, "feats_reloads_total", namespace="shop") == 0.0
    assert "feats_configuration_version_info" not in names(before)
    with app:
        version = app.admin.set_state(
            "Banner",
            feats.FeatureState(
                rules={None: feats.Experiment(handles["UserId"], {"plain": 50, "sale": 50})}
            ),
            author="t",
            reason="",
        )
        app.wait_for_version(version, timeout=5)
        for number in range(30):
            handles["Banner"].create(Shopper(number, "CA"))
        poll(lambda: app.status.exposures_written == 30, "exposures to be written")
        live = scrape(registry)
    assert value(live, "feats_state", namespace="shop", state="live") == 1.0
    assert value(live, "feats_state", namespace="shop", state="initializing") == 0.0
    assert value(live, "feats_configuration_version_info", namespace="shop", version=version) == 1
    written = int(version.split("-")[0]) / 1000
    assert value(live, "feats_configuration_timestamp_seconds", namespace="shop") == written
    assert value(live, "feats_configuration_age_seconds", namespace="shop") >= 0.0
    assert value(live, "feats_lag_seconds", namespace="shop") == 0.0
    assert value(live, "feats_reloads_total", namespace="shop") == 1.0
    assert value(live, "feats_exposures_written_total", namespace="shop") == 30.0
    assert value(live, "feats_exposures_dropped_total", namespace="shop") == 0.0
    assert value(live, "feats_exposures_buffered", namespace="shop") == 0.0
    assert value(live, "feats_exposure_capacity", namespace="shop") == 100_000.0
    assert value(live, "feats_diverged_features", namespace="shop") == 0.0
    # The writer's own change, applied once (its tail reading it back is not a second one).
    assert value(live, "feats_propagation_seconds_count", namespace="shop") == 1.0
    assert "feats_evaluations_total" not in names(live)
    closed = scrape(registry)
    assert value(closed, "feats_state", namespace="shop", state="closed") == 1.0


def test_evaluation_counts_are_opt_in_and_hold_no_user(registry: CollectorRegistry) -> None:
    app = feats.App(storage=feats.MemoryStorage())
    handles = declare_shop(app)
    collector = FeatsCollector(app, evaluations=True)
    registry.register(collector)
    with app:
        app.admin.set_state(
            "PaymentProcessor",
            feats.FeatureState(
                segments=[handles["Country"]], rules={("CA",): feats.Static("premium")}
            ),
            author="t",
            reason="",
        )
        for number in range(5):
            handles["PaymentProcessor"].create(Shopper(number, "CA"))
        handles["PaymentProcessor"].find_implementation(Shopper(99, "US"))
        handles["new_checkout"].is_enabled(Shopper(7, "US"))
        samples = scrape(registry)
        collector.close()
        handles["PaymentProcessor"].create(Shopper(1, "CA"))
        after = scrape(registry)
    counts = {
        labels: count
        for (name, labels), count in samples.items()
        if name == "feats_evaluations_total"
    }
    assert counts == {
        (("feature", "PaymentProcessor"), ("implementation", "premium")): 5.0,
        (("feature", "PaymentProcessor"), ("implementation", "acme")): 1.0,
        (("feature", "new_checkout"), ("implementation", "default")): 1.0,
    }
    assert (
        value(
            after, "feats_evaluations_total", feature="PaymentProcessor", implementation="premium"
        )
        == 5.0
    )


def test_a_change_from_another_app_is_a_propagation_sample_and_an_outage_is_counted(
    registry: CollectorRegistry, redis_url: str, namespace: str
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultProxy(host, int(port)) as proxy:
        app = feats.App(
            storage=feats.RedisStorage(
                redis=redis.Redis.from_url(proxy.url, socket_timeout=1.0),
                namespace=namespace,
                block_ms=300,
            ),
            block_ms=300,
        )
        declare_shop(app)
        registry.register(FeatsCollector(app))
        writer = feats.App(
            storage=feats.RedisStorage(redis=redis.Redis.from_url(redis_url), namespace=namespace)
        )
        declare_shop(writer)
        with app, writer:
            changes = [
                writer.admin.set_state(
                    "Limit",
                    feats.FeatureState(rules={None: feats.Static(name)}),
                    author="t",
                    reason="",
                )
                for name in ("high", "none", "standard")
            ]
            app.wait_for_version(changes[-1], timeout=10)
            live = scrape(registry)
            proxy.refuse()
            proxy.reset_all()
            poll(lambda: app.status.stale, "the App to go stale")
            stale = scrape(registry)
            proxy.restore()
            poll(lambda: app.status.live, "the App to be live again")
            again = scrape(registry)
    assert 1.0 <= value(live, "feats_propagation_seconds_count") <= 3.0
    assert value(live, "feats_propagation_seconds_sum") >= 0.0
    assert value(live, "feats_propagation_seconds_bucket", le="+Inf") == value(
        live, "feats_propagation_seconds_count"
    )
    assert value(live, "feats_configuration_version_info", version=changes[-1]) == 1.0
    assert value(stale, "feats_state", state="stale") == 1.0
    assert value(stale, "feats_outages_total") == 1.0
    assert value(stale, "feats_lag_seconds") >= 0.0
    assert value(again, "feats_state", state="live") == 1.0
    assert value(again, "feats_outages_total") == 1.0


def inject(raw: redis.Redis, keys: Keys, fields: dict[str, str]) -> str:
    """XADD an entry chained to the change log's head, as the write script would."""
    last = raw.xrevrange(keys.log, count=1)
    prev = as_str(last[0][0]) if last else "0-0"
    entry: dict[Any, Any] = {"prev": prev, **fields}
    return as_str(raw.xadd(keys.log, entry))


@pytest.mark.redis
@pytest.mark.skipif(not redis_server_available(), reason="needs a redis-server binary")
def test_confirmations_skipped_records_and_reseeds_are_counted(
    registry: CollectorRegistry,
) -> None:
    """On a redis-server of this test's own: the confirmed timestamp follows the tail's
    answers from storage, a bad change-log entry is one skipped record, and the server
    restarted empty is one re-seed."""
    namespace = "prometheus"
    keys = Keys(namespace)
    with RedisServer(name="prometheus") as server:
        client = server.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        raw = server.client(socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            app = feats.App(
                storage=feats.RedisStorage(redis=client, namespace=namespace, block_ms=300),
                block_ms=300,
            )
            handles = declare_shop(app)
            registry.register(FeatsCollector(app))
            version = app.admin.set_state(
                "Limit",
                feats.FeatureState(rules={None: feats.Static("high")}),
                author="t",
                reason="",
            )
            before = scrape(registry)
            started = time.time()
            with app:
                app.wait_for_version(version, timeout=10)
                live = scrape(registry)
                scraped = time.time()

                def confirmed() -> float:
                    return value(scrape(registry), "feats_confirmed_timestamp_seconds")

                first = value(live, "feats_confirmed_timestamp_seconds")
                # Idle, the App confirms again each time its blocked read comes back empty.
                poll(lambda: confirmed() > first, "a later confirmation")
                bad = inject(raw, keys, {"feature": "Limit", "record": "{this is not json"})
                app.wait_for_version(bad, timeout=10)
                skipped = scrape(registry)
                assert handles["Limit"].create(Shopper(1, "CA")) == 100  # the last good state
                server.kill()
                poll(lambda: app.status.stale, "the App to go stale")
                noticed = time.time()
                stale = scrape(registry)
                restarting = time.time()
                server.start()  # no persistence: it comes back empty
                poll(lambda: app.status.reseeds >= 1 and app.status.live, "the re-seed")
                again = scrape(registry)
                assert as_str(raw.hget(keys.versions, "Limit")) == version
        finally:
            raw.close()
            client.close()
    assert "feats_confirmed_timestamp_seconds" not in names(before)
    assert value(before, "feats_skipped_records_total") == 0.0
    assert value(before, "feats_reseeds_total") == 0.0
    assert started <= first <= scraped
    assert value(live, "feats_skipped_records_total") == 0.0
    assert value(live, "feats_reseeds_total") == 0.0
    assert value(skipped, "feats_skipped_records_total") == 1.0
    assert value(skipped, "feats_reseeds_total") == 0.0
    # Nothing is confirmed while the server is down: the last confirmation stands.
    down = value(stale, "feats_confirmed_timestamp_seconds")
    assert value(skipped, "feats_confirmed_timestamp_seconds") <= down <= noticed
    assert value(stale, "feats_state", state="stale") == 1.0
    assert value(stale, "feats_reseeds_total") == 0.0
    assert value(again, "feats_reseeds_total") == 1.0
    assert value(again, "feats_skipped_records_total") == 1.0
    assert value(again, "feats_confirmed_timestamp_seconds") >= restarting
    assert value(again, "feats_state", state="live") == 1.0


def test_one_collector_per_registry(registry: CollectorRegistry) -> None:
    app = feats.App(storage=feats.MemoryStorage())
    registry.register(FeatsCollector(app))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(FeatsCollector(app))


def test_exposition_serves_either_format(registry: CollectorRegistry) -> None:
    app = feats.App(storage=feats.MemoryStorage())
    registry.register(FeatsCollector(app))
    body, content_type = exposition(registry)
    assert content_type.startswith("text/plain")
    assert b"# TYPE feats_state gauge" in body
    body, content_type = exposition(registry, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_the_collector_reads_an_asyncio_app(registry: CollectorRegistry) -> None:
    import asyncio

    import feats.aio

    async def main() -> Samples:
        app = feats.aio.App(storage=feats.aio.MemoryStorage())
        declare_shop(app)
        registry.register(FeatsCollector(app))
        async with app:
            return scrape(registry)

    samples = asyncio.run(main())
    assert value(samples, "feats_state", state="live") == 1.0
