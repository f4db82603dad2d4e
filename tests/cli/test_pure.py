"""The sans-IO parts behind the CLI: catalog, verbs, diffs, exposure counting."""

from __future__ import annotations

import inspect
import json

import pytest

import feats
import feats.aio
from feats._catalog import Catalog, CatalogPublisher, decode_entry, encode_entry, find_drift
from feats._cli._parsing import parse_weights
from feats._diff import diff_states, moves
from feats._errors import CodecError, ConfigurationError, NotFoundError
from feats._exposures import ExposureCounter, HyperLogLog, SpaceSaving
from feats._stored import RawEntry
from feats._verbs import Route, SetRollout, make_plan, resolve_name, suggest

from ._shop import User, declare


def _registry() -> feats.App:
    app = feats.App()
    declare(app)
    return app


def test_admin_twins_have_the_same_public_methods_and_parameters() -> None:
    def public(cls: type) -> dict[str, list[tuple[str, object, object]]]:
        return {
            name: [
                (p.name, p.kind, p.default)
                for p in inspect.signature(getattr(cls, name)).parameters.values()
            ]
            for name in dir(cls)
            if not name.startswith("_")
        }

    assert public(feats.Admin) == public(feats.aio.Admin)
    for verb in (
        "route",
        "set_fallthrough",
        "rollout",
        "start_experiment",
        "stop_experiment",
        "remove_rule",
        "reset",
        "diff",
        "drift",
        "exposures",
        "explain",
        "catalog",
    ):
        assert verb in public(feats.Admin)


def test_the_catalog_round_trips_without_the_code() -> None:
    app = _registry()
    identity, text = encode_entry(app.registry, seen=1.0, host="h", pid=1)
    assert identity == encode_entry(app.registry, seen=2.0, host="x", pid=2)[0]
    entry = decode_entry(identity, text)
    assert list(entry.features) == ["PaymentProcessor", "AllowedPriorities", "ImageProcessing"]
    assert entry.segments["Country"].options == ("US", "CA", "GB", "DE", "MX")
    registry = Catalog.from_raw({identity: text}).registry()
    assert [s.name for s in registry.valid_segments("PaymentProcessor")] == ["Country", "UserId"]
    assert registry.features["ImageProcessing"].boolean
    with pytest.raises(NotFoundError):
        registry.features["PaymentProcessor"].implementations["acme"].function()


class PremiumUser(User):
    """A subclass: segments reading User must read it, also without the code."""


def test_segments_reading_a_base_class_can_segment_through_the_catalog() -> None:
    app = feats.App()

    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    @app.feature
    class Lounge:
        @app.default
        def closed(self, user: PremiumUser) -> str:
            return "closed"

    identity, text = encode_entry(app.registry, seen=1.0, host="h", pid=1)
    registry = Catalog.from_raw({identity: text}).registry()
    assert [s.name for s in registry.valid_segments("Lounge")] == ["Country"]


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        json.dumps({"schema": 2}),
        json.dumps({"schema": 1, "declarations": {"features": [{"name": "F"}]}}),
        json.dumps(
            {
                "schema": 1,
                "declarations": {
                    "features": [{"name": "F", "default": "x", "implementations": []}]
                },
            }
        ),
    ],
)
def test_bad_catalog_entries_are_skipped_and_reported(document: str) -> None:
    with pytest.raises(CodecError):
        decode_entry("x", document)
    catalog = Catalog.from_raw({"x": document})
    assert catalog.empty and len(catalog.problems) == 1


def test_the_newest_entry_declaring_a_feature_wins() -> None:
    old, new = feats.App(), feats.App()
    for app, extra in ((old, True), (new, False)):

        @app.feature
        class PaymentProcessor:
            @app.default
            def acme(self) -> str:
                return "acme"

            if extra:

                def bitcoin(self) -> str:
                    return "bitcoin"

    raw = dict([encode_entry(old.registry, seen=1.0), encode_entry(new.registry, seen=2.0)])
    catalog = Catalog.from_raw(raw)
    assert list(catalog.features["PaymentProcessor"].implementations) == ["acme"]
    assert len(catalog.declared_by("PaymentProcessor")) == 2
    state = feats.FeatureState(rules={None: feats.Static("bitcoin")})
    [drift] = find_drift(catalog.registry(), {"PaymentProcessor": state})
    assert drift.kind == "invalid" and "bitcoin" in drift.message


def test_the_publisher_sends_the_entry_once_then_heartbeats_and_backs_off() -> None:
    app = feats.App()
    publisher = CatalogPublisher(app.registry, heartbeat=60, retry=30)
    assert not publisher.due(0)  # nothing declared, nothing to publish
    declare(app)
    assert publisher.due(0)
    identity, document = publisher.entry()
    assert publisher.entry() == (identity, document)  # made once per set of declarations
    assert publisher.needs_entry(identity)
    publisher.published(0, identity)
    assert not publisher.needs_entry(identity)
    assert not publisher.due(10)
    assert publisher.due(60)  # the heartbeat
    publisher.failed(60)
    assert not publisher.due(89)
    assert publisher.due(91)
    publisher.published(91, identity)

    @app.boolean
    def Later() -> bool:
        return False

    assert publisher.due(92)  # new declarations: a new entry
    assert publisher.entry()[0] != identity
    publisher.forget()  # another store: it may lack the entry
    assert publisher.needs_entry(identity)


def test_did_you_mean() -> None:
    assert suggest("premum", ["acme", "premium", "aperture"]) == "premium"
    assert suggest("zzz", ["acme", "premium"]) is None
    assert resolve_name("segment", "country", ["Country", "UserId"]) == "Country"
    with pytest.raises(NotFoundError, match="did you mean 'Country'"):
        resolve_name("segment", "Contry", ["Country", "UserId"])


def test_weights_are_percentages() -> None:
    assert parse_weights(["aperture=5", "acme=95%"]) == {"aperture": 5, "acme": 95}
    assert parse_weights(["a=33.5", "b=66.5"]) == {"a": 33.5, "b": 66.5}
    with pytest.raises(ConfigurationError, match="add up to 105"):
        parse_weights(["a=5", "b=100"])


def test_plans_resolve_salts_so_raising_a_rollout_moves_only_new_users() -> None:
    app = _registry()
    five = make_plan(
        "PaymentProcessor",
        SetRollout("UserId", {"aperture": 5, "acme": 95}, {"Country": "US"}),
        "1-0",
        None,
        app.registry,
    )
    assert five.after is not None
    ten = make_plan(
        "PaymentProcessor",
        SetRollout("UserId", {"aperture": 10, "acme": 90}, {"Country": "US"}),
        "2-0",
        five.after,
        app.registry,
    )
    [line] = ten.diff
    assert line.note == "moves 5% of these users: acme→aperture 5%"
    before, after = five.after.rules[("US",)], ten.after.rules[("US",)]  # type: ignore[union-attr]
    assert moves(before, after) == {("acme", "aperture"): 0.05}


def test_routing_by_other_segments_needs_resegment() -> None:
    app = _registry()
    plan = make_plan(
        "PaymentProcessor", Route("premium", (("Country", "CA"),)), None, None, app.registry
    )
    with pytest.raises(ConfigurationError, match="keyed by Country"):
        make_plan(
            "PaymentProcessor",
            Route("premium", (("UserId", "7"),)),
            "1-0",
            plan.after,
            app.registry,
        )
    resegmented = make_plan(
        "PaymentProcessor",
        Route("premium", (("UserId", "7"),), True),
        "1-0",
        plan.after,
        app.registry,
    )
    assert resegmented.after is not None and resegmented.after.segments == ("UserId",)


def test_diff_ignores_segment_order() -> None:
    one = feats.FeatureState(["Country", "UserId"], {("CA", "1"): feats.Static("premium")})
    two = feats.FeatureState(["UserId", "Country"], {("1", "CA"): feats.Static("premium")})
    assert [str(line) for line in diff_states(one, two)] == [
        "~ segments: Country, UserId → UserId, Country"
    ]


def test_hyperloglog_and_space_saving_stay_small_and_close() -> None:
    sketch = HyperLogLog()
    for i in range(50_000):
        sketch.add(str(i))
    assert abs(len(sketch) - 50_000) < 50_000 * 0.05
    assert len(sketch.registers) == 4096

    top = SpaceSaving(10)
    for i in range(1000):
        top.add(("heavy", "a"))
        top.add((str(i), "b"))
    assert len(top.counts) == 10 and top.evicted
    assert top.top(1)[0] == (("heavy", "a"), 1000)


def test_exposure_counter_reads_batches_and_skips_junk() -> None:
    counter = ExposureCounter("F", by_value=True, since="5-0")
    batch = [
        ["F", "a", "u1", "5-0"],
        ["F", "b", "u2", "6-0"],
        ["F", "a", "u1", "4-0"],
        ["G", "a", "u1", "6-0"],
        ["bad"],
    ]
    counter.add_entries(
        [
            RawEntry("10-0", {"t": "1.5", "n": "5", "batch": json.dumps(batch)}),
            RawEntry("11-0", {"t": "2", "batch": "not json"}),
        ]
    )
    report = counter.report()
    assert report.total == 2
    assert {i.implementation: i.exposures for i in report.implementations} == {"a": 1, "b": 1}
    assert report.skipped == 2
    assert report.values is not None and len(report.values) == 2
    assert (report.first, report.last) == (1.5, 1.5)
