"""Whether the Apps serving a feature are live: their catalog heartbeat, not their entry."""

from __future__ import annotations

import json
import time

import redis

import feats
import feats._catalog
import feats.web._views as views

from ._shop import declare
from .conftest import Client, sign_in

HOUR = 3600.0


def _apps_cell(page: str, feature: str = "PaymentProcessor") -> str:
    row = page.split(f'id="feature-{feature}"')[1].split("</tr>")[0]
    return row.split('<span class="apps')[1].split("</span>")[0]


def test_the_pages_live_window_is_the_cores() -> None:
    assert views.LIVE_SECONDS == feats._catalog.CATALOG_LIVE_SECONDS
    assert views.HEARTBEAT_SECONDS == feats._catalog.CATALOG_HEARTBEAT_SECONDS


def test_a_deploy_is_live_while_its_heartbeat_is_recent(
    sync_redis: redis.Redis, namespace: str, client_for: Client
) -> None:
    # A never-started App: it publishes what it is told to, and no heartbeat of its own.
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    declare(app)
    identity = app.admin.publish_catalog()
    key = f"feats:{{{namespace}}}:catalog"
    stored = sync_redis.hgetall(key)
    assert set(stored) == {identity.encode(), f"seen:{identity}".encode()}

    def seen_at(entry: float, heartbeat: float) -> None:
        document = json.loads(stored[identity.encode()])
        beat = json.loads(stored[f"seen:{identity}".encode()])
        sync_redis.hset(
            key,
            mapping={
                identity: json.dumps({**document, "seen": entry}),
                f"seen:{identity}": json.dumps({**beat, "seen": heartbeat}),
            },
        )

    now = time.time()
    with client_for() as client:
        sign_in(client, "victor")
        seen_at(now - HOUR, now - HOUR)
        cell = _apps_cell(client.get("/").text)
        assert 'down"' in cell and "○ not live: 1 deploy, last seen 1 h ago" in cell
        assert "○ not live" in client.get("/catalog").text
        # The entry is an hour old, its heartbeat is not: live.
        seen_at(now - HOUR, time.time())
        cell = _apps_cell(client.get("/").text)
        assert 'up"' in cell and "● live: 1 deploy, heartbeat just now" in cell
        page = client.get("/features/PaymentProcessor").text
        assert "● live: 1 deploy, heartbeat just now" in page and views.live_meaning() in page
        # An older deploy of other declarations, stopped a day ago: one of two is live.
        old = json.loads(stored[identity.encode()])
        sync_redis.hset(key, "feedfacefeedface", json.dumps({**old, "seen": now - 24 * HOUR}))
        assert "● live: 1 of 2 deploys, heartbeat just now" in _apps_cell(client.get("/").text)
        # Just past the window: not live any more.
        seen_at(now - HOUR, time.time() - views.LIVE_SECONDS - 5)
        assert "○ not live" in _apps_cell(client.get("/").text)


def test_live_counts_deploys(sync_redis: redis.Redis, namespace: str) -> None:
    app = feats.App(storage=feats.RedisStorage(sync_redis, namespace))
    declare(app)
    app.admin.publish_catalog()
    entry = app.admin.catalog().entries[0]
    catalog = feats.Catalog((entry,))
    assert views.deploys(catalog, "PaymentProcessor", now=entry.seen + 1) == views.Deploys(
        1, 1, entry.seen
    )
    later = entry.seen + views.LIVE_SECONDS + 1
    assert views.deploys(catalog, "PaymentProcessor", now=later).live == 0
    assert views.deploys(catalog, "Nope") == views.Deploys(0, 0, None)
