"""FastAPI on feats: the App runs in the lifespan, every request reads one configuration,
and /health/feats says whether this process follows Redis.

Run it (Redis on 127.0.0.1:6379, or set FEATS_REDIS_URL): ``python fastapi_app.py``, then
``curl 127.0.0.1:8000/checkout/1?country=CA`` and change it with
``feats set PaymentProcessor premium --where Country=CA -n shop``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio
from fastapi import Depends, FastAPI

import feats.aio
from feats.contrib.starlette import SnapshotMiddleware, lifespan, routes, snapshot_dependency

REDIS_URL = os.environ.get("FEATS_REDIS_URL", "redis://127.0.0.1:6379/0")
NAMESPACE = os.environ.get("FEATS_NAMESPACE", "shop")

app = feats.aio.App(
    storage=feats.aio.RedisStorage(redis.asyncio.Redis.from_url(REDIS_URL), namespace=NAMESPACE)
)


@dataclass(frozen=True)
class User:
    id: int
    country: str


@app.segment
class Country:
    def user(self, user: User) -> str:
        return user.country


class PaymentProcessor(feats.aio.FeatureClass[[User], str], app=app):
    @app.default
    def acme(self, user: User) -> str:
        return "acme"

    def premium(self, user: User) -> str:
        return "premium"

    async def aperture(self, user: User) -> str:
        return "aperture"


@asynccontextmanager
async def shop_lifespan(api: FastAPI) -> AsyncIterator[None]:
    """The host's own start-up and shut-down (connection pools, caches...): runs inside
    feats', so features answer from Redis's configuration while it runs."""
    api.state.started = True
    yield


api = FastAPI(lifespan=lifespan(app, shop_lifespan))
api.add_middleware(SnapshotMiddleware, app=app)  # one configuration per request
api.router.routes.extend(routes(app))  # GET /health/feats: 200 live, 503 otherwise

# For a route that wants the App (and one configuration) without the middleware:
Flags = Annotated[feats.aio.App, Depends(snapshot_dependency(app))]


@api.get("/checkout/{user_id}")
async def checkout(user_id: int, country: str = "US") -> dict[str, str]:
    user = User(user_id, country)
    return {
        "processor": await PaymentProcessor.create(user),
        "why": PaymentProcessor.explain(user).reason,
    }


@api.get("/flags/{user_id}")
async def flags(user_id: int, features: Flags, country: str = "US") -> dict[str, str | None]:
    return {
        "processor": PaymentProcessor.find_implementation(User(user_id, country)),
        "version": features.version,
    }


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(api, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
