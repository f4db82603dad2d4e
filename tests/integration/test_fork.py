"""The sync App across fork(): the child restarts its tail and keeps following changes."""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

import pytest
import redis

import feats

from ._shop import canada_premium, declare, user

pytestmark = pytest.mark.redis


def _read_line(fd: int, timeout: float) -> str:
    """One line from a pipe, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            raise TimeoutError(f"no answer within {timeout}s (got {data!r})")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_forked_child_follows_changes_made_after_the_fork(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    app = feats.App(storage=feats.RedisStorage(client, namespace), block_ms=500)
    shop = declare(app)
    canadian, briton = user(2, "CA"), user(3, "GB")
    with app:
        assert app.status.live
        assert shop.PaymentProcessor.find_implementation(canadian) == "acme"
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            report: dict[str, Any]
            try:
                os.close(to_child_w)
                os.close(from_child_r)
                version = _read_line(to_child_r, 15).strip()
                app.wait_for_version(version, timeout=10)
                report = {
                    "version": app.version,
                    "live": app.status.live,
                    "canada": shop.PaymentProcessor.find_implementation(canadian),
                    "evaluated": shop.PaymentProcessor.explain(canadian).version,
                }
                # And the other way: the child writes, the parent must follow.
                report["written"] = app.admin.set_state(
                    shop.PaymentProcessor,
                    feats.FeatureState(
                        segments=[shop.Country],
                        rules={("GB",): feats.Static("aperture"), None: feats.Static("acme")},
                    ),
                    author="child",
                    reason="from the fork",
                )
            except BaseException as error:
                report = {"error": repr(error)}
            os.write(from_child_w, (json.dumps(report) + "\n").encode())
            os._exit(0)
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            version = app.admin.set_state(
                shop.PaymentProcessor, canada_premium(shop), author="parent", reason="after fork"
            )
            os.write(to_child_w, (version + "\n").encode())
            report = json.loads(_read_line(from_child_r, 20))
        finally:
            os.close(to_child_w)
            os.close(from_child_r)
            _, status = os.waitpid(pid, 0)
        assert report.get("error") is None, report
        assert report["canada"] == "premium"
        assert report["version"] == report["evaluated"] == version
        assert report["live"] is True
        assert os.waitstatus_to_exitcode(status) == 0
        app.wait_for_version(report["written"], timeout=10)
        assert shop.PaymentProcessor.find_implementation(briton) == "aperture"
        assert app.status.live
    client.close()
