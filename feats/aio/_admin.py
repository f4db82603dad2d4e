"""The asyncio admin: reading and changing configuration, with history and rollback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._changes import (
    MAX_WRITE_ATTEMPTS,
    decode_current,
    feature_name,
    find_change,
    history_changes,
    plan_write,
)
from .._errors import ConflictError
from .._state import Change, FeatureState

if TYPE_CHECKING:
    from ._app import App

__all__ = ["Admin"]


class Admin:
    """Read and change configuration: every change is a new version with author and reason."""

    def __init__(self, app: App) -> None:
        self._app = app

    async def set_state(
        self,
        feature: Any,
        state: FeatureState | None,
        *,
        author: str,
        reason: str,
        expected_version: str | None = None,
    ) -> str:
        """Write a new state (None resets to the default); returns its version.

        With ``expected_version`` the write only happens if the feature is still at that
        version ("" for never configured), else ConflictError.
        """
        name = feature_name(feature)
        app = self._app
        for _ in range(MAX_WRITE_ATTEMPTS):
            version, previous = decode_current(await app.storage.current(name))
            if expected_version is not None and expected_version != (version or ""):
                raise ConflictError(name, expected_version, version)
            record, encoded = plan_write(
                app.registry,
                name,
                state,
                previous,
                author=author,
                reason=reason,
            )
            ok, written = await app.storage.write(name, encoded, version or "")
            if ok:
                app._core.apply_write(name, written, record)
                return written
            if expected_version is not None:
                raise ConflictError(name, expected_version, written or None)
        raise ConflictError(name, None, written or None)

    async def get_state(self, feature: Any) -> FeatureState | None:
        """The current stored state, read from storage (not the snapshot)."""
        record = decode_current(await self._app.storage.current(feature_name(feature)))[1]
        return None if record is None else record.state

    async def get_version(self, feature: Any) -> str | None:
        return decode_current(await self._app.storage.current(feature_name(feature)))[0]

    async def history(self, feature: Any) -> list[Change]:
        """Every stored version of ``feature``, oldest first."""
        name = feature_name(feature)
        return history_changes(name, await self._app.storage.history(name))

    async def rollback(self, feature: Any, version: str, *, author: str, reason: str) -> str:
        """Write a new version whose state equals the one at ``version``."""
        name = feature_name(feature)
        target = find_change(name, await self.history(name), version)
        return await self.set_state(name, target.state, author=author, reason=reason)
