"""The asyncio App, its admin and storages: the primary way to use feats."""

from .._core import Status
from .._snapshot import Evaluation
from .._state import Change, Experiment, FeatureState, Rollout, Static
from ._admin import Admin
from ._app import App, Boolean, Feature, FeatureClass
from ._storage import MemoryStorage, RedisStorage, Storage

__all__ = [
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
