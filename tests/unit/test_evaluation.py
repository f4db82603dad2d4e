"""The compiled snapshot: rules, fallthrough, defaults, drift, experiments and booleans."""

import json
import logging
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

import feats
import feats.aio
from feats._codec import Record, encode_record, encode_state
from feats._exposures import exposures_in
from tests.unit._models import (
    AcmeProcessor,
    ApertureProcessor,
    PremiumProcessor,
    Segments,
    User,
    declare_payments,
    declare_segments,
    payments_state,
    user,
)


class Setup(NamedTuple):
    app: feats.App
    storage: feats.MemoryStorage
    processor: feats.Feature
    segments: Segments


@pytest.fixture
def setup() -> Iterator[Setup]:
    storage = feats.MemoryStorage()
    with feats.App(storage=storage, start_timeout=2) as app:
        segments = declare_segments(app)
        yield Setup(app, storage, declare_payments(app), segments)


def configure(setup: Setup, state: feats.FeatureState) -> str:
    return setup.app.admin.set_state(setup.processor, state, author="test", reason="test")


def write_unchecked(setup: Setup, feature: str, state: dict[str, Any] | str) -> str:
    """Store a state as some other code (or a hand edit) would: no validation, no resolving."""
    if isinstance(state, str):
        raw = state
    else:
        raw = json.dumps(
            {
                "schema": 1,
                "feature": feature,
                "state": state,
                "author": "x",
                "reason": "",
                "time": 0,
            }
        )
    ok, version = setup.storage.write(feature, raw, None)
    assert ok
    setup.app.wait_for_version(version, timeout=5)
    return version


def feats_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "feats" and record.levelno == logging.WARNING
    ]


# -- rules ---------------------------------------------------------------------------------


def test_design_rules(setup: Setup) -> None:
    version = configure(setup, payments_state(setup.segments))
    processor = setup.processor

    assert isinstance(processor.create(user(1, "CA")), PremiumProcessor)
    assert processor.find_implementation(user(1, "CA")) == "premium"
    canada = processor.explain(user(1, "CA"))
    assert canada.feature == "PaymentProcessor"
    assert canada.implementation == "premium"
    assert canada.reason == "rule Country=CA: static premium"
    assert canada.segment_values == {"Country": "CA"}
    assert canada.selector == feats.Static("premium")
    assert canada.version == version
    assert canada.rule == ("CA",)
    assert canada.default is False

    assert isinstance(processor.create(user(1, "FR")), AcmeProcessor)
    france = processor.explain(user(1, "FR"))
    assert france.implementation == "acme"
    assert france.reason == "no rule matched; fallthrough: static acme"
    assert france.selector == feats.Static("acme")
    assert france.rule is None

    us = [processor.explain(user(i, "US")) for i in range(2_000)]
    aperture = [e for e in us if e.implementation == "aperture"]
    assert 40 < len(aperture) < 160  # 5% of 2,000
    assert {e.implementation for e in us} == {"aperture", "acme"}
    first = us[0]
    assert isinstance(first.selector, feats.Rollout)
    assert first.selector.segment == "UserId"
    assert first.segment_values == {"Country": "US", "UserId": "0"}
    assert first.bucket is not None and first.reason.startswith(
        "rule Country=US: rollout by UserId"
    )
    for i, evaluation in enumerate(us[:200]):
        assert processor.find_implementation(user(i, "US")) == evaluation.implementation
        created = processor.create(user(i, "US"))
        expected = ApertureProcessor if evaluation.implementation == "aperture" else AcmeProcessor
        assert isinstance(created, expected)


def test_no_configuration_is_the_default(setup: Setup) -> None:
    evaluation = setup.processor.explain(user(1))
    assert evaluation.implementation == "acme"
    assert evaluation.reason == "no configuration: the default answers"
    assert evaluation.version is None
    assert evaluation.selector is None
    assert evaluation.default is True


def test_no_matching_rule_and_no_fallthrough_is_the_default(setup: Setup) -> None:
    configure(
        setup,
        feats.FeatureState(
            segments=[setup.segments.country], rules={"CA": feats.Static("premium")}
        ),
    )
    assert setup.processor.find_implementation(user(1, "US")) == "acme"
    evaluation = setup.processor.explain(user(1, "US"))
    assert evaluation.implementation == "acme"
    assert evaluation.reason == "no rule matched and no fallthrough: the default answers"
    assert evaluation.default is True
    assert evaluation.segment_values == {"Country": "US"}


def test_fallthrough_only(setup: Setup) -> None:
    configure(setup, feats.FeatureState(rules={None: feats.Static("premium")}))
    assert setup.processor.find_implementation(user(1)) == "premium"
    evaluation = setup.processor.explain(user(1))
    assert evaluation.reason == "the only rule: static premium"
    assert evaluation.segment_values == {}


def test_two_segments(setup: Setup) -> None:
    configure(
        setup,
        feats.FeatureState(
            segments=[setup.segments.country, setup.segments.subdivision],
            rules={
                ("US", "US-WA"): feats.Static("premium"),
                ("US", "US-OR"): feats.Rollout(setup.segments.user_id, {"aperture": 1}),
                None: feats.Static("acme"),
            },
        ),
    )
    assert setup.processor.find_implementation(user(1, "US", "WA")) == "premium"
    assert setup.processor.find_implementation(user(1, "US", "OR")) == "aperture"
    assert setup.processor.find_implementation(user(1, "US", "CA")) == "acme"
    assert setup.processor.find_implementation(user(1, "CA", "WA")) == "acme"
    explained = setup.processor.explain(user(1, "US", "OR"))
    assert explained.segment_values == {"Country": "US", "Subdivision": "US-OR", "UserId": "1"}
    assert explained.rule == ("US", "US-OR")


def test_a_reset_goes_back_to_the_default(setup: Setup) -> None:
    configure(setup, feats.FeatureState(rules={None: feats.Static("premium")}))
    version = setup.app.admin.set_state(setup.processor, None, author="t", reason="reset")
    evaluation = setup.processor.explain(user(1))
    assert evaluation.implementation == "acme"
    assert evaluation.version == version


# -- drift: configuration the code cannot follow -------------------------------------------


def test_unknown_implementation_answers_the_default_and_warns_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    write_unchecked(
        setup,
        "PaymentProcessor",
        {
            "segments": ["Country"],
            "rules": [
                {"key": ["CA"], "selector": {"type": "static", "implementation": "stripe"}},
                {"key": None, "selector": {"type": "static", "implementation": "premium"}},
            ],
        },
    )
    for i in range(50):
        assert isinstance(setup.processor.create(user(i, "CA")), AcmeProcessor)
        assert setup.processor.find_implementation(user(i, "CA")) == "acme"
    # Unaffected rules still answer.
    assert setup.processor.find_implementation(user(1, "US")) == "premium"
    evaluation = setup.processor.explain(user(1, "CA"))
    assert evaluation.implementation == "acme"
    assert "configuration drift" in evaluation.reason
    assert "'stripe'" in evaluation.reason
    warnings = feats_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "PaymentProcessor" in warnings[0] and "'stripe'" in warnings[0]


def test_unknown_segment_answers_the_default_and_warns_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    write_unchecked(
        setup,
        "PaymentProcessor",
        {
            "segments": ["Planet"],
            "rules": [
                {"key": ["Mars"], "selector": {"type": "static", "implementation": "premium"}}
            ],
        },
    )
    for i in range(50):
        assert setup.processor.find_implementation(user(i)) == "acme"
    evaluation = setup.processor.explain(user(1))
    assert evaluation.implementation == "acme"
    assert "configuration drift" in evaluation.reason and "'Planet'" in evaluation.reason
    warnings = feats_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "'Planet'" in warnings[0]


def test_unknown_rollout_segment_and_implementation_warn_once_each(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    write_unchecked(
        setup,
        "PaymentProcessor",
        {
            "segments": ["Country"],
            "rules": [
                {
                    "key": ["US"],
                    "selector": {"type": "rollout", "segment": "Planet", "weights": {"acme": 1}},
                },
                {"key": ["CA"], "selector": {"type": "static", "implementation": "stripe"}},
            ],
        },
    )
    for i in range(20):
        assert setup.processor.find_implementation(user(i, "US")) == "acme"
        assert setup.processor.find_implementation(user(i, "CA")) == "acme"
    warnings = feats_warnings(caplog)
    assert len(warnings) == 2, warnings
    assert sum("'Planet'" in w for w in warnings) == 1
    assert sum("'stripe'" in w for w in warnings) == 1


def test_a_segment_that_raises_answers_the_default_and_warns_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    configure(setup, payments_state(setup.segments))
    homeless = User(7, None)  # type: ignore[arg-type]
    for _ in range(50):
        assert isinstance(setup.processor.create(homeless), AcmeProcessor)
    evaluation = setup.processor.explain(homeless)
    assert evaluation.implementation == "acme"
    assert evaluation.reason.startswith("segment Country raised AttributeError")
    warnings = feats_warnings(caplog)
    assert len(warnings) == 1, warnings
    assert "AttributeError" in warnings[0] and "PaymentProcessor" in warnings[0]


@pytest.mark.parametrize("kind", [feats.Rollout, feats.Experiment])
def test_a_split_segment_that_raises_answers_the_default(
    setup: Setup, caplog: pytest.LogCaptureFixture, kind: type[feats.Rollout]
) -> None:
    # A split on the fallthrough of a state without segments: the common rollout shape.
    configure(setup, feats.FeatureState(rules={None: kind("UserId", {"aperture": 1, "acme": 1})}))
    nobody: Any = object()  # UserId reads .id, which object() lacks
    for _ in range(20):
        assert setup.processor.find_implementation(nobody) == "acme"
        assert isinstance(setup.processor.create(nobody), AcmeProcessor)
    assert setup.processor.explain(nobody).reason.startswith("segment UserId raised AttributeError")
    assert len(feats_warnings(caplog)) == 1


def test_a_segment_returning_a_non_string_answers_the_default(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    class SloppyId:
        def user(self, user: User) -> str:
            return user.id  # type: ignore[return-value]

    setup.app.segment(SloppyId)
    configure(setup, feats.FeatureState(rules={None: feats.Rollout("SloppyId", {"aperture": 1})}))
    assert setup.processor.find_implementation(user(1)) == "acme"
    assert setup.processor.explain(user(1)).implementation == "acme"
    assert len(feats_warnings(caplog)) == 1


def test_a_malformed_record_is_skipped_and_the_rest_keeps_working(setup: Setup) -> None:
    configure(setup, feats.FeatureState(rules={None: feats.Static("premium")}))
    good = setup.processor.explain(user(1))
    for raw in (
        "not json",
        json.dumps({"schema": 99, "feature": "PaymentProcessor", "state": None}),
        json.dumps(
            {
                "schema": 1,
                "feature": "PaymentProcessor",
                "state": {
                    "rules": [
                        {
                            "key": None,
                            "selector": {
                                "type": "rollout",
                                "segment": "UserId",
                                "weights": {"acme": float("nan")},
                            },
                        }
                    ]
                },
            }
        ),
    ):
        write_unchecked(setup, "PaymentProcessor", raw)
        # The last good state stays, the App stays live, the problem is reported.
        assert setup.processor.explain(user(1)) == good
        assert setup.app.status.state == "live"
    status = setup.app.status
    assert status.skipped == 3
    assert len(status.problems) == 3
    assert "schema version 99" in status.problems[1].message
    assert "NaN" in status.problems[2].message  # not JSON: strict decoding refuses it


def test_an_app_starting_on_a_malformed_record_serves_the_rest() -> None:
    storage = feats.MemoryStorage()
    storage.write("PaymentProcessor", '{"schema": 1, "feature": 3}', None)
    record = Record(
        "ConfirmText", feats.FeatureState(rules={None: feats.Static("save")}), "t", "r", time.time()
    )
    storage.write("ConfirmText", encode_record(record), None)
    app = feats.App(storage=storage, start_timeout=2)
    processor = declare_payments(app)

    class ConfirmText:
        @app.default
        def submit(self) -> str:
            return "Submit"

        def save(self) -> str:
            return "Save"

    confirm = app.feature(ConfirmText)
    with app:
        assert app.status.state == "live"
        assert confirm.create() == "Save"
        # A full load keeps records as they arrived: each is read, and reported if it is
        # unreadable, when its feature is first used.
        assert app.status.skipped == 0
        assert processor.find_implementation(user(1)) == "acme"
        assert app.status.skipped == 1
        assert processor.find_implementation(user(1)) == "acme"
        assert app.status.skipped == 1


def test_a_state_for_an_undeclared_feature_is_ignored(setup: Setup) -> None:
    state = encode_state(feats.FeatureState(rules={None: feats.Static("x")}))
    write_unchecked(setup, "SomeoneElsesFeature", state)
    assert setup.app.status.skipped == 0
    assert setup.processor.find_implementation(user(1)) == "acme"


# -- experiments ---------------------------------------------------------------------------


def exposures(storage: feats.MemoryStorage) -> list[tuple[str, str, str, str | None]]:
    found = []
    for entry in storage.read_exposures("0-0", 10_000):
        batch = exposures_in(entry)
        assert int(entry.text("n")) == len(batch)
        found += batch
    return found


class Priorities(NamedTuple):
    app: feats.App
    feature: feats.Feature
    banner: feats.Boolean
    version: str


def priorities(storage: feats.MemoryStorage) -> Priorities:
    app = feats.App(storage=storage, start_timeout=2)
    segments = declare_segments(app)

    class AllowedPriorities:
        @app.default
        def no_priority(self, user: User) -> list[str]:
            return []

        def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

        def three_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal", "Unimportant"]

    def NewBanner(user: User) -> bool:
        return False

    feature = app.feature(AllowedPriorities)
    banner = app.boolean(NewBanner)
    experiment = feats.Experiment(
        segments.user_id, {"no_priority": 1, "two_priorities": 1, "three_priorities": 1}
    )
    app.start()
    version = app.admin.set_state(
        feature, feats.FeatureState(rules={None: experiment}), author="t", reason="experiment"
    )
    app.admin.set_state(
        banner,
        feats.FeatureState(rules={None: feats.Experiment(segments.user_id, {"enabled": 1})}),
        author="t",
        reason="experiment",
    )
    return Priorities(app, feature, banner, version)


def test_find_implementation_records_no_exposure() -> None:
    storage = feats.MemoryStorage()
    exp = priorities(storage)
    chosen = {exp.feature.find_implementation(user(i)) for i in range(300)}
    assert chosen == {"no_priority", "two_priorities", "three_priorities"}
    exp.feature.explain(user(1))
    exp.app.close()
    assert exposures(storage) == []
    assert exp.app.status.exposures_written == 0


def test_create_is_enabled_and_used_implementation_record_exposures() -> None:
    storage = feats.MemoryStorage()
    exp = priorities(storage)
    expected = []
    for i in range(5):
        implementation = exp.feature.find_implementation(user(i))
        priorities_list = exp.feature.create(user(i))
        assert len(priorities_list) == {"no": 0, "two": 2, "three": 3}[implementation.split("_")[0]]
        expected.append(("AllowedPriorities", implementation, str(i), exp.version))
    preselected = exp.feature.find_implementation(user(10))
    exp.feature.used_implementation(preselected, user(10))
    expected.append(("AllowedPriorities", preselected, "10", exp.version))
    assert exp.banner.is_enabled(user(11)) is True
    with pytest.raises(feats.NotFoundError, match="no implementation 'four_priorities'"):
        exp.feature.used_implementation("four_priorities", user(12))
    exp.app.close()
    found = exposures(storage)
    # Stored grouped per feature, implementation and version: compared without order.
    [banner] = [exposure for exposure in found if exposure[0] == "NewBanner"]
    assert banner[:3] == ("NewBanner", "enabled", "11")
    assert sorted(exposure for exposure in found if exposure is not banner) == sorted(expected)
    assert len(found) == len(expected) + 1
    assert exp.app.status.exposures_written == len(found)


def test_rollouts_record_no_exposure(setup: Setup) -> None:
    configure(setup, feats.FeatureState(rules={None: feats.Rollout("UserId", {"aperture": 1})}))
    for i in range(10):
        setup.processor.create(user(i))
        setup.processor.used_implementation("aperture", user(i))
    setup.app.close()
    assert exposures(setup.storage) == []


# -- booleans ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        ("enabled", [True, True]),
        ("disabled", [False, False]),
        ("default", [True, False]),
        (None, [True, False]),
    ],
)
def test_boolean_implementations(
    setup: Setup, implementation: str | None, expected: list[bool]
) -> None:
    app = setup.app

    def ImageProcessing(user: User) -> bool:
        return user.id % 2 == 0

    images = app.boolean(ImageProcessing)
    if implementation is not None:
        app.admin.set_state(
            images,
            feats.FeatureState(rules={None: feats.Static(implementation)}),
            author="t",
            reason="r",
        )
    assert [images.is_enabled(user(2)), images.is_enabled(user(3))] == expected
    assert images.find_implementation(user(2)) == (implementation or "default")
    assert images.explain(user(3)).implementation == (implementation or "default")


def test_boolean_kill_switch_by_country(setup: Setup) -> None:
    def ImageProcessing(user: User) -> bool:
        return True

    images = setup.app.boolean(ImageProcessing)
    setup.app.admin.set_state(
        images,
        feats.FeatureState(
            segments=[setup.segments.country], rules={"CA": feats.Static("disabled")}
        ),
        author="oncall",
        reason="DDOS from CA",
    )
    assert images.is_enabled(user(1, "CA")) is False
    assert images.is_enabled(user(1, "US")) is True
    with pytest.raises(feats.ConfigurationError, match="unknown implementation 'on'"):
        setup.app.admin.set_state(
            images, feats.FeatureState(rules={None: feats.Static("on")}), author="t", reason="r"
        )


async def test_aio_experiment_exposures() -> None:
    storage = feats.aio.MemoryStorage()
    app = feats.aio.App(storage=storage, start_timeout=2)
    segments = declare_segments(app)

    class AllowedPriorities:
        @app.default
        def no_priority(self, user: User) -> list[str]:
            return []

        async def two_priorities(self, user: User) -> list[str]:
            return ["Important", "Normal"]

    def NewBanner(user: User) -> bool:
        return False

    feature = app.feature(AllowedPriorities)
    banner = app.boolean(NewBanner)
    async with app:
        split = {"no_priority": 1, "two_priorities": 1}
        version = await app.admin.set_state(
            feature,
            feats.FeatureState(rules={None: feats.Experiment(segments.user_id, split)}),
            author="t",
            reason="r",
        )
        await app.admin.set_state(
            banner,
            feats.FeatureState(rules={None: feats.Experiment(segments.user_id, {"enabled": 1})}),
            author="t",
            reason="r",
        )
        chosen = [feature.find_implementation(user(i)) for i in range(40)]
        assert set(chosen) == {"no_priority", "two_priorities"}
        created = await feature.create(user(1))
        assert len(created) == (2 if chosen[1] == "two_priorities" else 0)
        assert await banner.is_enabled(user(2)) is True
        await feature.used_implementation(chosen[3], user(3))
    found = []
    for entry in await storage.read_exposures("0-0", 100):
        found += exposures_in(entry)
    # Stored grouped per feature, implementation and version: compared without order.
    assert sorted(found, key=repr) == sorted(
        [
            ("AllowedPriorities", chosen[1], "1", version),
            ("NewBanner", "enabled", "2", found_banner_version(found)),
            ("AllowedPriorities", chosen[3], "3", version),
        ],
        key=repr,
    )


def found_banner_version(found: list[tuple[str, str, str, str | None]]) -> str | None:
    return next(version for feature, _, _, version in found if feature == "NewBanner")
