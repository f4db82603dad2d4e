"""The configuration model: immutable states and selectors, builders, validation on write."""

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

import feats
from tests.unit._models import (
    Segments,
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
    with feats.App(storage=storage, start_timeout=1) as app:
        segments = declare_segments(app)
        yield Setup(app, storage, declare_payments(app), segments)


def rejected(setup: Setup, state: feats.FeatureState, match: str) -> str:
    """set_state refuses ``state`` with a ConfigurationError like ``match``; nothing is written."""
    with pytest.raises(feats.ConfigurationError, match=match) as caught:
        setup.app.admin.set_state(setup.processor, state, author="test", reason="invalid")
    assert setup.app.admin.history(setup.processor) == []
    assert setup.app.admin.get_state(setup.processor) is None
    return str(caught.value)


# -- the model -----------------------------------------------------------------------------


def test_feature_state_is_immutable() -> None:
    state = feats.FeatureState(segments=["Country"], rules={("CA",): feats.Static("premium")})
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.segments = ("UserId",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.rules[("US",)] = feats.Static("acme")  # type: ignore[index]
    assert isinstance(state.segments, tuple)
    assert hash(state) == hash(
        feats.FeatureState(segments=["Country"], rules={("CA",): feats.Static("premium")})
    )


def test_selectors_are_immutable() -> None:
    static = feats.Static("acme")
    rollout = feats.Rollout("UserId", {"aperture": 5, "acme": 95})
    weights = {"a": 1.0}
    experiment = feats.Experiment("UserId", weights)
    weights["b"] = 2.0  # the selector took a copy
    assert dict(experiment.weights) == {"a": 1.0}
    with pytest.raises(dataclasses.FrozenInstanceError):
        static.implementation = "premium"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        rollout.segment = "Country"  # type: ignore[misc]
    with pytest.raises(TypeError):
        rollout.weights["acme"] = 1  # type: ignore[index]


def test_selectors_accept_a_segment_handle_or_its_name() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    segments = declare_segments(app)
    assert feats.Rollout(segments.user_id, {"a": 1}) == feats.Rollout("UserId", {"a": 1})
    assert feats.FeatureState(segments=[segments.country]).segments == ("Country",)
    assert feats.Rollout("UserId", {"a": 1}) != feats.Experiment("UserId", {"a": 1})


def test_rule_keys_are_normalised() -> None:
    state = feats.FeatureState(
        segments=["Country"],
        rules={"CA": feats.Static("premium"), ("US",): feats.Static("acme")},
    )
    assert list(state.rules) == [("CA",), ("US",)]
    with pytest.raises(feats.ConfigurationError, match="a rule key is a tuple of strings"):
        feats.FeatureState(segments=["Country"], rules={1: feats.Static("acme")})
    with pytest.raises(feats.ConfigurationError, match="expected Static, Rollout or Experiment"):
        feats.FeatureState(rules={None: "acme"})  # type: ignore[dict-item]


def test_builders_return_new_states() -> None:
    empty = feats.FeatureState(segments=["Country"])
    canada = empty.with_rule(("CA",), feats.Static("premium"))
    assert empty.rules == {}
    assert dict(canada.rules) == {("CA",): feats.Static("premium")}

    replaced = canada.with_rule("CA", feats.Static("acme"))
    assert dict(replaced.rules) == {("CA",): feats.Static("acme")}
    assert dict(canada.rules) == {("CA",): feats.Static("premium")}

    fallthrough = canada.with_fallthrough(feats.Static("acme"))
    assert fallthrough.fallthrough == feats.Static("acme")
    assert canada.fallthrough is None

    removed = fallthrough.without_rule(("CA",))
    assert dict(removed.rules) == {None: feats.Static("acme")}
    assert ("CA",) in fallthrough.rules
    with pytest.raises(feats.NotFoundError, match="no rule for"):
        removed.without_rule("CA")

    resegmented = fallthrough.with_segments(["Subdivision"])
    assert resegmented.segments == ("Subdivision",)
    assert dict(resegmented.rules) == {None: feats.Static("acme")}
    assert fallthrough.segments == ("Country",)


def test_states_compare_by_value() -> None:
    one = feats.FeatureState(["Country"], {("CA",): feats.Static("premium")})
    two = feats.FeatureState(["Country"]).with_rule("CA", feats.Static("premium"))
    assert one == two
    assert one != two.with_fallthrough(feats.Static("acme"))


# -- validation on write -------------------------------------------------------------------


def test_a_valid_state_is_written(setup: Setup) -> None:
    version = setup.app.admin.set_state(
        setup.processor, payments_state(setup.segments), author="test", reason="valid"
    )
    stored = setup.app.admin.get_state(setup.processor)
    assert stored is not None
    assert stored.segments == ("Country",)
    assert stored.rules[("CA",)] == feats.Static("premium")
    assert setup.processor.explain(user(1, "CA")).version == version


def test_unknown_implementation(setup: Setup) -> None:
    message = rejected(
        setup,
        feats.FeatureState(rules={None: feats.Static("stripe")}),
        "unknown implementation 'stripe'",
    )
    assert "PaymentProcessor" in message and "acme, premium, aperture" in message


def test_unknown_implementation_in_a_rollout(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout("UserId", {"stripe": 1, "acme": 1})}),
        r"PaymentProcessor: fallthrough: unknown implementation 'stripe'",
    )


def test_negative_weight(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout("UserId", {"aperture": -5, "acme": 105})}),
        r"PaymentProcessor: fallthrough: weights must be non-negative",
    )


def test_zero_sum_weights(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Experiment("UserId", {"aperture": 0, "acme": 0})}),
        "weights must have a positive sum",
    )


def test_no_weights(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout("UserId", {})}),
        "weights must be non-negative numbers",
    )


@pytest.mark.parametrize("weight", [math.nan, math.inf, True, "5"])
def test_weight_not_a_finite_number(setup: Setup, weight: Any) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout("UserId", {"aperture": weight, "acme": 1})}),
        "weights must be non-negative numbers",
    )


def test_segment_that_cannot_read_the_inputs(setup: Setup) -> None:
    message = rejected(
        setup,
        feats.FeatureState(segments=[setup.segments.device], rules={"ios": feats.Static("acme")}),
        "segment UserDevice cannot read this feature's inputs",
    )
    assert "Country, Subdivision, UserId" in message


def test_rollout_segment_that_cannot_read_the_inputs(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout(setup.segments.device, {"acme": 1})}),
        "fallthrough: segment UserDevice cannot read",
    )


def test_unknown_segment(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(segments=["Planet"], rules={"Mars": feats.Static("acme")}),
        "unknown segment 'Planet'",
    )
    rejected(
        setup,
        feats.FeatureState(rules={None: feats.Rollout("Planet", {"acme": 1})}),
        "unknown segment 'Planet'",
    )


def test_segment_listed_twice(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(segments=["Country", "Country"]),
        "a segment is listed twice",
    )


@pytest.mark.parametrize("key", [("CA", "extra"), ()])
def test_rule_key_with_wrong_arity(setup: Setup, key: tuple[str, ...]) -> None:
    rejected(
        setup,
        feats.FeatureState(segments=["Country"], rules={key: feats.Static("premium")}),
        r"has \d value\(s\) but the state has 1 segment\(s\)",
    )


def test_keyed_rule_on_a_state_without_segments(setup: Setup) -> None:
    rejected(
        setup,
        feats.FeatureState(rules={("CA",): feats.Static("premium")}),
        r"has 1 value\(s\) but the state has 0 segment\(s\)",
    )


def test_unknown_feature(setup: Setup) -> None:
    with pytest.raises(feats.NotFoundError, match="unknown feature 'Nope'"):
        setup.app.admin.set_state(
            "Nope", feats.FeatureState(rules={None: feats.Static("a")}), author="t", reason="r"
        )


def test_not_a_state(setup: Setup) -> None:
    with pytest.raises(TypeError, match="expected a FeatureState or None"):
        setup.app.admin.set_state(
            setup.processor,
            {None: feats.Static("acme")},  # type: ignore[arg-type]
            author="t",
            reason="r",
        )


def test_options_are_enforced_and_the_value_is_stored() -> None:
    storage = feats.MemoryStorage()
    app = feats.App(storage=storage)
    segments = declare_segments(app)

    class DeviceBanner:
        @app.default
        def plain(self, request: dict[str, str]) -> str:
            return "plain"

        def shiny(self, request: dict[str, str]) -> str:
            return "shiny"

    banner = app.feature(DeviceBanner)
    with pytest.raises(
        feats.ConfigurationError,
        match=r"DeviceBanner: rule UserDevice=windows: 'windows' is not an option of UserDevice "
        r"\(options: ios, android\)",
    ):
        app.admin.set_state(
            banner,
            feats.FeatureState(
                segments=[segments.device], rules={"windows": feats.Static("shiny")}
            ),
            author="t",
            reason="r",
        )
    app.admin.set_state(
        banner,
        feats.FeatureState(segments=[segments.device], rules={"android": feats.Static("shiny")}),
        author="t",
        reason="r",
    )
    stored = app.admin.get_state(banner)
    assert stored is not None and list(stored.rules) == [("android",)]
    current = storage.current("DeviceBanner")
    assert current is not None
    document = json.loads(current[1])
    # The option itself is stored, never its index in OPTIONS (which may be reordered).
    assert document["state"]["rules"] == [
        {"key": ["android"], "selector": {"type": "static", "implementation": "shiny"}}
    ]
    assert banner.create({"device": "android"}) == "shiny"
    assert banner.create({"device": "ios"}) == "plain"


def test_configuration_errors_are_feats_errors() -> None:
    assert issubclass(feats.ConfigurationError, feats.FeatsError)
    assert issubclass(feats.ConfigurationError, ValueError)


def test_write_resolves_salt_and_allocation(setup: Setup) -> None:
    setup.app.admin.set_state(
        setup.processor,
        feats.FeatureState(rules={None: feats.Rollout("UserId", {"aperture": 5, "acme": 95})}),
        author="t",
        reason="r",
    )
    stored = setup.app.admin.get_state(setup.processor)
    assert stored is not None
    rollout = stored.fallthrough
    assert isinstance(rollout, feats.Rollout)
    assert rollout.salt is not None and 0 <= rollout.salt < 2**64
    assert rollout.allocation == (("aperture", 0, 5_000), ("acme", 5_000, 100_000))
