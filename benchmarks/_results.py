"""What a run produces: plain dataclasses, written to results.json as they are."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EvaluationRow",
    "ExposureRun",
    "Failure",
    "PollRow",
    "PropagationRun",
    "Results",
    "StartupRow",
    "Target",
    "TelemetryRow",
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
    targets: list[Target] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    sections_seconds: dict[str, float] = field(default_factory=dict)
