"""Starlette and FastAPI glue: a lifespan that runs the App, one configuration per request
(ASGI middleware or a FastAPI dependency), and a health endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar, overload

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

import feats.aio

__all__ = [
    "SnapshotMiddleware",
    "health",
    "lifespan",
    "metrics",
    "routes",
    "snapshot_dependency",
]

Host = TypeVar("Host")
State = TypeVar("State")


@overload
def lifespan(app: feats.aio.App) -> Callable[[Any], AbstractAsyncContextManager[None]]: ...


@overload
def lifespan(
    app: feats.aio.App, inner: Callable[[Host], AbstractAsyncContextManager[State]]
) -> Callable[[Host], AbstractAsyncContextManager[State]]: ...


def lifespan(
    app: feats.aio.App, inner: Callable[[Any], AbstractAsyncContextManager[Any]] | None = None
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """A Starlette / FastAPI ``lifespan`` that starts ``app`` before the host serves and
    closes it (flushing exposures) after; ``inner`` is the host's own lifespan, run inside
    it, whose state (if any) the host receives as usual::

        api = FastAPI(lifespan=feats.contrib.starlette.lifespan(app, my_lifespan))
    """

    @asynccontextmanager
    async def run(host: Any) -> AsyncIterator[Any]:
        async with app:
            if inner is None:
                yield None
            else:
                async with inner(host) as state:
                    yield state

    return run


class SnapshotMiddleware:
    """ASGI middleware: every HTTP request (and websocket) reads one configuration, the one
    current when it arrived, across awaits and concurrent changes (``app.snapshot()``)::

        api.add_middleware(feats.contrib.starlette.SnapshotMiddleware, app=app)
    """

    def __init__(self, asgi: ASGIApp, app: feats.aio.App) -> None:
        self.asgi = asgi
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.asgi(scope, receive, send)
            return
        with self.app.snapshot():
            await self.asgi(scope, receive, send)


def snapshot_dependency(app: feats.aio.App) -> Callable[[], AsyncIterator[feats.aio.App]]:
    """A FastAPI dependency giving the App, with one configuration for the whole request
    (for routes that want it without the middleware)::

        Feats = Annotated[feats.aio.App, Depends(snapshot_dependency(app))]

        @api.get("/checkout")
        async def checkout(flags: Feats) -> dict[str, str]: ...
    """

    async def dependency() -> AsyncIterator[feats.aio.App]:
        with app.snapshot():
            yield app

    return dependency


def status_json(status: feats.Status) -> dict[str, Any]:
    """``app.status`` as JSON: every field, ``problems`` included."""
    document = dataclasses.asdict(status)
    document["live"] = status.live
    return document


def health(app: feats.aio.App | feats.App) -> Callable[[Request], Any]:
    """A Starlette endpoint: 200 and the App's status as JSON while live, 503 (same body)
    while initializing, stale or closed, so a load balancer or Kubernetes probe stops
    routing to a process that cannot confirm its configuration is current."""

    async def endpoint(request: Request) -> JSONResponse:
        status = app.status
        return JSONResponse(status_json(status), status_code=200 if status.live else 503)

    return endpoint


def metrics(registry: Any = None) -> Callable[[Request], Any]:
    """A Starlette endpoint serving a Prometheus scrape of ``registry`` (default:
    prometheus_client's REGISTRY), in the format the scraper's ``Accept`` asks for. Register
    ``feats.contrib.prometheus.FeatsCollector(app)`` in it; needs ``feats[prometheus]``."""
    from prometheus_client import REGISTRY

    from feats.contrib.prometheus import exposition

    chosen = REGISTRY if registry is None else registry

    async def endpoint(request: Request) -> Response:
        body, content_type = exposition(chosen, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return endpoint


def routes(
    app: feats.aio.App | feats.App,
    *,
    health_path: str = "/health/feats",
    metrics_path: str | None = None,
    registry: Any = None,
) -> list[BaseRoute]:
    """The routes feats serves in a Starlette or FastAPI app: the health endpoint at
    ``health_path`` and, with ``metrics_path``, a Prometheus scrape of ``registry``
    (see ``metrics``)::

        api.router.routes.extend(feats.contrib.starlette.routes(app, metrics_path="/metrics"))
    """
    found: list[BaseRoute] = [Route(health_path, health(app), methods=["GET"], name="feats-health")]
    if metrics_path is not None:
        found.append(Route(metrics_path, metrics(registry), methods=["GET"], name="feats-metrics"))
    return found
