"""The versioned JSON codec: every selector and state round-trips, anything else is refused."""

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import feats
from feats._bucketing import allocate
from feats._codec import (
    MAX_RECORD_BYTES,
    SCHEMA_VERSION,
    Record,
    decode_record,
    decode_state,
    encode_record,
    encode_state,
)


def through_json(state: feats.FeatureState) -> feats.FeatureState:
    return decode_state(json.loads(json.dumps(encode_state(state))))


def record_text(state: dict[str, Any] | None = None, **fields: Any) -> str:
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "feature": "PaymentProcessor",
        "state": state if state is not None else {"segments": [], "rules": []},
        "author": "ana",
        "reason": "test",
        "time": 1_700_000_000.5,
    }
    document.update(fields)
    return json.dumps(document)


def rollout(**fields: Any) -> dict[str, Any]:
    """A state whose fallthrough is a rollout document, with ``fields`` overriding its own."""
    selector: dict[str, Any] = {
        "type": "rollout",
        "segment": "UserId",
        "weights": {"aperture": 5, "acme": 95},
    }
    selector.update(fields)
    return {"segments": [], "rules": [{"key": None, "selector": selector}]}


# -- round trips ---------------------------------------------------------------------------

SELECTORS = [
    feats.Static("premium"),
    feats.Rollout("UserId", {"aperture": 5, "acme": 95}),
    feats.Experiment("UserId", {"no_priority": 1, "two_priorities": 1, "three_priorities": 1}),
    feats.Rollout("UserId", {"aperture": 2.5, "acme": 97.5}, salt=0),
    feats.Rollout(
        "UserId",
        {"aperture": 10, "acme": 90},
        salt=2**64 - 1,
        allocation=[("aperture", 0, 5_000), ("acme", 5_000, 95_000), ("aperture", 95_000, 100_000)],
    ),
    feats.Experiment(
        "UserId",
        {"a": 1, "b": 0},
        salt=0x1234_5678_9ABC_DEF0,
        allocation=[("a", 0, 100_000)],
    ),
]


@pytest.mark.parametrize("selector", SELECTORS, ids=repr)
def test_every_selector_round_trips(selector: feats.Static | feats.Rollout) -> None:
    state = feats.FeatureState(
        segments=["Country", "Subdivision"],
        rules={("US", "US-WA"): selector, None: selector},
    )
    decoded = through_json(state)
    assert decoded == state
    assert type(decoded.rules[None]) is type(selector)


def test_empty_and_fallthrough_only_states_round_trip() -> None:
    assert through_json(feats.FeatureState()) == feats.FeatureState()
    only = feats.FeatureState(rules={None: feats.Static("acme")})
    assert through_json(only) == only


def test_rule_order_is_kept() -> None:
    state = feats.FeatureState(
        segments=["Country"],
        rules={"US": feats.Static("a"), None: feats.Static("c"), "CA": feats.Static("b")},
    )
    assert list(through_json(state).rules) == [("US",), None, ("CA",)]


def test_record_round_trips_with_unicode() -> None:
    record = Record(
        feature="PaymentProcessor",
        state=feats.FeatureState(["Country"], {("CÔTE",): feats.Static("premium")}),
        author="Zoë",
        reason="paiements 💳 en panne",
        time=1_700_000_000.25,
    )
    text = encode_record(record)
    assert json.loads(text)["schema"] == 1
    assert decode_record(text) == record
    assert decode_record(text.encode()) == record


def test_reset_record_round_trips() -> None:
    record = Record("PaymentProcessor", None, "ana", "back to the default", 1.0)
    assert decode_record(encode_record(record)) == record


def test_salt_is_written_as_hex() -> None:
    document = encode_state(
        feats.FeatureState(rules={None: feats.Rollout("UserId", {"a": 1}, salt=255)})
    )
    assert document["rules"][0]["selector"]["salt"] == "00000000000000ff"


# -- rejections ----------------------------------------------------------------------------


def refused(raw: str | bytes, match: str) -> None:
    with pytest.raises(feats.CodecError, match=match):
        decode_record(raw)


def test_codec_error_is_a_feats_error() -> None:
    assert issubclass(feats.CodecError, feats.FeatsError)
    assert issubclass(feats.CodecError, feats.ConfigurationError)


@pytest.mark.parametrize("raw", ["", "{", "not json", b"\xff\xfe", "{'schema': 1}"])
def test_not_json(raw: str | bytes) -> None:
    refused(raw, "not JSON")


@pytest.mark.parametrize("raw", ["[]", "1", '"text"', "null"])
def test_not_an_object(raw: str) -> None:
    refused(raw, "record: expected dict")


@pytest.mark.parametrize("schema", [None, 0, 2, "1", 1.5])
def test_unknown_schema_version(schema: Any) -> None:
    refused(record_text(schema=schema), "schema version")


def test_missing_schema() -> None:
    document = json.loads(record_text())
    del document["schema"]
    refused(json.dumps(document), "schema version None")


def test_oversized_record_is_refused_on_read() -> None:
    refused(record_text(reason="x" * MAX_RECORD_BYTES), "byte limit")


def test_oversized_record_is_refused_on_write() -> None:
    record = Record("PaymentProcessor", None, "ana", "x" * MAX_RECORD_BYTES, 1.0)
    with pytest.raises(feats.CodecError, match="byte limit"):
        encode_record(record)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"feature": None}, r"record\.feature: expected str"),
        ({"feature": 7}, r"record\.feature: expected str"),
        ({"author": ["ana"]}, r"record\.author: expected str"),
        ({"time": "yesterday"}, r"record\.time: expected int or float"),
        ({"time": True}, r"record\.time"),
        ({"state": []}, r"state: expected dict"),
        ({"state": {"segments": "Country"}}, r"state\.segments: expected list"),
        ({"state": {"segments": [1]}}, r"state\.segments\[0\]: expected str"),
        ({"state": {"rules": {}}}, r"state\.rules: expected list"),
        ({"state": {"rules": ["x"]}}, r"state\.rules\[0\]: expected dict"),
        ({"state": {"rules": [{"key": "CA"}]}}, r"state\.rules\[0\]\.key: expected list"),
        (
            {"state": {"rules": [{"key": None, "selector": {"type": "static"}}]}},
            r"implementation: expected str",
        ),
        (
            {"state": {"rules": [{"key": None, "selector": {"type": "random"}}]}},
            "unknown selector type 'random'",
        ),
        (
            {"state": {"rules": [{"key": None, "selector": None}]}},
            r"selector: expected dict",
        ),
        (
            {
                "state": {
                    "rules": [
                        {"key": None, "selector": {"type": "static", "implementation": "a"}},
                        {"key": None, "selector": {"type": "static", "implementation": "b"}},
                    ]
                }
            },
            "duplicate rule",
        ),
    ],
)
def test_wrong_shape(fields: dict[str, Any], match: str) -> None:
    refused(record_text(**fields), match)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"segment": None}, r"segment: expected str"),
        ({"weights": [5, 95]}, r"weights: expected dict"),
        ({"weights": {"a": "5"}}, r"weights\.a: expected int or float"),
        ({"weights": {"a": True}}, r"weights\.a"),
        ({"salt": "xyz"}, "not a hex number"),
        ({"salt": 17}, r"salt: expected str"),
    ],
)
def test_bad_split(fields: dict[str, Any], match: str) -> None:
    refused(record_text(rollout(**fields)), match)


@pytest.mark.parametrize(
    "weights",
    [{"a": math.nan, "b": 1}, {"a": math.inf}, {"a": -1, "b": 2}, {"a": 0, "b": 0}, {}],
    ids=["nan", "inf", "negative", "zero-sum", "empty"],
)
def test_weights_that_cannot_be_allocated(weights: dict[str, float]) -> None:
    # Such a record (written around the admin) must be skipped, not crash the App's load.
    # NaN and Infinity are not JSON: strict decoding refuses them before the schema does.
    refused(record_text(rollout(weights=weights)), "weights|NaN|Infinity")


@pytest.mark.parametrize("salt", ["-1", "1" + "0" * 16])
def test_salt_outside_64_bits(salt: str) -> None:
    refused(record_text(rollout(salt=salt)), "salt")


@pytest.mark.parametrize(
    "allocation",
    [
        [["aperture", 0, 5_000]],  # does not cover every bucket
        [["aperture", 0, 5_000], ["acme", 6_000, 100_000]],  # a gap
        [["aperture", 0, 5_000], ["acme", 4_000, 100_000]],  # an overlap
        [["aperture", 0, 0], ["acme", 0, 100_000]],  # an empty range
        [["acme", 0, 100_001]],  # past the last bucket
        [["stripe", 0, 100_000]],  # an implementation without a weight
        [["acme", 0]],  # not a triple
        [["acme", "0", 100_000]],  # not an integer
        "acme",
    ],
)
def test_bad_allocation(allocation: Any) -> None:
    refused(record_text(rollout(allocation=allocation)), "allocation")


# -- property ------------------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)
implementations = st.sampled_from(["acme", "premium", "aperture", "é"])
weights = st.dictionaries(
    implementations,
    st.one_of(st.integers(0, 1_000), st.floats(0, 1_000, allow_nan=False)),
    min_size=1,
).filter(lambda w: sum(w.values()) > 0)


@st.composite
def splits(draw: st.DrawFn) -> feats.Rollout | feats.Experiment:
    experiment = draw(st.booleans())
    chosen = draw(weights)
    salt = draw(st.none() | st.integers(0, 2**64 - 1))
    allocation = draw(st.none() | st.just(allocate(chosen)))
    if experiment:
        return feats.Experiment(draw(names), chosen, salt=salt, allocation=allocation)
    return feats.Rollout(draw(names), chosen, salt=salt, allocation=allocation)


selectors = st.builds(feats.Static, implementations) | splits()


@st.composite
def states(draw: st.DrawFn) -> feats.FeatureState:
    segments = draw(st.lists(names, max_size=3, unique=True))
    # A rule key has one value per segment, so a state without segments has only a fallthrough.
    keys = st.none() | st.tuples(*[names for _ in segments]) if segments else st.none()
    rules = draw(st.dictionaries(keys, selectors, max_size=5))
    return feats.FeatureState(segments, rules)


@given(states())
def test_every_state_round_trips(state: feats.FeatureState) -> None:
    assert through_json(state) == state


@given(states(), names, names, st.floats(0, 4e9, allow_nan=False))
def test_every_record_round_trips(
    state: feats.FeatureState, author: str, reason: str, time: float
) -> None:
    record = Record("PaymentProcessor", state, author, reason, time)
    assert decode_record(encode_record(record)) == record
