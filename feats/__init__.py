"""feats: feature flags that choose between implementations, evaluated from a live snapshot.

The sync facade lives here; the asyncio App is ``feats.aio``.
"""

from ._admin import Admin
from ._app import App, Boolean, Feature
from ._bucketing import BUCKETS, bucket
from ._core import Problem, Status
from ._errors import (
    CodecError,
    ConfigurationError,
    ConflictError,
    DeclarationError,
    FeatsError,
    NotFoundError,
    StorageError,
)
from ._handles import SegmentHandle
from ._snapshot import Evaluation
from ._state import Change, Experiment, FeatureState, Rollout, Static
from ._storage import MemoryStorage, RedisStorage, Storage

__all__ = [
    "BUCKETS",
    "Admin",
    "App",
    "Boolean",
    "Change",
    "CodecError",
    "ConfigurationError",
    "ConflictError",
    "DeclarationError",
    "Evaluation",
    "Experiment",
    "FeatsError",
    "Feature",
    "FeatureState",
    "MemoryStorage",
    "NotFoundError",
    "Problem",
    "RedisStorage",
    "Rollout",
    "SegmentHandle",
    "Static",
    "Status",
    "Storage",
    "StorageError",
    "bucket",
]

# `import feats` is enough to reach feats.aio.App, as the API contract writes it.
from . import aio as aio

__version__ = "0.1.0"
