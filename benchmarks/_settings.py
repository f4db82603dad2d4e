"""How big a run is: the full suite, --quick, and per-knob overrides."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["FULL", "QUICK", "SECTIONS", "Settings"]

SECTIONS: Final = (
    "evaluation",
    "propagation",
    "startup",
    "exposures",
    "stalls",
    "loaded",
    "write",
    "gc",
    "telemetry",
)
"""Every section, in the order a run measures them."""


@dataclass(frozen=True)
class Settings:
    quick: bool
    # Evaluation: distinct users cycled through, timed passes per row (the median is reported).
    users: int
    repeat: int
    peers: bool
    # Propagation: Apps spread over processes, changes written one every interval_ms; the
    # second run has fanout_features configured features.
    apps: int
    processes: int
    changes: int
    interval_ms: float
    fanout_features: int
    # Startup: features configured in Redis (and declared) / flags the peers load.
    startup_features: int
    # Exposures: seconds of sustained experiment evaluations per run.
    exposure_seconds: float
    # Event-loop stalls: features configured for the App whose loop is probed, and the
    # changes of its burst phase.
    stall_features: int
    burst_changes: int
    # Propagation under a loaded loop: request-like tasks saturating the App's loop, and
    # the changes written meanwhile.
    loaded_tasks: int
    loaded_changes: int
    # Write to visible, idle: changes one writer makes for one App in another process.
    write_changes: int
    # Garbage collection: features configured and evaluated in the measured process.
    gc_features: int
    sections: tuple[str, ...] = SECTIONS

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


FULL: Final = Settings(
    quick=False,
    users=10_000,
    repeat=9,
    peers=True,
    apps=100,
    processes=4,
    changes=500,
    # At 20 ms the Apps' work for one change (~16 ms of CPU for 100 Apps) keeps both cores
    # busy and the run measures a queue; 50 ms leaves the machine idle between changes.
    interval_ms=50.0,
    fanout_features=1_000,
    startup_features=10_000,
    exposure_seconds=5.0,
    stall_features=10_000,
    burst_changes=1_000,
    loaded_tasks=20,
    loaded_changes=200,
    write_changes=200,
    gc_features=10_000,
)

QUICK: Final = Settings(
    quick=True,
    users=2_000,
    repeat=3,
    peers=True,
    apps=20,
    processes=2,
    changes=60,
    interval_ms=20.0,
    fanout_features=200,
    startup_features=2_000,
    exposure_seconds=1.0,
    stall_features=2_000,
    burst_changes=200,
    loaded_tasks=10,
    loaded_changes=40,
    write_changes=50,
    gc_features=2_000,
)
