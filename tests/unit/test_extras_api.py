"""The public names of feats.testing and feats.contrib.*, pinned; ``import feats`` imports
no framework, and the frameworks' glue only its own."""

from __future__ import annotations

import subprocess
import sys

import pytest

import feats.testing

PINNED = {
    "feats.testing": ["Exposure", "ExposureRecorder", "Overrides", "Pin", "override"],
    "feats.contrib.starlette": [
        "SnapshotMiddleware",
        "health",
        "lifespan",
        "metrics",
        "routes",
        "snapshot_dependency",
    ],
    "feats.contrib.flask": ["Feats", "current_feats"],
    "feats.contrib.celery": ["connect"],
    "feats.contrib.django": [
        "FeatsSettings",
        "SnapshotMiddleware",
        "ensure_started",
        "feats_app",
        "feats_settings",
        "redis_storage",
    ],
    "feats_pytest": ["feats_exposures", "feats_override"],
}
FRAMEWORKS = ("starlette", "fastapi", "django", "flask", "celery", "gunicorn", "pytest")


def imported_after(statement: str) -> set[str]:
    probe = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return {name.split(".")[0] for name in result.stdout.split()}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_all_is_pinned(module: str) -> None:
    imported = __import__(module, fromlist=["__all__"])
    assert sorted(imported.__all__) == PINNED[module]
    for name in imported.__all__:
        assert getattr(imported, name, None) is not None, name


def test_import_feats_imports_no_framework() -> None:
    assert not imported_after("import feats, feats.aio, feats.testing") & set(FRAMEWORKS)


def test_the_starlette_glue_imports_starlette_only() -> None:
    found = imported_after("import feats.contrib.starlette") & set(FRAMEWORKS)
    assert found == {"starlette"}


def test_feats_testing_imports_no_pytest() -> None:
    assert "pytest" not in imported_after("import feats.testing")
    assert feats.testing.override.__name__ == "override"
