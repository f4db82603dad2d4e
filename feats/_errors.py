"""The one exception tree every feats error belongs to.

::

    FeatsError
    ├── DeclarationError      a broken @app.feature / @app.segment / @app.boolean (also a TypeError)
    ├── ConfigurationError    a FeatureState that does not fit the declarations (also a ValueError)
    │   └── CodecError        a stored document that is not valid feats JSON
    ├── ConflictError         a write whose expected_version is no longer current
    ├── NotFoundError         an unknown feature, version or segment (also a LookupError)
    └── StorageError          the storage failed or is unreachable
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "ConfigurationError",
    "ConflictError",
    "DeclarationError",
    "FeatsError",
    "NotFoundError",
    "StorageError",
]


class FeatsError(Exception):
    """Base class of every error feats raises on purpose."""


class DeclarationError(FeatsError, TypeError):
    """A feature, boolean or segment declaration breaks a rule."""


class ConfigurationError(FeatsError, ValueError):
    """A configuration does not fit the declared features and segments."""


class CodecError(ConfigurationError):
    """A stored document is not valid feats JSON (wrong shape, version or size)."""


class ConflictError(FeatsError):
    """A compare-and-set write lost: the feature changed since ``expected_version``."""

    def __init__(self, feature: str, expected: str | None, current: str | None) -> None:
        super().__init__(
            f"{feature}: expected version {expected!r} but the current version is {current!r}; "
            "someone else changed it, reload and retry"
        )
        self.feature = feature
        self.expected = expected
        self.current = current


class NotFoundError(FeatsError, LookupError):
    """A feature, segment, implementation or version that does not exist."""


class StorageError(FeatsError):
    """The storage failed or could not be reached.

    ``reachable``: it answered, and refused or failed the command (a permission, a key of
    the wrong type, too few replicas); False when it could not be reached at all.
    """

    def __init__(self, message: str, *, reachable: bool = False) -> None:
        super().__init__(message)
        self.reachable = reachable
