"""ExposureRecorder: the experiment exposures an App records, kept in memory for a test."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .._base import AppBase

__all__ = ["Exposure", "ExposureRecorder"]


@dataclass(frozen=True, slots=True)
class Exposure:
    """One recorded exposure: ``unit`` (the experiment's segment value) got
    ``implementation`` of ``feature`` under configuration ``version``."""

    feature: str
    implementation: str
    unit: str
    version: str | None


class ExposureRecorder:
    """Every exposure the watched Apps record from ``watch(app)`` on, in order, as the App
    records it (before it is buffered for storage: nothing needs flushing or Redis)::

        recorder = ExposureRecorder().watch(app)
        await AllowedPriorities.create(user)
        assert recorder.implementations("AllowedPriorities") == {"two_priorities": 1}
    """

    def __init__(self) -> None:
        self.exposures: list[Exposure] = []
        self._apps: list[AppBase[Any, Any]] = []

    def watch(self, app: AppBase[Any, Any]) -> ExposureRecorder:
        if app not in self._apps:
            app.add_exposure_listener(self._record)
            self._apps.append(app)
        return self

    def _record(self, feature: str, implementation: str, unit: str, version: str | None) -> None:
        self.exposures.append(Exposure(feature, implementation, unit, version))

    def of(self, feature: str) -> list[Exposure]:
        """The exposures of one feature, in the order they were recorded."""
        return [exposure for exposure in self.exposures if exposure.feature == feature]

    def implementations(self, feature: str) -> Counter[str]:
        """How many exposures each implementation of ``feature`` got."""
        return Counter(exposure.implementation for exposure in self.of(feature))

    def units(self, feature: str) -> dict[str, str]:
        """The implementation each unit was last exposed to."""
        return {exposure.unit: exposure.implementation for exposure in self.of(feature)}

    def clear(self) -> None:
        self.exposures.clear()

    def close(self) -> None:
        """Stop watching every App (the fixture does it at teardown)."""
        for app in self._apps:
            app.remove_exposure_listener(self._record)
        self._apps.clear()

    def __enter__(self) -> ExposureRecorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.exposures)
