"""The versioned JSON codec (schema 1) for configuration records, validated on both sides."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._bucketing import BUCKETS
from ._errors import CodecError
from ._state import Change, Experiment, FeatureState, Rollout, RuleKey, Selector, Static

__all__ = [
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "Record",
    "decode_record",
    "decode_state",
    "encode_record",
    "encode_state",
]

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 256 * 1024
"""Larger entries are refused on write and skipped on read: no state needs more."""


@dataclass(frozen=True)
class Record:
    """What one write stores: a feature's new state (None: back to the default) and why."""

    feature: str
    state: FeatureState | None
    author: str
    reason: str
    time: float

    def change(self, version: str) -> Change:
        return Change(
            version=version,
            feature=self.feature,
            state=self.state,
            author=self.author,
            reason=self.reason,
            time=datetime.fromtimestamp(self.time, UTC),
        )


def encode_selector(selector: Selector) -> dict[str, Any]:
    if isinstance(selector, Static):
        return {"type": "static", "implementation": selector.implementation}
    document: dict[str, Any] = {
        "type": selector.kind,
        "segment": selector.segment,
        "weights": dict(selector.weights),
    }
    if selector.salt is not None:
        document["salt"] = f"{selector.salt:016x}"
    if selector.allocation is not None:
        document["allocation"] = [list(item) for item in selector.allocation]
    return document


def encode_state(state: FeatureState) -> dict[str, Any]:
    return {
        "segments": list(state.segments),
        "rules": [
            {"key": None if key is None else list(key), "selector": encode_selector(selector)}
            for key, selector in state.rules.items()
        ],
    }


def encode_record(record: Record) -> str:
    text = json.dumps(
        {
            "schema": SCHEMA_VERSION,
            "feature": record.feature,
            "state": None if record.state is None else encode_state(record.state),
            "author": record.author,
            "reason": record.reason,
            "time": record.time,
        },
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    if len(text.encode()) > MAX_RECORD_BYTES:
        raise CodecError(
            f"{record.feature}: the encoded state is {len(text.encode())} bytes, "
            f"over the {MAX_RECORD_BYTES} byte limit"
        )
    return text


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if type(value) is kind:
        # The common case, decided at once (a bool is never some other kind: bool is final).
        return value
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise CodecError(f"{where}: expected {expected}, got {type(value).__name__}")
    return value


def _string_list(value: Any, where: str) -> list[str]:
    items: list[str] = _expect(value, list, where)
    for index, item in enumerate(items):
        if type(item) is not str:
            _expect(item, str, f"{where}[{index}]")
    return items


def decode_selector(document: Any, where: str) -> Selector:
    document = _expect(document, dict, where)
    kind = document.get("type")
    if kind == "static":
        return Static(_expect(document.get("implementation"), str, f"{where}.implementation"))
    if kind not in ("rollout", "experiment"):
        raise CodecError(f"{where}.type: unknown selector type {kind!r}")
    segment = _expect(document.get("segment"), str, f"{where}.segment")
    weights = _expect(document.get("weights"), dict, f"{where}.weights")
    for name, weight in weights.items():
        if type(weight) is not int and type(weight) is not float:
            _expect(weight, (int, float), f"{where}.weights.{name}")
        if not 0 <= weight < math.inf:  # NaN fails too
            raise CodecError(f"{where}.weights.{name}: not a finite non-negative number")
    if sum(weights.values()) <= 0:
        raise CodecError(f"{where}.weights: must have a positive sum, got {weights!r}")
    salt_text = document.get("salt")
    salt = None
    if salt_text is not None:
        _expect(salt_text, str, f"{where}.salt")
        try:
            salt = int(salt_text, 16)
        except ValueError as error:
            raise CodecError(f"{where}.salt: not a hex number: {salt_text!r}") from error
        if not 0 <= salt < 2**64:
            raise CodecError(f"{where}.salt: not a 64-bit salt: {salt_text!r}")
    allocation = None
    if document.get("allocation") is not None:
        allocation = []
        cursor = 0
        for index, item in enumerate(_expect(document["allocation"], list, f"{where}.allocation")):
            at = f"{where}.allocation[{index}]"
            if not (isinstance(item, list) and len(item) == 3):
                raise CodecError(f"{at}: expected [implementation, start, end]")
            name = _expect(item[0], str, at)
            start = _expect(item[1], int, at)
            end = _expect(item[2], int, at)
            if start != cursor or end <= start or name not in weights:
                raise CodecError(
                    f"{at}: ranges must be contiguous and name weighted implementations"
                )
            cursor = end
            allocation.append((name, start, end))
        if cursor != BUCKETS:
            raise CodecError(f"{where}.allocation: covers {cursor} of {BUCKETS} buckets")
    cls = Rollout if kind == "rollout" else Experiment
    return cls(segment, weights, salt=salt, allocation=allocation)


def decode_state(document: Any, where: str = "state") -> FeatureState:
    document = _expect(document, dict, where)
    segments = _string_list(document.get("segments", []), f"{where}.segments")
    rules: dict[RuleKey, Selector] = {}
    for index, rule in enumerate(_expect(document.get("rules", []), list, f"{where}.rules")):
        at = f"{where}.rules[{index}]"
        rule = _expect(rule, dict, at)
        raw_key = rule.get("key")
        key = None if raw_key is None else tuple(_string_list(raw_key, f"{at}.key"))
        if key in rules:
            raise CodecError(f"{at}.key: duplicate rule {raw_key!r}")
        rules[key] = decode_selector(rule.get("selector"), f"{at}.selector")
    return FeatureState(segments, rules)


def decode_record(raw: str | bytes) -> Record:
    """Parse and validate one stored record; CodecError says what is wrong and where."""
    size = len(raw.encode()) if isinstance(raw, str) else len(raw)
    if size > MAX_RECORD_BYTES:
        raise CodecError(f"record is {size} bytes, over the {MAX_RECORD_BYTES} byte limit")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise CodecError(f"record is not JSON: {error}") from error
    document = _expect(document, dict, "record")
    schema = document.get("schema")
    if schema != SCHEMA_VERSION:
        raise CodecError(
            f"record has schema version {schema!r}; this feats reads version {SCHEMA_VERSION}"
        )
    state = document.get("state")
    time = _expect(document.get("time", 0.0), (int, float), "record.time")
    return Record(
        feature=_expect(document.get("feature"), str, "record.feature"),
        state=None if state is None else decode_state(state),
        author=_expect(document.get("author", ""), str, "record.author"),
        reason=_expect(document.get("reason", ""), str, "record.reason"),
        time=float(time),
    )
