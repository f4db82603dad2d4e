"""The pytest plugin of feats (registered as the ``pytest11`` entry point ``feats``): the
``feats_override`` and ``feats_exposures`` fixtures of ``feats.testing``.

It imports feats only when a test asks for one of its fixtures: loading the plugin into
every pytest run of a project that installs feats costs nothing, and imports no Redis
client (the ``feats`` package does, so this module lives outside it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from feats._base import AppBase
    from feats.testing import ExposureRecorder, Overrides, Pin

__all__ = ["feats_exposures", "feats_override"]


@pytest.fixture
def feats_override() -> Iterator[Overrides]:
    """``feats_override(app, **pins)``: ``feats.testing.override`` for the rest of the test,
    undone at teardown (the last one first)."""
    from feats.testing import override

    active: list[override] = []

    def pin(app: AppBase[Any, Any], /, **pins: Pin) -> None:
        pinned = override(app, **pins)
        pinned.__enter__()
        active.append(pinned)

    yield pin
    while active:
        active.pop().__exit__(None, None, None)


@pytest.fixture
def feats_exposures() -> Iterator[ExposureRecorder]:
    """A ``feats.testing.ExposureRecorder``: ``feats_exposures.watch(app)``, then assert on
    what the test exposed (``.implementations("Feature")``, ``.units(...)``, ``.exposures``).
    It stops watching at teardown."""
    from feats.testing import ExposureRecorder

    with ExposureRecorder() as recorder:
        yield recorder
