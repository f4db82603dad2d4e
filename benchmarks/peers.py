"""Peer flag libraries (GrowthBook, LaunchDarkly, Unleash, Flagsmith, OpenFeature), offline."""

from __future__ import annotations

import atexit
import collections
import contextlib
import importlib.metadata
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from benchmarks._users import User

if TYPE_CHECKING:
    # Annotations only: each peer is imported lazily so a missing one becomes a PeerFailure.
    from flagsmith import Flagsmith
    from flagsmith.analytics import EventProcessor as FlagsmithEvents
    from ldclient.config import Config as LDConfig
    from openfeature.client import OpenFeatureClient
    from openfeature.hook import Hook
    from UnleashClient.clients.unleash_client import UnleashClient
    from UnleashClient.events import BaseEvent as UnleashBaseEvent

__all__ = [
    "DEFAULT",
    "DOCUMENTED_POLL_INTERVALS",
    "EXPERIMENT_D",
    "IMPLEMENTATIONS",
    "PEER_LIBRARIES",
    "ROLLOUT_B",
    "SCENARIOS",
    "ExposureSink",
    "PeerCase",
    "PeerFailure",
    "PeerLoader",
    "PollInterval",
    "build_peer_cases",
    "build_peer_loaders",
    "quiet_peer_loggers",
]

SCENARIOS: Final = ("a", "b", "c", "d")
IMPLEMENTATIONS: Final = ("acme", "premium", "aperture")
# Percentages; (b) is the rollout for everyone outside CA, (d) the experiment split.
ROLLOUT_B: Final[Mapping[str, int]] = {"acme": 34, "premium": 33, "aperture": 33}
EXPERIMENT_D: Final[Mapping[str, int]] = {"acme": 33, "premium": 33, "aperture": 34}
DEFAULT: Final = "default"
FLAG_KEYS: Final[Mapping[str, str]] = {
    "a": "bench-a",
    "b": "bench-b",
    "c": "bench-missing",
    "d": "bench-d",
}
# Any network attempt must fail fast and visibly: ".invalid" never resolves (RFC 2606).
_NOWHERE: Final = "http://flags.invalid"
_PROBE_USER: Final = User(id=1, country="US")


@dataclass(frozen=True, slots=True)
class PeerFailure:
    library: str
    reason: str


@dataclass(slots=True)
class PeerCase:
    library: str
    version: str
    scenario: str
    evaluate: Callable[[User], str]
    close: Callable[[], None]
    # How the peer was configured, so a reader can judge the comparison.
    note: str = ""
    setup_seconds: float = 0.0
    # Exposures the library handed to the local sink; asynchronous sinks are complete after close().
    exposures: Callable[[], int] | None = None


@dataclass(frozen=True, slots=True)
class PeerLoader:
    library: str
    version: str
    n_flags: int
    # Parses the local document, builds the client, evaluates once; returns the client's close().
    load: Callable[[], Callable[[], None]]


@dataclass(frozen=True, slots=True)
class PollInterval:
    library: str
    mechanism: str
    default_seconds: float | None
    source: str


DOCUMENTED_POLL_INTERVALS: Final[Mapping[str, PollInterval]] = {
    "Unleash": PollInterval(
        library="Unleash",
        mechanism="polling (refresh_interval)",
        default_seconds=15.0,
        source=(
            "UnleashClient README (PyPI), Arguments table: refresh_interval default 15 s; "
            "metrics_interval 60 s. Matches UnleashConfig.refresh_interval = 15 in 6.9.1."
        ),
    ),
    "GrowthBook": PollInterval(
        library="GrowthBook",
        mechanism="cache TTL, refetched lazily on evaluation after expiry (SSE streaming opt-in)",
        default_seconds=60.0,
        source=(
            "growthbook-python README: 'We use a 60s cache TTL', cache_ttl default 60. Note: "
            "in 4.0.0 the async Options.cache_ttl is 60 but the sync GrowthBook(cache_ttl=600)."
        ),
    ),
    "Flagsmith": PollInterval(
        library="Flagsmith",
        mechanism="polling of the environment document in local evaluation (SSE realtime opt-in)",
        default_seconds=60.0,
        source=(
            "Flagsmith docs, Local Evaluation network behaviour: repeated 'every 60 seconds (by "
            "default)'; python client environment_refresh_interval_seconds=60 (commit f519324)."
        ),
    ),
    "LaunchDarkly": PollInterval(
        library="LaunchDarkly",
        mechanism="streaming (SSE push) by default; polling only if stream=False",
        default_seconds=None,
        source=(
            "LaunchDarkly server SDK docs: 'by default, the SDK uses a streaming connection'; "
            "polling default and minimum 30 s (DEFAULT_POLL_INTERVAL = 30 in ldclient.config)."
        ),
    ),
}


class ExposureSink:
    """Bounded in-memory destination for exposure records, so long runs cannot exhaust memory."""

    def __init__(self, keep: int = 10_000) -> None:
        self.count = 0
        self.recent: collections.deque[object] = collections.deque(maxlen=keep)

    def record(self, item: object) -> None:
        self.count += 1
        self.recent.append(item)

    def extend(self, items: Iterable[object]) -> None:
        for item in items:
            self.record(item)


def _version(distribution: str) -> str:
    return importlib.metadata.version(distribution)


def _enabled(value: bool) -> str:
    return "enabled" if value else "disabled"


def _to_str(value: object) -> str:
    return value if isinstance(value, str) else DEFAULT


class _DocumentDir:
    """A private folder for the JSON documents that file-based data sources read."""

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"feats-bench-{prefix}-"))

    def write(self, name: str, document: object) -> Path:
        target = self.path / name
        target.write_text(json.dumps(document))
        return target

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _split(weights: Mapping[str, int], scale: int) -> list[tuple[str, int]]:
    """Integer weights on `scale` that sum exactly to it (libraries reject rounding drift)."""
    if not weights:
        return []
    total = sum(weights.values())
    parts = [(name, weight * scale // total) for name, weight in weights.items()]
    drift = scale - sum(part for _, part in parts)
    name, part = parts[-1]
    parts[-1] = (name, part + drift)
    return parts


# --------------------------------------------------------------------------- GrowthBook


def _growthbook_features(scenario: str) -> dict[str, Any]:
    if scenario == "a":
        return {
            "bench-a": {
                "defaultValue": False,
                "rules": [
                    {
                        "id": "rollout-a",
                        "force": True,
                        "coverage": 0.5,
                        "hashAttribute": "id",
                        "hashVersion": 2,
                        "seed": "bench-a",
                    }
                ],
            }
        }
    if scenario == "b":
        names = list(ROLLOUT_B)
        return {
            "bench-b": {
                "defaultValue": "acme",
                "rules": [
                    {"id": "canada", "condition": {"country": "CA"}, "force": "premium"},
                    {
                        # GrowthBook expresses a multi-way rollout as an untracked experiment rule.
                        "id": "rollout-b",
                        "key": "bench-b-rollout",
                        "variations": names,
                        "weights": [ROLLOUT_B[n] / 100 for n in names],
                        "hashAttribute": "id",
                        "hashVersion": 2,
                        "seed": "bench-b",
                    },
                ],
            }
        }
    if scenario == "c":
        return {}
    names = list(EXPERIMENT_D)
    return {
        "bench-d": {
            "defaultValue": "acme",
            "rules": [
                {
                    "id": "experiment-d",
                    "key": "bench-d",
                    "variations": names,
                    "weights": [EXPERIMENT_D[n] / 100 for n in names],
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "seed": "bench-d",
                    "meta": [{"key": n} for n in names],
                }
            ],
        }
    }


def _growthbook_case(scenario: str) -> PeerCase:
    from growthbook import GrowthBook
    from growthbook.common_types import Experiment, Result, UserContext

    sink = ExposureSink()

    def on_experiment_viewed(
        *, experiment: Experiment[Any], result: Result[Any], user_context: UserContext
    ) -> None:
        sink.record((experiment.key, result.key, result.hashValue))

    gb = GrowthBook(
        features=_growthbook_features(scenario),
        on_experiment_viewed=on_experiment_viewed if scenario == "d" else None,
    )
    key = FLAG_KEYS[scenario]

    # One long-lived instance re-targeted per user is the cheapest sync pattern the SDK offers.
    if scenario == "a":

        def evaluate(user: User) -> str:
            gb.set_attributes({"id": str(user.id), "country": user.country})
            return _enabled(gb.is_on(key))

    else:

        def evaluate(user: User) -> str:
            gb.set_attributes({"id": str(user.id), "country": user.country})
            return _to_str(gb.get_feature_value(key, DEFAULT))

    note = "features dict passed in, no client_key (no fetch); set_attributes per call"
    if scenario == "d":
        note += "; on_experiment_viewed into memory (SDK dedupes per user+variation)"
    return PeerCase(
        library="GrowthBook",
        version=_version("growthbook"),
        scenario=scenario,
        evaluate=evaluate,
        close=gb.destroy,
        note=note,
        exposures=(lambda: sink.count) if scenario == "d" else None,
    )


def _growthbook_loader(document: Path, n_flags: int) -> PeerLoader:
    from growthbook import GrowthBook

    def load() -> Callable[[], None]:
        gb = GrowthBook(features=json.loads(document.read_text()), attributes={"id": "1"})
        gb.is_on("flag-0")
        return gb.destroy

    return PeerLoader("GrowthBook", _version("growthbook"), n_flags, load)


def _growthbook_bool_flags(n_flags: int) -> dict[str, Any]:
    return {f"flag-{i}": {"defaultValue": True} for i in range(n_flags)}


# --------------------------------------------------------------------------- LaunchDarkly


def _ld_flag(
    key: str,
    variations: Sequence[object],
    fallthrough: dict[str, Any],
    rules: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "key": key,
        "version": 1,
        "on": True,
        "variations": list(variations),
        "offVariation": 0,
        "fallthrough": fallthrough,
        "rules": list(rules),
        "targets": [],
        "contextTargets": [],
        "prerequisites": [],
        "salt": key,
        "trackEvents": False,
        "trackEventsFallthrough": False,
        "deleted": False,
    }


def _ld_rollout(weights: Mapping[str, int], names: Sequence[str], kind: str) -> dict[str, Any]:
    return {
        "rollout": {
            "kind": kind,
            "bucketBy": "key",
            "variations": [
                {"variation": names.index(name), "weight": weight}
                for name, weight in _split(weights, 100_000)
            ],
        }
    }


def _launchdarkly_data(scenario: str) -> dict[str, Any]:
    names = list(IMPLEMENTATIONS)
    if scenario == "a":
        half = {"disabled": 50, "enabled": 50}
        flag = _ld_flag(
            "bench-a", [False, True], _ld_rollout(half, ["disabled", "enabled"], "rollout")
        )
        return {"flags": {"bench-a": flag}}
    if scenario == "b":
        canada = {
            "id": "canada",
            "clauses": [{"attribute": "country", "op": "in", "values": ["CA"], "negate": False}],
            "variation": names.index("premium"),
            "trackEvents": False,
        }
        flag = _ld_flag("bench-b", names, _ld_rollout(ROLLOUT_B, names, "rollout"), [canada])
        return {"flags": {"bench-b": flag}}
    if scenario == "c":
        return {"flags": {}}
    # kind=experiment puts every fallthrough evaluation inExperiment: each emits a feature event.
    flag = _ld_flag("bench-d", names, _ld_rollout(EXPERIMENT_D, names, "experiment"))
    return {"flags": {"bench-d": flag}}


@dataclass
class _LDResponse:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)


class _LDEventsToMemory:
    """Stands in for the urllib3 pool the LaunchDarkly event dispatcher posts through."""

    def __init__(self) -> None:
        self.bodies: list[str | bytes] = []

    def request(self, method: str, url: str, **kwargs: Any) -> _LDResponse:
        body = kwargs.get("body")
        if isinstance(body, str | bytes) and url.endswith("/bulk"):
            self.bodies.append(body)
        return _LDResponse()

    def feature_events(self) -> int:
        return sum(
            1
            for body in self.bodies
            for event in json.loads(body)
            if event.get("kind") == "feature"
        )


def _launchdarkly_config(data_source_path: Path, events: _LDEventsToMemory | None) -> LDConfig:
    from ldclient.config import Config
    from ldclient.impl.events.event_processor import DefaultEventProcessor
    from ldclient.integrations import Files
    from ldclient.interfaces import EventProcessor

    def event_processor(config: Config) -> EventProcessor:
        # The real processor (queue, summarizer, formatter, flush thread), only the POST is local.
        processor: EventProcessor = DefaultEventProcessor(config, http=events)  # type: ignore[no-untyped-call]
        return processor

    return Config(
        sdk_key="sdk-feats-bench-offline",
        base_uri=_NOWHERE,
        stream_uri=_NOWHERE,
        events_uri=_NOWHERE,
        update_processor_class=Files.new_data_source(paths=[str(data_source_path)]),
        send_events=events is not None,
        event_processor_class=event_processor if events is not None else None,
        diagnostic_opt_out=True,
    )


def _launchdarkly_case(scenario: str) -> PeerCase:
    from ldclient.client import LDClient
    from ldclient.context import Context

    folder = _DocumentDir("launchdarkly")
    path = folder.write("flags.json", _launchdarkly_data(scenario))
    events = _LDEventsToMemory() if scenario == "d" else None
    client = LDClient(config=_launchdarkly_config(path, events), start_wait=1)
    if not client.is_initialized():
        client.close()  # type: ignore[no-untyped-call]
        folder.remove()
        raise RuntimeError("file data source did not initialize")
    key = FLAG_KEYS[scenario]

    def context(user: User) -> Context:
        return Context.builder(str(user.id)).set("country", user.country).build()

    if scenario == "a":

        def evaluate(user: User) -> str:
            return _enabled(bool(client.variation(key, context(user), False)))

    else:

        def evaluate(user: User) -> str:
            return _to_str(client.variation(key, context(user), DEFAULT))

    def close() -> None:
        client.close()  # type: ignore[no-untyped-call]
        folder.remove()

    if events is None:
        note = "Files data source, send_events=False"
    else:
        note = (
            "Files data source; kind=experiment rollout; real DefaultEventProcessor, "
            "HTTP POST replaced by an in-memory sink; its 10,000-event inbox drops on overflow"
        )
    return PeerCase(
        library="LaunchDarkly",
        version=_version("launchdarkly-server-sdk"),
        scenario=scenario,
        evaluate=evaluate,
        close=close,
        note=note,
        exposures=events.feature_events if events is not None else None,
    )


def _launchdarkly_loader(document: Path, n_flags: int) -> PeerLoader:
    from ldclient.client import LDClient
    from ldclient.context import Context

    def load() -> Callable[[], None]:
        client = LDClient(config=_launchdarkly_config(document, None), start_wait=5)
        client.variation("flag-0", Context.create("1"), False)

        def close() -> None:
            client.close()  # type: ignore[no-untyped-call]

        return close

    return PeerLoader("LaunchDarkly", _version("launchdarkly-server-sdk"), n_flags, load)


def _launchdarkly_bool_flags(n_flags: int) -> dict[str, Any]:
    flags = {
        f"flag-{i}": _ld_flag(f"flag-{i}", [False, True], {"variation": 1}) for i in range(n_flags)
    }
    return {"flags": flags}


# --------------------------------------------------------------------------- Unleash


def _unleash_toggle(
    name: str, strategies: Sequence[dict[str, Any]], impressions: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "type": "release",
        "project": "default",
        "enabled": True,
        "stale": False,
        "impressionData": impressions,
        "strategies": list(strategies),
        "variants": [],
    }


def _unleash_rollout(
    group: str,
    percent: int,
    variants: Mapping[str, int] | None = None,
    constraints: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "name": "flexibleRollout",
        "parameters": {"rollout": str(percent), "stickiness": "userId", "groupId": group},
        "constraints": list(constraints),
        "variants": [
            {"name": name, "weight": weight, "weightType": "variable", "stickiness": "userId"}
            for name, weight in _split(variants or {}, 1000)
        ],
    }


def _unleash_features(scenario: str) -> dict[str, Any]:
    toggles: list[dict[str, Any]] = []
    if scenario == "a":
        toggles = [_unleash_toggle("bench-a", [_unleash_rollout("bench-a", 50)])]
    elif scenario == "b":
        canada = {"contextName": "country", "operator": "IN", "values": ["CA"], "inverted": False}
        toggles = [
            _unleash_toggle(
                "bench-b",
                [
                    _unleash_rollout("bench-b", 100, {"premium": 1}, [canada]),
                    _unleash_rollout("bench-b", 100, ROLLOUT_B),
                ],
            )
        ]
    elif scenario == "d":
        toggles = [
            _unleash_toggle(
                "bench-d", [_unleash_rollout("bench-d", 100, EXPERIMENT_D)], impressions=True
            )
        ]
    return {"version": 2, "features": toggles, "segments": []}


def _unleash_client(
    features_json: str, event_callback: Callable[[UnleashBaseEvent], None] | None
) -> UnleashClient:
    from UnleashClient.cache import BaseCache
    from UnleashClient.clients.unleash_client import UnleashClient
    from UnleashClient.constants import FEATURES_URL
    from UnleashClient.utils import InstanceAllowType

    class MemoryCache(BaseCache):
        """Bootstrapped cache that never touches disk (the default FileCache writes on set)."""

        def __init__(self) -> None:
            self._data: dict[str, Any] = {FEATURES_URL: features_json}
            self.bootstrapped = True

        def set(self, key: str, value: Any) -> None:
            self._data[key] = value

        def mset(self, data: dict[str, Any]) -> None:
            self._data.update(data)

        def get(self, key: str, default: Any | None = None) -> Any:
            return self._data.get(key, default)

        def exists(self, key: str) -> bool:
            return key in self._data

        def destroy(self) -> None:
            self._data.clear()

    client = UnleashClient(
        url=f"{_NOWHERE}/api",
        app_name=f"feats-bench-{uuid.uuid4().hex[:8]}",
        disable_metrics=True,
        disable_registration=True,
        cache=MemoryCache(),
        multiple_instance_mode=InstanceAllowType.SILENTLY_ALLOW,
        event_callback=event_callback,
        # Unknown toggles are logged at this level on every call; WARNING would flood stderr.
        verbose_log_level=logging.DEBUG,
    )
    # fetch_toggles=False is Unleash's documented no-network mode: serve the bootstrapped cache.
    client.initialize_client(fetch_toggles=False)
    return client


def _unleash_case(scenario: str) -> PeerCase:
    from UnleashClient.events import BaseEvent, UnleashEvent

    sink = ExposureSink()

    def on_event(event: BaseEvent) -> None:
        # The callback also receives lifecycle events (READY); only impressions are exposures.
        if isinstance(event, UnleashEvent):
            sink.record(event)

    client = _unleash_client(
        json.dumps(_unleash_features(scenario)), on_event if scenario == "d" else None
    )
    key = FLAG_KEYS[scenario]

    if scenario == "a":

        def evaluate(user: User) -> str:
            context = {"userId": str(user.id), "properties": {"country": user.country}}
            return _enabled(bool(client.is_enabled(key, context)))

    else:

        def evaluate(user: User) -> str:
            context = {"userId": str(user.id), "properties": {"country": user.country}}
            variant = client.get_variant(key, context)
            # "disabled" is Unleash's own answer when no toggle or variant applies.
            return DEFAULT if not variant.get("enabled") else str(variant["name"])

    note = "bootstrapped in-memory cache, initialize_client(fetch_toggles=False), metrics off"
    if scenario == "d":
        note += (
            "; impressionData events to an in-memory event_callback, via the SDK's bounded "
            "queue and thread (drops when full)"
        )
    return PeerCase(
        library="Unleash",
        version=_version("UnleashClient"),
        scenario=scenario,
        evaluate=evaluate,
        close=client.destroy,
        note=note,
        exposures=(lambda: sink.count) if scenario == "d" else None,
    )


def _unleash_loader(document: Path, n_flags: int) -> PeerLoader:
    import UnleashClient.cache
    import UnleashClient.utils  # noqa: F401  (imported before load() is timed)

    def load() -> Callable[[], None]:
        client = _unleash_client(document.read_text(), None)
        client.is_enabled("flag-0", {"userId": "1"})
        close: Callable[[], None] = client.destroy
        return close

    return PeerLoader("Unleash", _version("UnleashClient"), n_flags, load)


def _unleash_bool_flags(n_flags: int) -> dict[str, Any]:
    default = {"name": "default", "parameters": {}, "constraints": [], "variants": []}
    toggles = [_unleash_toggle(f"flag-{i}", [default]) for i in range(n_flags)]
    return {"version": 2, "features": toggles, "segments": []}


# --------------------------------------------------------------------------- Flagsmith


def _flagsmith_state(
    feature_id: int,
    name: str,
    enabled: bool,
    value: object,
    variants: Mapping[str, int] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "feature": {"id": feature_id, "name": name},
        "enabled": enabled,
        "feature_state_value": value,
        "featurestate_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{priority}")),
        "multivariate_feature_state_values": [
            {
                "id": index,
                "multivariate_feature_option": {"value": option},
                "mv_fs_value_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{option}")),
                "percentage_allocation": weight,
            }
            for index, (option, weight) in enumerate((variants or {}).items(), start=1)
        ],
    }
    if priority is not None:
        state["feature_segment"] = {"priority": priority}
    return state


def _flagsmith_segment(
    segment_id: int, name: str, condition: dict[str, str], override: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": segment_id,
        "name": name,
        "rules": [{"type": "ALL", "conditions": [condition], "rules": []}],
        "feature_states": [override],
    }


def _flagsmith_environment(
    states: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    return {
        "api_key": "feats-bench-offline",
        "name": "feats-bench",
        "feature_states": list(states),
        "identity_overrides": [],
        "project": {"segments": list(segments)},
    }


def _flagsmith_document(scenario: str) -> dict[str, Any]:
    if scenario == "a":
        # Flagsmith's boolean rollout: a PERCENTAGE_SPLIT segment overriding a disabled flag.
        half = {"operator": "PERCENTAGE_SPLIT", "property_": "", "value": "50"}
        override = _flagsmith_state(1, "bench-a", True, None, priority=0)
        return _flagsmith_environment(
            [_flagsmith_state(1, "bench-a", False, None)],
            [_flagsmith_segment(101, "bench-a-half", half, override)],
        )
    if scenario == "b":
        # The control value ("acme") receives whatever the variant allocations leave over.
        variants = {name: w for name, w in ROLLOUT_B.items() if name != "acme"}
        canada = {"operator": "EQUAL", "property_": "country", "value": "CA"}
        override = _flagsmith_state(2, "bench-b", True, "premium", priority=0)
        return _flagsmith_environment(
            [_flagsmith_state(2, "bench-b", True, "acme", variants)],
            [_flagsmith_segment(201, "canada", canada, override)],
        )
    if scenario == "c":
        return _flagsmith_environment([])
    variants = {name: w for name, w in EXPERIMENT_D.items() if name != "acme"}
    return _flagsmith_environment([_flagsmith_state(4, "bench-d", True, "acme", variants)])


def _flagsmith_client(document: Path) -> Flagsmith:
    from flagsmith import Flagsmith
    from flagsmith.offline_handlers import LocalFileHandler

    return Flagsmith(offline_mode=True, offline_handler=LocalFileHandler(str(document)))


def _flagsmith_events(sink: ExposureSink) -> FlagsmithEvents:
    from flagsmith.analytics import EventProcessor, EventProcessorConfig

    class ToMemory(EventProcessor):
        """Flagsmith's own buffering and de-duplication, with the batch POST kept in memory."""

        def flush(self) -> None:
            with self._lock:
                events, self._buffer = self._buffer, []
                self._buffered_exposure_keys.clear()
            sink.extend(events)

    return ToMemory(EventProcessorConfig(events_api_url=_NOWHERE), "feats-bench-offline")


def _flagsmith_case(scenario: str) -> PeerCase:
    from flagsmith.exceptions import FlagsmithFeatureDoesNotExistError

    folder = _DocumentDir("flagsmith")
    client = _flagsmith_client(folder.write("environment.json", _flagsmith_document(scenario)))
    key = FLAG_KEYS[scenario]
    sink = ExposureSink()
    events = None
    if scenario == "d":
        # Offline mode never builds the event processor and local flags carry no experiment
        # metadata, so get_experiment_flag cannot record; attach one and track explicitly.
        events = _flagsmith_events(sink)
        client._event_processor = events
        events.start()

    if scenario == "a":

        def evaluate(user: User) -> str:
            flags = client.get_identity_flags(str(user.id), {"country": user.country})
            return _enabled(bool(flags.is_feature_enabled(key)))

    elif scenario == "c":

        def evaluate(user: User) -> str:
            flags = client.get_identity_flags(str(user.id), {"country": user.country})
            try:
                return _to_str(flags.get_feature_value(key))
            except FlagsmithFeatureDoesNotExistError:
                # Offline mode forbids default_flag_handler: a missing flag raises.
                return DEFAULT

    elif scenario == "d":

        def evaluate(user: User) -> str:
            identifier = str(user.id)
            traits = {"country": user.country}
            value = client.get_identity_flags(identifier, traits).get_feature_value(key)
            client.track_exposure_event(key, identifier, value, traits)
            return _to_str(value)

    else:

        def evaluate(user: User) -> str:
            flags = client.get_identity_flags(str(user.id), {"country": user.country})
            return _to_str(flags.get_feature_value(key))

    def close() -> None:
        if events is not None:
            events.stop()
        folder.remove()

    note = "offline_mode=True with LocalFileHandler environment document, get_identity_flags"
    if scenario == "c":
        note += "; missing flag raises, caught -> default"
    if scenario == "d":
        note += (
            "; track_exposure_event into Flagsmith's EventProcessor (private attribute set, "
            "flush kept in memory)"
        )
    return PeerCase(
        library="Flagsmith",
        version=_version("flagsmith"),
        scenario=scenario,
        evaluate=evaluate,
        close=close,
        note=note,
        exposures=(lambda: sink.count) if scenario == "d" else None,
    )


def _flagsmith_loader(document: Path, n_flags: int) -> PeerLoader:
    import flagsmith.offline_handlers  # noqa: F401  (imported before load() is timed)

    def load() -> Callable[[], None]:
        client = _flagsmith_client(document)
        client.get_identity_flags("1").is_feature_enabled("flag-0")
        return lambda: None

    return PeerLoader("Flagsmith", _version("flagsmith"), n_flags, load)


def _flagsmith_bool_flags(n_flags: int) -> dict[str, Any]:
    return _flagsmith_environment(
        [_flagsmith_state(i + 1, f"flag-{i}", True, None) for i in range(n_flags)]
    )


# --------------------------------------------------------------------------- OpenFeature


def _bucketer(salt: str, weights: Mapping[str, int]) -> Callable[[str], str]:
    """The user-supplied rollout the in-memory provider needs: xxh3 into 100,000 buckets."""
    import xxhash

    bounds: list[tuple[int, str]] = []
    upper = 0
    for name, weight in _split(weights, 100_000):
        upper += weight
        bounds.append((upper, name))
    prefix = f"{salt}.".encode()

    def pick(key: str) -> str:
        bucket: int = xxhash.xxh3_64_intdigest(prefix + key.encode()) % 100_000
        for upper_bound, name in bounds:
            if bucket < upper_bound:
                return name
        return bounds[-1][1]

    return pick


def _openfeature_flags(scenario: str) -> dict[str, Any]:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import FlagResolutionDetails, Reason
    from openfeature.provider.in_memory_provider import InMemoryFlag

    if scenario == "a":
        pick_a = _bucketer("bench-a", {"off": 50, "on": 50})

        def rollout_a(
            flag: InMemoryFlag[bool], ctx: EvaluationContext
        ) -> FlagResolutionDetails[bool]:
            variant = pick_a(ctx.targeting_key or "")
            return FlagResolutionDetails(
                value=flag.variants[variant], variant=variant, reason=Reason.SPLIT
            )

        return {
            "bench-a": InMemoryFlag(
                default_variant="off",
                variants={"on": True, "off": False},
                context_evaluator=rollout_a,
            )
        }
    if scenario == "c":
        return {}
    weights = ROLLOUT_B if scenario == "b" else EXPERIMENT_D
    key = FLAG_KEYS[scenario]
    pick = _bucketer(key, weights)
    canada_first = scenario == "b"

    def resolve(flag: InMemoryFlag[str], ctx: EvaluationContext) -> FlagResolutionDetails[str]:
        if canada_first and ctx.attributes.get("country") == "CA":
            return FlagResolutionDetails(
                value="premium", variant="premium", reason=Reason.TARGETING_MATCH
            )
        variant = pick(ctx.targeting_key or "")
        return FlagResolutionDetails(value=variant, variant=variant, reason=Reason.SPLIT)

    return {
        key: InMemoryFlag(
            default_variant="acme",
            variants={name: name for name in IMPLEMENTATIONS},
            context_evaluator=resolve,
        )
    }


def _openfeature_exposure_hook(sink: ExposureSink) -> Hook:
    from openfeature.flag_evaluation import FlagEvaluationDetails, FlagValueType
    from openfeature.hook import Hook, HookContext, HookHints

    class ExposureHook(Hook):
        """OpenFeature has no exposure API; an `after` hook is the spec's place to record one."""

        def after(
            self,
            hook_context: HookContext,
            details: FlagEvaluationDetails[FlagValueType],
            hints: HookHints,
        ) -> None:
            context = hook_context.evaluation_context
            sink.record((details.flag_key, details.variant, context.targeting_key))

    return ExposureHook()


def _openfeature_client(flags: dict[str, Any]) -> tuple[OpenFeatureClient, Callable[[], None]]:
    from openfeature import api
    from openfeature.provider.in_memory_provider import InMemoryProvider
    from openfeature.provider.no_op_provider import NoOpProvider

    # A domain per case keeps the global registry from mixing scenarios.
    domain = f"feats-bench-{uuid.uuid4().hex[:8]}"
    provider = InMemoryProvider(flags)
    api.set_provider_and_wait(provider, domain=domain)

    def close() -> None:
        api.set_provider(NoOpProvider(), domain=domain)
        provider.shutdown()

    return api.get_client(domain), close


def _openfeature_case(scenario: str) -> PeerCase:
    from openfeature.evaluation_context import EvaluationContext

    client, close = _openfeature_client(_openfeature_flags(scenario))
    sink = ExposureSink()
    if scenario == "d":
        client.add_hooks([_openfeature_exposure_hook(sink)])
    key = FLAG_KEYS[scenario]

    if scenario == "a":

        def evaluate(user: User) -> str:
            ctx = EvaluationContext(str(user.id), {"country": user.country})
            return _enabled(bool(client.get_boolean_value(key, False, ctx)))

    else:

        def evaluate(user: User) -> str:
            ctx = EvaluationContext(str(user.id), {"country": user.country})
            return _to_str(client.get_string_value(key, DEFAULT, ctx))

    note = "InMemoryProvider; rollouts are a context_evaluator hashing xxh3 (user code)"
    if scenario == "d":
        note += "; exposures via an `after` hook into memory"
    return PeerCase(
        library="OpenFeature",
        version=_version("openfeature-sdk"),
        scenario=scenario,
        evaluate=evaluate,
        close=close,
        note=note,
        exposures=(lambda: sink.count) if scenario == "d" else None,
    )


def _openfeature_loader(document: Path, n_flags: int) -> PeerLoader:
    import openfeature.api
    import openfeature.provider.no_op_provider  # noqa: F401  (imported before load() is timed)
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.provider.in_memory_provider import InMemoryFlag

    def load() -> Callable[[], None]:
        flags = {
            key: InMemoryFlag(default_variant=spec["defaultVariant"], variants=spec["variants"])
            for key, spec in json.loads(document.read_text())["flags"].items()
        }
        client, close = _openfeature_client(flags)
        client.get_boolean_value("flag-0", False, EvaluationContext("1"))
        return close

    return PeerLoader("OpenFeature", _version("openfeature-sdk"), n_flags, load)


def _openfeature_bool_flags(n_flags: int) -> dict[str, Any]:
    spec = {"defaultVariant": "on", "variants": {"on": True, "off": False}}
    return {"flags": {f"flag-{i}": spec for i in range(n_flags)}}


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class _Peer:
    library: str
    # Imported before any timing, so setup and load figures exclude first-import cost.
    modules: tuple[str, ...]
    case: Callable[[str], PeerCase]
    bool_flags: Callable[[int], dict[str, Any]]
    loader: Callable[[Path, int], PeerLoader]


_PEERS: Final = (
    _Peer(
        "GrowthBook", ("growthbook",), _growthbook_case, _growthbook_bool_flags, _growthbook_loader
    ),
    _Peer(
        "LaunchDarkly",
        ("ldclient.client", "ldclient.integrations", "ldclient.impl.events.event_processor"),
        _launchdarkly_case,
        _launchdarkly_bool_flags,
        _launchdarkly_loader,
    ),
    _Peer(
        "Unleash",
        ("UnleashClient", "UnleashClient.cache"),
        _unleash_case,
        _unleash_bool_flags,
        _unleash_loader,
    ),
    _Peer(
        "Flagsmith",
        ("flagsmith", "flagsmith.offline_handlers", "flagsmith.analytics"),
        _flagsmith_case,
        _flagsmith_bool_flags,
        _flagsmith_loader,
    ),
    _Peer(
        "OpenFeature",
        ("openfeature.api", "openfeature.provider.in_memory_provider", "xxhash"),
        _openfeature_case,
        _openfeature_bool_flags,
        _openfeature_loader,
    ),
)
PEER_LIBRARIES: Final = tuple(peer.library for peer in _PEERS)


_LIBRARY_LOGGERS: Final = ("growthbook", "ldclient", "UnleashClient", "flagsmith", "openfeature")


def quiet_peer_loggers(level: int = logging.ERROR) -> None:
    """Raise the peers' logger thresholds, as a service calling them per request would.

    GrowthBook logs a WARNING on every evaluation of an unknown feature (scenario c) and
    LaunchDarkly warns when its event queue overflows (scenario d); with Python's last-resort
    handler that is a line on stderr per call, which would time the terminal, not the library.
    """
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _expected_answers(scenario: str) -> frozenset[str]:
    if scenario == "a":
        return frozenset({"enabled", "disabled"})
    if scenario == "c":
        return frozenset({DEFAULT})
    return frozenset(IMPLEMENTATIONS)


def _import(peer: _Peer) -> None:
    for module in peer.modules:
        importlib.import_module(module)


def build_peer_cases(scenario: str) -> tuple[list[PeerCase], list[PeerFailure]]:
    """Set up every peer for one scenario; setup_seconds includes one probe evaluation.

    Also calls `quiet_peer_loggers()`; a harness that wants the peers' warnings can lower it again.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}, expected one of {SCENARIOS}")
    quiet_peer_loggers()
    expected = _expected_answers(scenario)
    cases: list[PeerCase] = []
    failures: list[PeerFailure] = []
    for peer in _PEERS:
        try:
            _import(peer)
        except Exception as error:
            failures.append(PeerFailure(peer.library, f"import failed: {_reason(error)}"))
            continue
        started = time.perf_counter()
        try:
            case = peer.case(scenario)
        except Exception as error:
            failures.append(PeerFailure(peer.library, f"setup failed: {_reason(error)}"))
            continue
        try:
            # A peer that builds but cannot evaluate must be reported, not crash the suite later.
            answer = case.evaluate(_PROBE_USER)
        except Exception as error:
            failures.append(PeerFailure(peer.library, f"probe evaluation failed: {_reason(error)}"))
            _close_quietly(case)
            continue
        case.setup_seconds = time.perf_counter() - started
        if answer not in expected:
            # Some SDKs swallow errors and answer the default; that is a broken setup here.
            reason = f"probe answered {answer!r}, expected one of {sorted(expected)}"
            failures.append(PeerFailure(peer.library, reason))
            _close_quietly(case)
            continue
        cases.append(case)
    return cases, failures


def _close_quietly(case: PeerCase) -> None:
    # The case is already reported as failed; a second error from teardown adds nothing.
    with contextlib.suppress(Exception):
        case.close()


def build_peer_loaders(
    n_flags: int, workdir: Path | None = None
) -> tuple[list[PeerLoader], list[PeerFailure]]:
    """Write each peer's `n_flags`-boolean-flag document to disk and return timed loaders for it.

    Libraries are imported here, not in `load()`, so a harness measuring `load()` sees the
    configuration's cost, not the import's. Documents already in `workdir` are reused: build them
    once in a parent process and measure in a fresh child, whose heap then holds no freed
    document memory that would absorb (and hide) the load's RSS growth. Without `workdir` the
    documents live in a temporary folder removed at interpreter exit.
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="feats-bench-loaders-"))
        atexit.register(shutil.rmtree, workdir, True)
    workdir.mkdir(parents=True, exist_ok=True)
    loaders: list[PeerLoader] = []
    failures: list[PeerFailure] = []
    for peer in _PEERS:
        try:
            document = workdir / f"{peer.library.lower()}-{n_flags}.json"
            if not document.exists():
                document.write_text(json.dumps(peer.bool_flags(n_flags)))
            _import(peer)
            loaders.append(peer.loader(document, n_flags))
        except Exception as error:
            failures.append(PeerFailure(peer.library, _reason(error)))
    return loaders, failures
