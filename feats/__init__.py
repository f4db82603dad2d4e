"""feats: feature flags that choose between implementations, evaluated from a live snapshot.

The sync facade lives here; the asyncio App is ``feats.aio``.
"""

from ._admin import Admin
from ._app import App, Boolean, Feature, FeatureClass
from ._backup import ImportResult
from ._bucketing import BUCKETS, bucket
from ._catalog import (
    CATALOG_HEARTBEAT_SECONDS,
    CATALOG_LIVE_SECONDS,
    Catalog,
    CatalogEntry,
    Drift,
    FeatureInfo,
    ImplementationInfo,
    SegmentInfo,
)
from ._changes import FeatureRef
from ._core import Status
from ._declarations import FeatureDeclaration, Implementation, Registry, SegmentDeclaration
from ._diff import DiffLine
from ._errors import (
    CodecError,
    ConfigurationError,
    ConflictError,
    DeclarationError,
    FeatsError,
    NotFoundError,
    StorageError,
)
from ._exposures import ExposureReport, ImplementationExposures, ValueExposures
from ._handles import SegmentHandle
from ._snapshot import Evaluation
from ._state import Change, Experiment, FeatureState, Rollout, Static
from ._storage import MemoryStorage, RedisStorage, Storage
from ._stored import Problem
from ._verbs import (
    Edit,
    HistoryEntry,
    Plan,
    RemoveRule,
    Replace,
    Reset,
    Rollback,
    Route,
    SetRollout,
    StartExperiment,
    StopExperiment,
)

__all__ = [
    "BUCKETS",
    "CATALOG_HEARTBEAT_SECONDS",
    "CATALOG_LIVE_SECONDS",
    "Admin",
    "App",
    "Boolean",
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

# `import feats` is enough to reach feats.aio.App, as the API contract writes it.
from . import aio as aio

__version__ = "0.1.0"
