"""Test helpers: pin features in-process with ``override``, record exposures with
``ExposureRecorder``; the pytest fixtures ``feats_override`` and ``feats_exposures`` come
from the plugin feats installs (``feats_pytest``, a ``pytest11`` entry point)."""

from ._exposures import Exposure, ExposureRecorder
from ._override import Overrides, Pin, override

__all__ = ["Exposure", "ExposureRecorder", "Overrides", "Pin", "override"]
