"""The public API: ``__all__`` pinned, one exception tree, and the sync and asyncio twins in step.

Adding a public name is a decision: update the pinned list here in the same change.
"""

import ast
import builtins
import importlib.util
import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

import feats
import feats.aio

FEATS_ALL = [
    "Admin",
    "App",
    "BUCKETS",
    "Boolean",
    "CATALOG_HEARTBEAT_SECONDS",
    "CATALOG_LIVE_SECONDS",
    "Catalog",
    "CatalogEntry",
    "Change",
    "CodecError",
    "ConfigurationError",
    "ConflictError",
    "DeclarationError",
    "DiffLine",
    "Drift",
    "Edit",
    "Evaluation",
    "Experiment",
    "ExposureReport",
    "FeatsError",
    "Feature",
    "FeatureClass",
    "FeatureDeclaration",
    "FeatureInfo",
    "FeatureRef",
    "FeatureState",
    "HistoryEntry",
    "Implementation",
    "ImplementationExposures",
    "ImplementationInfo",
    "ImportResult",
    "MemoryStorage",
    "NotFoundError",
    "Plan",
    "Problem",
    "RedisStorage",
    "Registry",
    "RemoveRule",
    "Replace",
    "Reset",
    "Rollback",
    "Rollout",
    "Route",
    "SegmentDeclaration",
    "SegmentHandle",
    "SegmentInfo",
    "SetRollout",
    "StartExperiment",
    "Static",
    "Status",
    "StopExperiment",
    "Storage",
    "StorageError",
    "ValueExposures",
    "bucket",
]

AIO_ALL = [
    "Admin",
    "App",
    "Boolean",
    "Change",
    "Evaluation",
    "Experiment",
    "Feature",
    "FeatureClass",
    "FeatureState",
    "MemoryStorage",
    "RedisStorage",
    "Rollout",
    "Static",
    "Status",
    "Storage",
]


def test_feats_all_is_pinned() -> None:
    assert sorted(feats.__all__) == FEATS_ALL
    assert len(set(feats.__all__)) == len(feats.__all__)


def test_aio_all_is_pinned() -> None:
    assert sorted(feats.aio.__all__) == AIO_ALL
    assert len(set(feats.aio.__all__)) == len(feats.aio.__all__)


@pytest.mark.parametrize("module", [feats, feats.aio], ids=["feats", "feats.aio"])
def test_every_exported_name_exists(module: Any) -> None:
    for name in module.__all__:
        assert getattr(module, name, None) is not None, name


@pytest.mark.parametrize("module", [feats, feats.aio], ids=["feats", "feats.aio"])
def test_no_builtin_is_shadowed(module: Any) -> None:
    assert not set(module.__all__) & set(dir(builtins))


def test_shared_model_is_the_same_objects() -> None:
    for name in ("Change", "Evaluation", "Experiment", "FeatureState", "Rollout", "Static"):
        assert getattr(feats.aio, name) is getattr(feats, name), name
    assert feats.aio.Status is feats.Status


def test_exception_tree() -> None:
    errors = [
        value
        for value in (getattr(feats, name) for name in feats.__all__)
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert {error.__name__ for error in errors} == {
        "CodecError",
        "ConfigurationError",
        "ConflictError",
        "DeclarationError",
        "FeatsError",
        "NotFoundError",
        "StorageError",
    }
    for error in errors:
        assert issubclass(error, feats.FeatsError), error
    assert issubclass(feats.FeatsError, Exception)
    # Each can also be caught as what it is.
    assert issubclass(feats.DeclarationError, TypeError)
    assert issubclass(feats.ConfigurationError, ValueError)
    assert issubclass(feats.CodecError, feats.ConfigurationError)
    assert issubclass(feats.NotFoundError, LookupError)
    assert not issubclass(feats.ConflictError, ValueError)


# -- parity of the sync and asyncio twins --------------------------------------------------

RENAMED = {"close": "aclose", "__enter__": "__aenter__", "__exit__": "__aexit__"}
"""Sync names whose asyncio twin is spelled differently."""

SYNC_ONLY: dict[str, set[str]] = {}
DUNDERS = {"__init__", "__call__", "__getattr__", *RENAMED, *RENAMED.values()}


def surface(cls: type) -> dict[str, str | tuple[str, ...]]:
    """Public members and their parameter names (or "property"/"attribute")."""
    found: dict[str, str | tuple[str, ...]] = {}
    for name in dir(cls):
        if name.startswith("_") and name not in DUNDERS:
            continue
        member = inspect.getattr_static(cls, name)
        if isinstance(member, property):
            found[name] = "property"
            continue
        if isinstance(member, staticmethod | classmethod):
            member = member.__func__
        if inspect.isfunction(member):
            found[RENAMED.get(name, name)] = tuple(inspect.signature(member).parameters)
        else:
            found[name] = "attribute"
    return found


PAIRS = ["App", "Admin", "Feature", "Boolean", "FeatureClass", "RedisStorage", "MemoryStorage"]


@pytest.mark.parametrize("name", PAIRS)
def test_sync_and_aio_have_the_same_public_methods(name: str) -> None:
    sync_cls, aio_cls = getattr(feats, name), getattr(feats.aio, name)
    sync, aio = surface(sync_cls), surface(aio_cls)
    for extra in SYNC_ONLY.get(name, set()):
        sync.pop(extra)
    assert sync.keys() == aio.keys()
    assert sync == aio


@pytest.mark.parametrize("name", PAIRS)
def test_sync_shell_has_no_coroutines(name: str) -> None:
    for attribute, member in inspect.getmembers(getattr(feats, name)):
        assert not inspect.iscoroutinefunction(member), f"feats.{name}.{attribute} is async"


def test_aio_io_methods_are_coroutines() -> None:
    for cls, names in (
        (feats.aio.App, ["start", "aclose", "__aenter__", "__aexit__", "wait_for_version"]),
        (feats.aio.Admin, ["set_state", "get_state", "history", "rollback"]),
        (feats.aio.Feature, ["create", "used_implementation"]),
        (feats.aio.Boolean, ["is_enabled", "create"]),
    ):
        for attribute in names:
            assert inspect.iscoroutinefunction(getattr(cls, attribute)), (cls, attribute)
    for cls in (feats.aio.Feature, feats.aio.Boolean):
        # Pure and I/O free in both shells: plain calls.
        for attribute in ("find_implementation", "explain", "valid_segments"):
            assert not inspect.iscoroutinefunction(getattr(cls, attribute)), (cls, attribute)


def test_the_apps_have_the_same_public_attributes() -> None:
    sync = feats.App(storage=feats.MemoryStorage())
    aio = feats.aio.App(storage=feats.aio.MemoryStorage())
    assert {n for n in vars(sync) if not n.startswith("_")} == {
        n for n in vars(aio) if not n.startswith("_")
    }


# -- the generated twins -------------------------------------------------------------------


def _unasync_module() -> Any:
    path = Path(__file__).resolve().parents[2] / "scripts" / "unasync.py"
    spec = importlib.util.spec_from_file_location("unasync", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATED = ["Admin", "RedisStorage", "MemoryStorage"]


@pytest.mark.parametrize("name", GENERATED)
def test_generated_methods_are_the_asyncio_ones_without_awaits(name: str) -> None:
    unasync = _unasync_module()
    sync_cls, aio_cls = getattr(feats, name), getattr(feats.aio, name)
    compared = 0
    for attribute, member in vars(aio_cls).items():
        if not inspect.isfunction(member):
            continue
        expected = unasync.unasync_text(textwrap.dedent(inspect.getsource(member)))
        actual = textwrap.dedent(inspect.getsource(vars(sync_cls)[attribute]))
        # The same code, whatever the formatter made of the lines the awaits left.
        assert ast.dump(ast.parse(actual)) == ast.dump(ast.parse(expected)), (
            f"feats.{name}.{attribute} is not its asyncio source without the awaits"
        )
        compared += 1
    assert compared >= 10


def test_the_generated_files_are_up_to_date() -> None:
    assert _unasync_module().main(["--check"]) == 0
