"""The catalog: what every App declares, published as validated JSON for tools without the code.

Each App publishes its declarations when it starts (and again now and then, so "last seen"
stays true) under an identity that is the hash of the declarations: identical deploys share
one entry. Tools that do not import the application's code (the CLI, an admin page) list
features and validate writes against the catalog, and report drift between what is
configured and what is declared.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ._breath import Breathe, still
from ._codec import decode, expect, expect_name
from ._declarations import (
    Accessor,
    FeatureDeclaration,
    Implementation,
    Registry,
    SegmentDeclaration,
    TypeName,
    type_ancestry,
    type_key,
)
from ._errors import CodecError, NotFoundError
from ._state import FeatureState, state_issues

__all__ = [
    "CATALOG_HEARTBEAT_SECONDS",
    "CATALOG_LIVE_SECONDS",
    "CATALOG_SCHEMA",
    "MAX_CATALOG_BYTES",
    "SEEN_PREFIX",
    "Catalog",
    "CatalogEntry",
    "CatalogPublisher",
    "Drift",
    "FeatureInfo",
    "ImplementationInfo",
    "SegmentInfo",
    "catalog_fields",
    "declarations_document",
    "decode_entry",
    "encode_entry",
    "find_drift",
    "heartbeat",
    "merge_registries",
    "state_problems",
]

CATALOG_SCHEMA = 1
MAX_CATALOG_BYTES = 16 * 1024 * 1024
"""Larger entries are refused on publish and skipped on read."""
MAX_CLOCK_SKEW = 300.0
"""An entry seen further in the future than this is refused: it would hide the others."""
CATALOG_HEARTBEAT_SECONDS = 60.0
"""A running App says this often that its deploy still runs (a heartbeat, not the entry)."""
CATALOG_LIVE_SECONDS = 3 * CATALOG_HEARTBEAT_SECONDS
"""An entry seen this recently belongs to a deploy that is still running."""


# -- the document ----------------------------------------------------------------------


def _type_document(annotation: Any) -> dict[str, Any]:
    return {
        "name": getattr(annotation, "__name__", None) or repr(annotation),
        "key": type_key(annotation),
        "mro": list(type_ancestry(annotation)),
    }


def _module(function: Any) -> str | None:
    module = getattr(function, "__module__", None)
    return module if isinstance(module, str) else None


def _feature_document(declaration: FeatureDeclaration) -> dict[str, Any]:
    default = declaration.implementations[declaration.default]
    return {
        "name": declaration.name,
        "module": _module(default.function),
        "doc": declaration.doc,
        "boolean": declaration.boolean,
        "default": declaration.default,
        "inputs": [_type_document(annotation) for annotation in declaration.input_types],
        "implementations": [
            {"name": impl.name, "doc": impl.doc, "returns": impl.returns}
            for impl in declaration.implementations.values()
        ],
    }


def _segment_document(declaration: SegmentDeclaration) -> dict[str, Any]:
    return {
        "name": declaration.name,
        "module": _module(declaration.accessors[0].read) if declaration.accessors else None,
        "doc": declaration.doc,
        "options": None if declaration.options is None else list(declaration.options),
        "accepts": [
            {"method": accessor.method, **_type_document(accessor.input_type)}
            for accessor in declaration.accessors
        ],
    }


def declarations_document(registry: Registry) -> dict[str, Any]:
    """Every feature and segment of ``registry`` as plain JSON data (no code)."""
    return {
        "features": [_feature_document(declaration) for declaration in registry],
        "segments": [_segment_document(segment) for segment in registry.segments.values()],
    }


def _canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical_declarations(registry: Registry, breathe: Breathe) -> list[str]:
    """The pieces of ``_canonical(declarations_document(registry))``, made one declaration
    at a time so that thousands of them never hold the interpreter in one long call."""
    parts = ['{"features":[']
    for count, declaration in enumerate(registry):
        if count and not count % 16:
            breathe()
        parts.append(("," if count else "") + _canonical(_feature_document(declaration)))
    parts.append('],"segments":[')
    parts.append(
        ",".join(_canonical(_segment_document(segment)) for segment in registry.segments.values())
    )
    parts.append("]}")
    return parts


def encode_entry(
    registry: Registry,
    *,
    seen: float | None = None,
    host: str | None = None,
    pid: int | None = None,
    breathe: Breathe = still,
) -> tuple[str, str]:
    """``(identity, text)`` to publish: the identity is a hash of the declarations only."""
    parts = _canonical_declarations(registry, breathe)
    # Hashed and sized piece by piece, and joined once: every pass over megabytes of text
    # in one call would hold the interpreter for milliseconds.
    digest, size = hashlib.sha256(), 0
    for count, part in enumerate(parts):
        if not count % 64:
            breathe()
        data = part.encode()
        digest.update(data)
        size += len(data)
    identity = digest.hexdigest()[:16]
    envelope = _canonical(
        {
            "schema": CATALOG_SCHEMA,
            "identity": identity,
            "seen": time.time() if seen is None else seen,
            "host": socket.gethostname() if host is None else host,
            "pid": os.getpid() if pid is None else pid,
        }
    )
    # Sorted keys put "declarations" first: splice the text already made rather than
    # encode thousands of declarations twice.
    tail = "," + envelope[1:]
    size += len('{"declarations":') + len(tail.encode())
    if size > MAX_CATALOG_BYTES:
        raise CodecError(
            f"the catalog entry is {size} bytes, over the {MAX_CATALOG_BYTES} byte limit"
        )
    breathe()
    text = "".join(['{"declarations":', *parts, tail])
    return identity, text


SEEN_PREFIX = "seen:"
"""Catalog fields ``seen:<identity>`` are heartbeats: when a deploy was last seen running."""


def heartbeat(*, seen: float | None = None, host: str | None = None, pid: int | None = None) -> str:
    """The small ``seen:<identity>`` value a running App refreshes now and then."""
    return _canonical(
        {
            "seen": time.time() if seen is None else seen,
            "host": socket.gethostname() if host is None else host,
            "pid": os.getpid() if pid is None else pid,
        }
    )


def catalog_fields(identity: str, document: str | None = None) -> dict[str, str]:
    """The catalog hash fields to write: the entry (when it is not stored yet) and its
    heartbeat."""
    fields = {SEEN_PREFIX + identity: heartbeat()}
    if document is not None:
        fields[identity] = document
    return fields


# -- reading it back -------------------------------------------------------------------


@dataclass(frozen=True)
class ImplementationInfo:
    name: str
    doc: str | None
    returns: str


@dataclass(frozen=True)
class FeatureInfo:
    """A feature as one catalog entry describes it."""

    name: str
    module: str | None
    doc: str | None
    boolean: bool
    default: str
    inputs: tuple[TypeName, ...]
    implementations: Mapping[str, ImplementationInfo]

    def declaration(self) -> FeatureDeclaration:
        return FeatureDeclaration(
            name=self.name,
            doc=self.doc,
            input_types=self.inputs,
            implementations={
                name: Implementation(name, _not_imported, False, impl.doc, impl.returns)
                for name, impl in self.implementations.items()
            },
            default=self.default,
            boolean=self.boolean,
        )


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as one catalog entry describes it."""

    name: str
    module: str | None
    doc: str | None
    options: tuple[str, ...] | None
    accepts: tuple[tuple[str, TypeName], ...]

    def declaration(self) -> SegmentDeclaration:
        return SegmentDeclaration(
            name=self.name,
            doc=self.doc,
            options=self.options,
            accessors=tuple(
                Accessor(input_type, method, _not_imported) for method, input_type in self.accepts
            ),
        )


def _not_imported(*_args: Any) -> Any:
    raise NotFoundError("a declaration read from the catalog has no code to call")


@dataclass(frozen=True)
class CatalogEntry:
    """What one deploy (one set of declarations) published, and when it was last seen."""

    identity: str
    seen: float
    host: str
    pid: int
    features: Mapping[str, FeatureInfo]
    segments: Mapping[str, SegmentInfo]


def _optional_str(value: Any, where: str) -> str | None:
    return None if value is None else expect(value, str, where)


def _type_name(document: Any, where: str) -> TypeName:
    document = expect(document, dict, where)
    mro = expect(document.get("mro", []), list, f"{where}.mro")
    return TypeName(
        name=expect_name(document.get("name"), f"{where}.name"),
        key=expect_name(document.get("key"), f"{where}.key"),
        mro=tuple(expect_name(item, f"{where}.mro") for item in mro),
    )


def _feature_info(document: Any, where: str) -> FeatureInfo:
    document = expect(document, dict, where)
    name = expect_name(document.get("name"), f"{where}.name")
    implementations: dict[str, ImplementationInfo] = {}
    for index, item in enumerate(expect(document.get("implementations"), list, where)):
        at = f"{where}.implementations[{index}]"
        item = expect(item, dict, at)
        impl = expect_name(item.get("name"), f"{at}.name")
        implementations[impl] = ImplementationInfo(
            impl,
            _optional_str(item.get("doc"), f"{at}.doc"),
            expect(item.get("returns", ""), str, f"{at}.returns"),
        )
    default = expect_name(document.get("default"), f"{where}.default")
    if default not in implementations:
        raise CodecError(f"{where}.default: {default!r} is not one of its implementations")
    return FeatureInfo(
        name=name,
        module=_optional_str(document.get("module"), f"{where}.module"),
        doc=_optional_str(document.get("doc"), f"{where}.doc"),
        boolean=expect(document.get("boolean", False), bool, f"{where}.boolean"),
        default=default,
        inputs=tuple(
            _type_name(item, f"{where}.inputs[{index}]")
            for index, item in enumerate(expect(document.get("inputs", []), list, where))
        ),
        implementations=implementations,
    )


def _segment_info(document: Any, where: str) -> SegmentInfo:
    document = expect(document, dict, where)
    options = document.get("options")
    if options is not None:
        options = tuple(
            expect(option, str, f"{where}.options")
            for option in expect(options, list, f"{where}.options")
        )
    accepts = []
    for index, item in enumerate(expect(document.get("accepts", []), list, where)):
        at = f"{where}.accepts[{index}]"
        accepts.append(
            (expect_name(expect(item, dict, at).get("method"), at), _type_name(item, at))
        )
    return SegmentInfo(
        name=expect_name(document.get("name"), f"{where}.name"),
        module=_optional_str(document.get("module"), f"{where}.module"),
        doc=_optional_str(document.get("doc"), f"{where}.doc"),
        options=options,
        accepts=tuple(accepts),
    )


def _entry(identity: str, now: float) -> Callable[[Any], CatalogEntry]:
    where = f"catalog entry {identity}"

    def schema(document: Any) -> CatalogEntry:
        document = expect(document, dict, where)
        if document.get("schema") != CATALOG_SCHEMA:
            raise CodecError(
                f"{where}: schema {document.get('schema')!r}; this feats reads {CATALOG_SCHEMA}"
            )
        declarations = expect(document.get("declarations"), dict, f"{where}.declarations")
        features = [
            _feature_info(item, f"{where}.features[{index}]")
            for index, item in enumerate(expect(declarations.get("features", []), list, where))
        ]
        segments = [
            _segment_info(item, f"{where}.segments[{index}]")
            for index, item in enumerate(expect(declarations.get("segments", []), list, where))
        ]
        seen = float(expect(document.get("seen", 0.0), (int, float), f"{where}.seen"))
        if seen > now + MAX_CLOCK_SKEW:
            raise CodecError(
                f"{where}.seen: {seen:.0f} is in the future; an entry may not claim to be newest"
            )
        return CatalogEntry(
            identity=identity,
            seen=seen,
            host=expect(document.get("host", ""), str, f"{where}.host"),
            pid=_pid(document.get("pid", 0), f"{where}.pid"),
            features={feature.name: feature for feature in features},
            segments={segment.name: segment for segment in segments},
        )

    return schema


def _pid(value: Any, where: str) -> int:
    pid: int = expect(value, int, where)
    if not 0 <= pid < 2**32:
        raise CodecError(f"{where}: not a process id: {str(pid)[:20]}")
    return pid


def _heartbeat(where: str, now: float) -> Callable[[Any], tuple[float, str, int]]:
    def schema(document: Any) -> tuple[float, str, int]:
        document = expect(document, dict, where)
        seen = float(expect(document.get("seen"), (int, float), f"{where}.seen"))
        if seen > now + MAX_CLOCK_SKEW:
            raise CodecError(f"{where}: seen {seen:.0f} is in the future")
        return (
            seen,
            expect(document.get("host", ""), str, f"{where}.host"),
            _pid(document.get("pid", 0), f"{where}.pid"),
        )

    return schema


def decode_entry(identity: str, raw: str | bytes, *, now: float | None = None) -> CatalogEntry:
    """Parse and validate one published entry; CodecError says what is wrong and where."""
    return decode(
        _entry(identity, time.time() if now is None else now),
        raw,
        limit=MAX_CATALOG_BYTES,
        what=f"catalog entry {identity}",
    )


@dataclass(frozen=True)
class Catalog:
    """Every readable entry, newest first; per name, the newest entry that declares it wins."""

    entries: tuple[CatalogEntry, ...]
    problems: tuple[str, ...] = ()
    features: Mapping[str, FeatureInfo] = field(default_factory=dict)
    segments: Mapping[str, SegmentInfo] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, str], *, now: float | None = None) -> Catalog:
        """The catalog hash as storage returns it: entries and their heartbeats."""
        now = time.time() if now is None else now
        entries: list[CatalogEntry] = []
        problems: list[str] = []
        beats: dict[str, tuple[float, str, int]] = {}
        for field_name, text in raw.items():
            if field_name.startswith(SEEN_PREFIX):
                try:
                    beats[field_name.removeprefix(SEEN_PREFIX)] = decode(
                        _heartbeat(field_name, now), text, limit=4096, what=f"catalog {field_name}"
                    )
                except CodecError as error:
                    problems.append(str(error))
        for identity, text in raw.items():
            if identity.startswith(SEEN_PREFIX):
                continue
            try:
                entry = decode_entry(identity, text, now=now)
            except CodecError as error:
                problems.append(str(error))
                continue
            beat = beats.get(identity)
            if beat is not None and beat[0] > entry.seen:
                entry = replace(entry, seen=beat[0], host=beat[1], pid=beat[2])
            entries.append(entry)
        entries.sort(key=lambda entry: entry.seen, reverse=True)
        return cls(tuple(entries), tuple(problems), *_merged(entries, now))

    @property
    def empty(self) -> bool:
        return not self.features and not self.segments

    def registry(self) -> Registry:
        """A Registry built from the catalog: enough to validate states, nothing to call."""
        registry = Registry()
        for feature in self.features.values():
            registry.add_feature(feature.declaration())
        for segment in self.segments.values():
            registry.add_segment(segment.declaration())
        return registry

    def declared_by(self, feature: str) -> list[CatalogEntry]:
        return [entry for entry in self.entries if feature in entry.features]


def _merged(
    entries: list[CatalogEntry], now: float
) -> tuple[dict[str, FeatureInfo], dict[str, SegmentInfo]]:
    """Per name, what the running Apps declare together, else what the newest entry says.

    Entries seen within CATALOG_LIVE_SECONDS are running deploys: the implementations,
    options and input types any of them declares all count, so no entry (a rolling deploy,
    or one written by hand) can hide another's. Older entries only speak for names no
    running App declares, newest first: a deploy that dropped an implementation drifts.
    """
    live = [entry for entry in entries if now - entry.seen <= CATALOG_LIVE_SECONDS]
    features: dict[str, FeatureInfo] = {}
    segments: dict[str, SegmentInfo] = {}
    for entry in live:
        for name, feature in entry.features.items():
            held = features.get(name)
            if held is None:
                features[name] = feature
            elif held.inputs == feature.inputs:
                more = {
                    key: value
                    for key, value in feature.implementations.items()
                    if key not in held.implementations
                }
                if more:
                    features[name] = replace(held, implementations={**held.implementations, **more})
        for name, segment in entry.segments.items():
            kept = segments.get(name)
            if kept is None:
                segments[name] = segment
                continue
            options = kept.options
            if options is not None and segment.options is not None:
                options = (*options, *(o for o in segment.options if o not in options))
            elif segment.options is None:
                options = None
            accepts = (*kept.accepts, *(a for a in segment.accepts if a not in kept.accepts))
            segments[name] = replace(kept, options=options, accepts=accepts)
    for entry in entries:
        if entry in live:
            continue
        for name, feature in entry.features.items():
            features.setdefault(name, feature)
        for name, segment in entry.segments.items():
            segments.setdefault(name, segment)
    return features, segments


def merge_registries(primary: Registry, secondary: Registry) -> Registry:
    """One Registry: every name of ``primary``, plus the names only ``secondary`` has."""
    merged = Registry()
    for declaration in primary:
        merged.add_feature(declaration)
    for declaration in secondary:
        if declaration.name not in merged.features:
            merged.add_feature(declaration)
    for segment in (*primary.segments.values(), *secondary.segments.values()):
        if segment.name not in merged.segments:
            merged.add_segment(segment)
    return merged


class CatalogPublisher:
    """What and when an App publishes about its declarations.

    The entry itself (megabytes for thousands of features) is written only when the store
    lacks one of the same identity: identical deploys share it. A heartbeat, a few dozen
    bytes, says every ``heartbeat`` seconds that the deploy still runs. After a failure,
    nothing before ``retry`` seconds.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        heartbeat: float = CATALOG_HEARTBEAT_SECONDS,
        retry: float = 30.0,
    ) -> None:
        self.registry = registry
        self.heartbeat = heartbeat
        self.retry = retry
        self._entry: tuple[int, str, str] | None = None
        self._stored: str | None = None
        """The identity whose entry this store is known to hold."""
        self._at = 0.0
        self._not_before = 0.0

    def due(self, now: float) -> bool:
        if not self.registry.features and not self.registry.segments:
            return False
        if now < self._not_before:
            return False
        current = self._identity()
        return current is None or self._stored != current or now - self._at >= self.heartbeat

    def _identity(self) -> str | None:
        entry = self._entry
        if entry is None or entry[0] != self.registry.generation:
            return None
        return entry[1]

    def entry(self, breathe: Breathe = still) -> tuple[str, str]:
        """``(identity, document)`` of the declarations as they are now, made once per
        change of the declarations."""
        generation = self.registry.generation
        if self._entry is None or self._entry[0] != generation:
            identity, document = encode_entry(self.registry, breathe=breathe)
            self._entry = (generation, identity, document)
        return self._entry[1], self._entry[2]

    def needs_entry(self, identity: str) -> bool:
        """Whether the store may lack the entry (ask it before sending megabytes)."""
        return self._stored != identity

    def published(self, now: float, identity: str) -> None:
        self._stored = identity
        self._at = now

    def failed(self, now: float) -> None:
        self._not_before = now + self.retry

    def forget(self) -> None:
        """Another store (or one that lost everything): publish the entry afresh."""
        self._stored = None


# -- drift -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """One mismatch between what is configured and what Apps declare."""

    feature: str
    kind: str
    """``undeclared``, ``unconfigured`` or ``invalid`` (a rule the declarations cannot serve)."""
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "kind": self.kind, "message": self.message}


def state_problems(feature: str, state: FeatureState, registry: Registry) -> list[str]:
    """Every reason ``state`` does not fit ``feature`` as ``registry`` declares it."""
    return [issue.message for issue in state_issues(feature, state, registry)]


def find_drift(registry: Registry, configured: Mapping[str, FeatureState | None]) -> list[Drift]:
    """Features configured but declared nowhere, declared but never configured, and rules
    naming implementations, segments or options that no App declares."""
    found: list[Drift] = []
    for feature in sorted(set(configured) | set(registry.features)):
        state = configured.get(feature)
        if feature not in registry.features:
            if state is not None:
                found.append(
                    Drift(feature, "undeclared", "configured, but no App declares this feature")
                )
            continue
        if state is None:
            why = "never configured" if feature not in configured else "reset to its default"
            found.append(
                Drift(feature, "unconfigured", f"declared, {why}: the default answers everywhere")
            )
            continue
        for problem in state_problems(feature, state, registry):
            found.append(Drift(feature, "invalid", problem + "; the default answers there"))
    return found
