"""SnapshotMiddleware: every Django request reads one configuration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from ._settings import ensure_started

__all__ = ["SnapshotMiddleware"]


class SnapshotMiddleware:
    """Every evaluation during a request reads the configuration current when the request
    arrived (``app.snapshot()``), however long it takes and whatever changes meanwhile.
    Sync and async capable; it also starts the App in this process if nothing did yet."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._call_async(request)
        with ensure_started().snapshot():
            response: HttpResponseBase = self.get_response(request)
        return response

    async def _call_async(self, request: HttpRequest) -> HttpResponseBase:
        respond: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        with ensure_started().snapshot():
            return await respond(request)
