"""The one way in for everything read from storage, and the stored form of configuration.

``decode`` is strict JSON (UTF-8 without lone surrogates, no NaN or Infinity, no duplicate
keys, bounded integers and nesting, a size limit) followed by the schema of one kind of
document; whatever goes wrong comes out as a CodecError saying what and where, never as
anything else. Configuration records (schema 1) are encoded and decoded here too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from ._errors import CodecError
from ._selectors import MAX_NAME, RuleKey, Selector, decode_selector, expect
from ._state import Change, FeatureState, shape_issues

__all__ = [
    "MAX_RECORD_BYTES",
    "SCHEMA_VERSION",
    "Record",
    "decode",
    "decode_record",
    "decode_state",
    "encode_record",
    "encode_state",
    "expect",
    "expect_name",
    "read_json",
]

T = TypeVar("T")

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 256 * 1024
"""Larger records are refused on write and skipped on read: no state needs more."""

_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""Only JSON escapes can put a lone surrogate into decoded text (its bytes are UTF-8)."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise CodecError(f"duplicate key {key!r}")
            seen.add(key)
    return document


def _constant(name: str) -> Any:
    raise CodecError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise CodecError(f"{text[:20]} is out of range")
    return value


def _lone_surrogate(document: Any) -> bool:
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_DECODER = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_constant, parse_float=_float)
"""One decoder for every read: json.loads would build one per call. Integers are left to
the parser: it refuses more than sys.int_info's digits, and every schema bounds the numbers
it takes (a 400-digit weight is not a weight)."""


def read_json(raw: str | bytes, *, limit: int, what: str) -> Any:
    """Strict JSON of at most ``limit`` bytes; CodecError naming ``what`` otherwise."""
    if len(raw) > limit:
        raise CodecError(f"{what} is {len(raw)} bytes or more, over the {limit} byte limit")
    try:
        if isinstance(raw, bytes):
            text = raw.decode("utf-8")
        else:
            text = raw
            if len(text.encode("utf-8")) > limit:
                raise CodecError(f"{what} is over the {limit} byte limit")
    except UnicodeError as error:
        raise CodecError(f"{what} is not JSON: not UTF-8 text ({error})") from None
    try:
        document = _DECODER.decode(text)
    except CodecError as error:
        raise CodecError(f"{what} is not valid JSON: {error}") from None
    except RecursionError:
        raise CodecError(f"{what} is nested too deeply") from None
    except ValueError as error:
        raise CodecError(f"{what} is not JSON: {error}") from None
    if _ESCAPED_SURROGATE.search(text) and _lone_surrogate(document):
        raise CodecError(f"{what} has a lone surrogate in a string: not valid UTF-8 text")
    return document


def decode(schema: Callable[[Any], T], raw: str | bytes, *, limit: int, what: str) -> T:
    """``raw`` read as strict JSON and checked by ``schema``: the one decoding path.

    ``schema`` raises CodecError for what it refuses; anything else it raises on hostile
    input (a value too large, too deep, of a kind it did not expect) is turned into a
    CodecError here, so that nothing read from storage escapes as another error.
    """
    document = read_json(raw, limit=limit, what=what)
    try:
        return schema(document)
    except CodecError:
        raise
    except (
        ArithmeticError,
        AttributeError,
        LookupError,
        RecursionError,
        TypeError,
        ValueError,
    ) as error:
        raise CodecError(f"{what}: unreadable ({type(error).__name__}: {error})") from None


def expect_name(value: Any, where: str) -> str:
    """A name (feature, implementation, segment, identity) of 1 to MAX_NAME characters."""
    name: str = expect(value, str, where)
    if not name or len(name) > MAX_NAME:
        raise CodecError(f"{where}: a name of 1-{MAX_NAME} characters, got {name[:40]!r}")
    return name


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


def encode_state(state: FeatureState) -> dict[str, Any]:
    return {
        "segments": list(state.segments),
        "rules": [
            {"key": None if key is None else list(key), "selector": selector.encode()}
            for key, selector in state.rules.items()
        ],
    }


def encode_record(record: Record) -> str:
    """The stored text of ``record``; CodecError if it cannot be stored as valid UTF-8 JSON."""
    try:
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
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as error:
        raise CodecError(f"{record.feature}: cannot be stored: {error}") from error
    if size > MAX_RECORD_BYTES:
        raise CodecError(
            f"{record.feature}: the encoded state is {size} bytes, "
            f"over the {MAX_RECORD_BYTES} byte limit"
        )
    return text


def _string_list(value: Any, where: str) -> list[str]:
    items: list[str] = expect(value, list, where)
    for index, item in enumerate(items):
        if type(item) is not str:
            expect(item, str, f"{where}[{index}]")
    return items


def decode_state(document: Any, where: str = "state") -> FeatureState:
    """A stored state, whole and sound: every rule key fits the segments, every split can
    split users. What it cannot vouch for (the names the code declares) is left to
    ``state_issues``."""
    document = expect(document, dict, where)
    segments = _string_list(document.get("segments", []), f"{where}.segments")
    rules: dict[RuleKey, Selector] = {}
    for index, rule in enumerate(expect(document.get("rules", []), list, f"{where}.rules")):
        at = f"{where}.rules[{index}]"
        if type(rule) is not dict:
            expect(rule, dict, at)
        raw_key = rule.get("key")
        key = None if raw_key is None else tuple(_string_list(raw_key, f"{at}.key"))
        if key in rules:
            raise CodecError(f"{at}.key: duplicate rule {raw_key!r}")
        rules[key] = decode_selector(rule.get("selector"), f"{at}.selector")
    state = FeatureState.of(tuple(segments), rules)
    issues = shape_issues(state)
    if issues:
        raise CodecError(f"{where}: {issues[0].message}")
    return state


LAST_RECORD_TIME = 253_402_300_799.0
"""9999-12-31T23:59:59Z: a record's time must be a datetime (history, diffs, the CLI)."""


def _record(document: Any) -> Record:
    document = expect(document, dict, "record")
    schema = document.get("schema")
    if schema != SCHEMA_VERSION:
        raise CodecError(
            f"record has schema version {schema!r}; this feats reads version {SCHEMA_VERSION}"
        )
    if "state" not in document:
        raise CodecError("record has no state (null resets a feature; a missing one is a mistake)")
    state = document["state"]
    when = document.get("time", 0.0)
    if type(when) is not float:
        when = expect(when, (int, float), "record.time")
    if not 0 <= when <= LAST_RECORD_TIME:
        raise CodecError(f"record.time {when!r:.40} is not a time (seconds since 1970, to 9999)")
    author, reason = document.get("author", ""), document.get("reason", "")
    if type(author) is not str or type(reason) is not str:
        expect(author, str, "record.author")
        expect(reason, str, "record.reason")
    return Record(
        feature=expect_name(document.get("feature"), "record.feature"),
        state=None if state is None else decode_state(state),
        author=author,
        reason=reason,
        time=float(when),
    )


def decode_record(raw: str | bytes) -> Record:
    """Read one stored configuration record; CodecError says what is wrong and where."""
    return decode(_record, raw, limit=MAX_RECORD_BYTES, what="record")
