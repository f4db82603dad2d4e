"""Import an example app afresh, configured for one test's Redis namespace."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

FRAMEWORKS = Path(__file__).resolve().parents[2] / "examples" / "frameworks"


def load_example(
    name: str, monkeypatch: pytest.MonkeyPatch, redis_url: str, namespace: str
) -> ModuleType:
    """examples/frameworks/<name>.py as a new module (its own App) on ``namespace``."""
    monkeypatch.setenv("FEATS_REDIS_URL", redis_url)
    monkeypatch.setenv("FEATS_NAMESPACE", namespace)
    monkeypatch.syspath_prepend(str(FRAMEWORKS))
    module_name = f"{name}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, FRAMEWORKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
