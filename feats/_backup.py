"""Backups of a namespace's configuration: the export document and import plans, no I/O.

An export is one JSON document: every feature's current record and version, and (by
default) its history. Importing it into an empty store (Redis restarted without
persistence, a new instance) restores it exactly, versions, salts and history included, in
one atomic step (RESEED_SCRIPT); importing it into a store that has configuration writes
every feature whose state differs as a new, attributed change (compare-and-set), so the
history records the restore and nothing is silently overwritten.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._codec import MAX_RECORD_BYTES, Record, decode_record, encode_record, read_json
from ._errors import CodecError
from ._stored import Loaded, parse_version, version_position

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_FORMAT_VERSION",
    "Backup",
    "BackupFeature",
    "ImportResult",
    "PlannedWrite",
    "export_document",
    "is_empty",
    "parse_backup",
    "restore_items",
    "write_plan",
]

BACKUP_FORMAT = "feats-backup"
BACKUP_FORMAT_VERSION = 1
MAX_BACKUP_BYTES = 512 * 1024 * 1024
"""A document larger than this is refused before it is parsed."""


@dataclass(frozen=True)
class BackupFeature:
    """One feature in a backup: its current record and the versions before it."""

    feature: str
    version: str
    record: Record
    raw: str
    history: tuple[tuple[str, str], ...] = ()
    """Older ``(version, encoded record)`` pairs, oldest first (the current one excluded)."""


@dataclass(frozen=True)
class Backup:
    namespace: str | None
    exported_at: float | None
    head: str | None
    features: dict[str, BackupFeature]


@dataclass(frozen=True)
class PlannedWrite:
    """A compare-and-set write an import makes into a store that has configuration."""

    feature: str
    expected: str
    """The version the feature must still be at ("" for never configured)."""
    record: Record
    encoded: str


@dataclass(frozen=True)
class ImportResult:
    """What an import did: ``restored`` an empty store as it was, or ``written`` changes."""

    mode: Literal["restored", "written"]
    features: tuple[str, ...]
    """The features restored or written."""
    unchanged: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    """The version of each feature after the import."""


def _record_document(raw: str | bytes) -> Any:
    return json.loads(raw)


def export_document(
    namespace: str,
    loaded: Loaded,
    histories: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """The backup document of a full load (plus each feature's history, if given).

    Records that do not decode are left out and listed under ``skipped``: a backup must not
    fail because of one bad entry, nor carry it along.
    """
    features: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for name in sorted(loaded.records, key=lambda n: version_position(loaded.records[n][0])):
        version, raw = loaded.records[name]
        try:
            record = decode_record(raw)
        except CodecError as error:
            skipped.append({"feature": name, "version": version, "error": str(error)})
            continue
        entry: dict[str, Any] = {
            "feature": record.feature,
            "version": version,
            "record": _record_document(raw),
        }
        if histories is not None:
            older = []
            for entry_id, entry_raw in histories.get(name, ()):
                if version_position(entry_id) >= version_position(version):
                    continue
                try:
                    decode_record(entry_raw)
                except CodecError:
                    continue
                older.append({"version": entry_id, "record": _record_document(entry_raw)})
            entry["history"] = older
        features.append(entry)
    return {
        "format": BACKUP_FORMAT,
        "format_version": BACKUP_FORMAT_VERSION,
        "namespace": namespace,
        "exported_at": time.time(),
        "head": loaded.head,
        "features": features,
        "skipped": skipped,
    }


def _version(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise CodecError(f"{where}: expected a version string, got {type(value).__name__}")
    try:
        ms, seq = parse_version(value)
    except ValueError as error:
        raise CodecError(f"{where}: not a version: {value!r}") from error
    if ms < 0 or seq < 0 or (ms, seq) == (0, 0):
        raise CodecError(f"{where}: not a version: {value!r}")
    return value


def _record(value: Any, feature: str | None, where: str) -> tuple[Record, str]:
    if not isinstance(value, dict):
        raise CodecError(f"{where}: expected a record object, got {type(value).__name__}")
    try:
        raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (ValueError, RecursionError) as error:
        # A document given as objects (not text) may hold NaN or be nested without end.
        raise CodecError(f"{where}: not a JSON record ({type(error).__name__})") from None
    try:
        record = decode_record(raw)
    except CodecError as error:
        raise CodecError(f"{where}: {error}") from error
    if feature is not None and record.feature != feature:
        raise CodecError(f"{where}: the record is for {record.feature!r}, not {feature!r}")
    return record, encode_record(record)


def parse_backup(document: Mapping[str, Any] | str | bytes) -> Backup:
    """Parse and validate a backup document; CodecError says what is wrong and where."""
    if isinstance(document, str | bytes):
        # The strict decoder every read goes through: no NaN, no duplicate keys, bounded
        # depth, UTF-8 without lone surrogates.
        document = read_json(document, limit=MAX_BACKUP_BYTES, what="backup")
    if not isinstance(document, Mapping):
        raise CodecError("backup: expected a JSON object")
    if document.get("format") != BACKUP_FORMAT:
        raise CodecError(f"backup: not a {BACKUP_FORMAT} document")
    if document.get("format_version") != BACKUP_FORMAT_VERSION:
        raise CodecError(
            f"backup: format version {document.get('format_version')!r}; "
            f"this feats reads version {BACKUP_FORMAT_VERSION}"
        )
    entries = document.get("features")
    if not isinstance(entries, list):
        raise CodecError("backup.features: expected a list")
    features: dict[str, BackupFeature] = {}
    for index, entry in enumerate(entries):
        where = f"backup.features[{index}]"
        if not isinstance(entry, dict):
            raise CodecError(f"{where}: expected an object")
        name = entry.get("feature")
        if not isinstance(name, str) or not name:
            raise CodecError(f"{where}.feature: expected a feature name")
        if name in features:
            raise CodecError(f"{where}: {name!r} appears twice")
        version = _version(entry.get("version"), f"{where}.version")
        record, raw = _record(entry.get("record"), name, f"{where}.record")
        history: list[tuple[str, str]] = []
        older = entry.get("history", [])
        if not isinstance(older, list):
            raise CodecError(f"{where}.history: expected a list")
        for position, item in enumerate(older):
            at = f"{where}.history[{position}]"
            if not isinstance(item, dict):
                raise CodecError(f"{at}: expected an object")
            item_version = _version(item.get("version"), f"{at}.version")
            _, item_raw = _record(item.get("record"), name, f"{at}.record")
            history.append((item_version, item_raw))
        history.sort(key=lambda pair: parse_version(pair[0]))
        kept = tuple(pair for pair in history if parse_version(pair[0]) < parse_version(version))
        features[name] = BackupFeature(name, version, record, raw, kept)
    namespace = document.get("namespace")
    exported_at = document.get("exported_at")
    head = document.get("head")
    return Backup(
        namespace=namespace if isinstance(namespace, str) else None,
        exported_at=float(exported_at) if isinstance(exported_at, int | float) else None,
        head=head if isinstance(head, str) else None,
        features=features,
    )


def is_empty(loaded: Loaded) -> bool:
    """A store with no epoch and no configuration: never written, or lost everything."""
    return loaded.epoch is None and not loaded.records


def restore_items(
    backup: Backup,
) -> tuple[list[tuple[str, str, str]], dict[str, list[tuple[str, str]]]]:
    """RESEED_SCRIPT's items (oldest version first) and histories for an empty store."""
    ordered = sorted(backup.features.values(), key=lambda f: parse_version(f.version))
    items = [(f.feature, f.version, f.raw) for f in ordered]
    histories = {f.feature: list(f.history) for f in ordered if f.history}
    for f in ordered:
        if len(f.raw.encode()) > MAX_RECORD_BYTES:  # pragma: no cover - decode_record checked
            raise CodecError(f"{f.feature}: record over {MAX_RECORD_BYTES} bytes")
    return items, histories


def write_plan(
    backup: Backup, loaded: Loaded, *, author: str, reason: str
) -> tuple[list[PlannedWrite], list[str]]:
    """The writes that make a configured store match the backup, and what already does.

    A feature whose stored state equals the backup's (salts and allocations included) is
    left alone; every other one gets a new version carrying ``author`` and ``reason``.
    """
    writes: list[PlannedWrite] = []
    unchanged: list[str] = []
    now = time.time()
    for name in sorted(backup.features):
        feature = backup.features[name]
        current = loaded.records.get(name)
        if current is not None:
            try:
                stored = decode_record(current[1])
            except CodecError:
                stored = None
            if stored is not None and stored.state == feature.record.state:
                unchanged.append(name)
                continue
        record = Record(name, feature.record.state, author, reason, now)
        writes.append(
            PlannedWrite(
                feature=name,
                expected="" if current is None else current[0],
                record=record,
                encoded=encode_record(record),
            )
        )
    return writes, unchanged
