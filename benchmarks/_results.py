"""What a run produces: plain dataclasses, written to results.json as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EvaluationRow",
    "ExposureRun",
    "Failure",
    "GcRow",
    "GcRun",
    "LatencyFloor",
    "LoadedRun",
    "PollRow",
    "PropagationRun",
    "Results",
    "StallPhase",
    "StallRun",
    "StartupRow",
    "Target",
    "TelemetryRow",
    "WriteRun",
]


@dataclass
class EvaluationRow:
    scenario: str
    library: str
    call: str
    version: str
    ns: float
    runs: list[float]
    shares: dict[str, float]
    problems: list[str]
    note: str = ""
    exposures: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Failure:
    section: str
    library: str
    reason: str


@dataclass
class PropagationRun:
    features: int
    apps: int
    processes: int
    changes: int
    interval_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    samples: int
    missing: int
    # The latency distribution in ms at every 0.1% (1,001 points, for the CDF), and the
    # writer's own set_state round trip.
    quantiles_ms: list[float] = field(default_factory=list)
    write_ms_p50: float = 0.0
    startup_seconds: float = 0.0
    # Full garbage collections in the App processes while the changes ran, and the longest.
    full_collections: int = 0
    full_collection_max_ms: float = 0.0
    full_collection_total_ms: float = 0.0
    write_ms_p99: float = 0.0
    # CPU the App processes spent (every thread, user + system) from the moment all Apps
    # were live to the moment they had all applied the last change, and that window's
    # length; per applied change and App, raw and with the idle rate (measured just before
    # the changes, same processes) taken off.
    cpu_seconds: float = 0.0
    run_seconds: float = 0.0
    cpu_per_change_us: float = 0.0
    cpu_per_change_idle_subtracted_us: float = 0.0
    idle_cpu_per_app_us_per_second: float = 0.0


@dataclass
class PollRow:
    library: str
    mechanism: str
    default_seconds: float | None
    source: str


@dataclass
class StartupRow:
    library: str
    version: str
    flags: int
    what: str
    ms: float
    rss_mb: float
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class ExposureRun:
    app: str
    exposures: bool
    seconds: float
    evaluations: int
    ns_per_evaluation: float
    recorded: int
    written: int
    in_redis: int
    dropped: int
    drain_seconds: float
    exposures_per_second: float


@dataclass
class TelemetryRow:
    subject: str
    note: str
    ns: float
    runs: list[float]
    evaluations: int
    events: int | None
    problems: list[str]


@dataclass
class Target:
    name: str
    goal: str
    measured: str
    met: bool | None
    detail: str = ""
    # Where the target comes from ("issue 13"), for the lead's closing notes.
    issue: str = ""


@dataclass
class StallPhase:
    """The 1 ms probe's overshoot while one phase of an App's life ran."""

    phase: str
    seconds: float
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    full_collections: int = 0
    full_collection_max_ms: float = 0.0
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class StallRun:
    features: int
    block_ms: int
    phases: list[StallPhase] = field(default_factory=list)
    note: str = ""


@dataclass
class LoadedRun:
    """Propagation to one asyncio App whose loop is idle or saturated by request tasks;
    latencies from the write's acknowledgement (the writer's set_state returned)."""

    loop: str
    tasks: int
    changes: int
    interval_ms: float
    listener_p50_ms: float
    listener_p99_ms: float
    listener_max_ms: float
    listener_missing: int
    request_p50_ms: float
    request_p99_ms: float
    request_max_ms: float
    request_missing: int
    listener_from_call_p50_ms: float = 0.0
    write_ms_p50: float = 0.0
    loop_busy: float = 0.0
    evaluations: int = 0
    listener_quantiles_ms: list[float] = field(default_factory=list)
    request_quantiles_ms: list[float] = field(default_factory=list)


@dataclass
class LatencyFloor:
    what: str
    p50_ms: float
    p99_ms: float
    samples: int
    note: str = ""


@dataclass
class WriteRun:
    """One writer, one App in another process, the machine otherwise idle."""

    changes: int
    interval_ms: float
    set_state_p50_ms: float
    set_state_p99_ms: float
    visible_p50_ms: float
    visible_p99_ms: float
    visible_max_ms: float
    missing: int
    floors: list[LatencyFloor] = field(default_factory=list)


@dataclass
class GcRow:
    what: str
    collect_ms: float
    collect_max_ms: float
    tracked_objects: int
    rss_mb: float


@dataclass
class GcRun:
    features: int
    rows: list[GcRow] = field(default_factory=list)
    burst_changes: int = 0
    burst_seconds: float = 0.0
    burst_full_collections: int = 0
    burst_full_collection_max_ms: float = 0.0
    burst_full_collection_total_ms: float = 0.0
    burst_young_collections: int = 0
    thresholds: list[int] = field(default_factory=list)


@dataclass
class Results:
    machine: dict[str, Any]
    settings: dict[str, Any]
    evaluation: list[EvaluationRow] = field(default_factory=list)
    loop_overhead_ns: float = 0.0
    propagation: list[PropagationRun] = field(default_factory=list)
    poll_intervals: list[PollRow] = field(default_factory=list)
    startup: list[StartupRow] = field(default_factory=list)
    exposures: list[ExposureRun] = field(default_factory=list)
    telemetry: list[TelemetryRow] = field(default_factory=list)
    stalls: list[StallRun] = field(default_factory=list)
    loaded: list[LoadedRun] = field(default_factory=list)
    write: list[WriteRun] = field(default_factory=list)
    gc: list[GcRun] = field(default_factory=list)
    # Profiles written by --profile (paths relative to the results folder).
    profiles: list[str] = field(default_factory=list)
    # A results.json given with --baseline: the evaluation rows the no-regression targets
    # compare with.
    baseline: dict[str, Any] | None = None
    targets: list[Target] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sections_seconds: dict[str, float] = field(default_factory=dict)
