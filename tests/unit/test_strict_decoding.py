"""Everything read from storage goes through one strict decoder: hostile JSON is a CodecError
saying what is wrong, never another exception, and never a state that breaks evaluation."""

import json
import time
from typing import Any

import pytest

import feats
from feats._catalog import Catalog, decode_entry, encode_entry
from feats._codec import MAX_RECORD_BYTES, decode_record, read_json
from tests.unit._models import declare_payments, declare_segments, user


def record(state: Any, **overrides: Any) -> str:
    document = {
        "schema": 1,
        "feature": "PaymentProcessor",
        "state": state,
        "author": "intruder",
        "reason": "hand edit",
        "time": time.time(),
    }
    document.update(overrides)
    return json.dumps(document)


def static_rule(key: Any, implementation: str = "premium") -> dict[str, Any]:
    return {"key": key, "selector": {"type": "static", "implementation": implementation}}


def rollout(weights: Any) -> dict[str, Any]:
    return {
        "segments": [],
        "rules": [
            {
                "key": None,
                "selector": {"type": "rollout", "segment": "UserId", "weights": weights},
            }
        ],
    }


HOSTILE: dict[str, tuple[str | bytes, str]] = {
    "deeply nested": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "a 400-digit weight": (
        record(rollout({"acme": 10**400})).replace(str(10**400), "1" + "0" * 400),
        "weights must be non-negative numbers of at most",
    ),
    "a float out of range": (
        record(rollout({"acme": 1})).replace('"acme": 1', '"acme": 1e999'),
        "out of range",
    ),
    "NaN time": (record(None).replace('"time": ', '"time": NaN, "x": '), "NaN"),
    "Infinity weight": (
        record(rollout({"acme": 1})).replace('"acme": 1', '"acme": Infinity'),
        "Infinity",
    ),
    "duplicate keys": (
        '{"schema": 99, "schema": 1, "feature": "F", "state": null}',
        "duplicate key 'schema'",
    ),
    "a lone surrogate in the author": (record(None, author="\ud800"), "lone surrogate"),
    "not UTF-8": (b'{"schema": 1, "reason": "\xff"}', "not UTF-8"),
    "no state at all": (json.dumps({"schema": 1, "feature": "F", "time": 1.0}), "no state"),
    "an empty rule key with segments": (
        record({"segments": ["Country"], "rules": [static_rule([])]}),
        "one value per segment",
    ),
    "a keyed rule without segments": (
        record({"segments": [], "rules": [static_rule(["CA"])]}),
        "one value per segment",
    ),
    "weights whose sum overflows": (
        record(rollout({"acme": 1e308, "premium": 1e308})),
        "at most 1e",
    ),
    "an empty implementation name": (
        record({"rules": [static_rule(None, "")]}),
        "1-200 characters",
    ),
    "a feature name of 300 characters": (record(None, feature="F" * 300), "1-200 characters"),
}


@pytest.mark.parametrize("raw, message", HOSTILE.values(), ids=HOSTILE)
def test_hostile_records_are_codec_errors(raw: str | bytes, message: str) -> None:
    with pytest.raises(feats.CodecError, match=message):
        decode_record(raw)


def test_a_lone_surrogate_escaped_in_json_is_refused_and_a_pair_is_not() -> None:
    with pytest.raises(feats.CodecError, match="lone surrogate"):
        read_json('{"a": "\\udc00"}', limit=100, what="x")
    assert read_json('{"a": "\\ud83d\\ude00"}', limit=100, what="x") == {"a": "\U0001f600"}


def test_the_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(feats.CodecError, match="byte limit"):
        decode_record("[" * (MAX_RECORD_BYTES + 1))


def test_a_decoded_record_always_encodes_again() -> None:
    from feats._codec import encode_record

    raw = record({"segments": ["Country"], "rules": [static_rule(["CA"])]}, author="é ☃")
    assert decode_record(encode_record(decode_record(raw))) == decode_record(raw)


def test_an_unstorable_record_is_a_codec_error_on_write() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    declare_segments(app)
    processor = declare_payments(app)
    with pytest.raises(feats.CodecError, match="cannot be stored"):
        app.admin.set_state(
            processor,
            feats.FeatureState(rules={None: feats.Static("premium")}),
            author="\ud800",
            reason="",
        )


def test_weights_over_the_bound_are_refused_on_write() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    declare_segments(app)
    processor = declare_payments(app)
    huge = feats.FeatureState(
        rules={None: feats.Rollout("UserId", {"acme": 1e308, "premium": 1e308})}
    )
    with pytest.raises(feats.ConfigurationError, match="at most 1e"):
        app.admin.set_state(processor, huge, author="t", reason="")
    assert app.admin.get_state(processor) is None


def test_a_state_with_an_empty_key_never_reaches_evaluation() -> None:
    storage = feats.MemoryStorage()
    raw = record({"segments": ["Country"], "rules": [static_rule([])]})
    storage.write("PaymentProcessor", raw, None)
    app = feats.App(storage=storage)
    declare_segments(app)
    processor = declare_payments(app)
    with app:
        assert processor.find_implementation(user(1, "CA")) == "acme"
        assert processor.create(user(1, "CA")).__class__.__name__ == "AcmeProcessor"
        assert any("one value per segment" in p.message for p in app.status.problems)


def test_an_empty_key_in_a_written_state_is_refused() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    segments = declare_segments(app)
    processor = declare_payments(app)
    bad = feats.FeatureState(segments=[segments.country], rules={(): feats.Static("premium")})
    with pytest.raises(feats.ConfigurationError, match="one value per segment"):
        app.admin.set_state(processor, bad, author="t", reason="")


# -- the catalog ---------------------------------------------------------------------------


def catalog_entry(**overrides: Any) -> str:
    app = feats.App()
    declare_segments(app)
    declare_payments(app)
    document = json.loads(encode_entry(app.registry)[1])
    document.update(overrides)
    return json.dumps(document)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("[" * 50_000, "nested too deeply"),
        (catalog_entry(seen=1e400), "Infinity"),
        (catalog_entry(pid=10**30), "not a process id"),
        (catalog_entry(host="\ud800"), "lone surrogate"),
        (catalog_entry(seen=time.time() + 10 * 365 * 86400), "in the future"),
    ],
    ids=["deep", "huge seen", "huge pid", "surrogate", "future seen"],
)
def test_hostile_catalog_entries_are_skipped_and_reported(raw: str, message: str) -> None:
    with pytest.raises(feats.CodecError, match=message):
        decode_entry("evil", raw)
    good = catalog_entry()
    catalog = Catalog.from_raw({"evil": raw, "good": good})
    assert [entry.identity for entry in catalog.entries] == ["good"]
    assert len(catalog.problems) == 1 and message.split()[0] in catalog.problems[0]


def test_one_running_entry_cannot_hide_what_another_declares() -> None:
    real = catalog_entry()
    evil = json.loads(real)
    [payments] = [f for f in evil["declarations"]["features"] if f["name"] == "PaymentProcessor"]
    payments["implementations"] = [{"name": "evil", "doc": None, "returns": "str"}]
    payments["default"] = "evil"
    catalog = Catalog.from_raw({"real": real, "evil": json.dumps({**evil, "seen": time.time()})})
    assert {"acme", "premium", "aperture", "evil"} <= set(
        catalog.features["PaymentProcessor"].implementations
    )
