"""feats.contrib.celery with a real Celery prefork worker (its own broker: a redis-server on
a free loopback port; configuration on the real Redis): every worker process runs its App
and follows every change, whether the App starts in the child or survives the fork."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.contrib._load import load_example
from tests.contrib.test_flask import route_ca, writer
from tests.servers.redis_server import RedisServer, redis_server_available

pytestmark = [
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.skipif(not redis_server_available(), reason="needs a redis-server binary"),
]

FRAMEWORKS = Path(__file__).resolve().parents[2] / "examples" / "frameworks"
CELERY = Path(sys.executable).with_name("celery")
PROCESSES = 2
PROBE = """
import time

from celery_app import PaymentProcessor, User, app, celery, charge


@celery.task(name="test.probe")
def probe(hold: float):
    time.sleep(hold)
    return charge(1, "CA")


"""


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with RedisServer(name="celery-broker") as server:
        yield server.url + "/0"


@pytest.fixture
def worker(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    broker: str,
    redis_url: str,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, Path]]:
    started_in_parent: bool = request.param
    # The example, plus a task that holds its process a moment, so that a batch of them
    # reaches every process of the pool (Celery hands sequential tasks to the first idle).
    probe = PROBE + (
        "app.start()  # at import: in the parent, before the pool forks\n"
        if started_in_parent
        else ""
    )
    (tmp_path / "probe_celery.py").write_text(probe)
    module = "probe_celery"
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    client = load_example("celery_app", monkeypatch, redis_url, namespace)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
    environment.update(
        FEATS_REDIS_URL=redis_url,
        FEATS_NAMESPACE=namespace,
        CELERY_BROKER_URL=broker,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(FRAMEWORKS)]),
    )
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            str(CELERY),
            "-A",
            f"{module}:celery",
            "worker",
            "-P",
            "prefork",
            "-c",
            str(PROCESSES),
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=tmp_path,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield client, log_path
    finally:
        process.send_signal(signal.SIGTERM)  # warm shutdown: the processes end, then the worker
        process.wait(timeout=60)
        log.close()
        client.celery.close()
        print(log_path.read_text())


def answers(client: Any, deadline: float) -> dict[int, dict[str, Any]]:
    """Task results per worker process, until every one answered (bounded in time, count)."""
    seen: dict[int, dict[str, Any]] = {}
    for _ in range(50):
        if len(seen) == PROCESSES or time.monotonic() > deadline:
            break
        batch = [client.celery.send_task("test.probe", args=(0.2,)) for _ in range(PROCESSES)]
        for result in batch:
            answer = result.get(timeout=30)
            seen[answer["pid"]] = answer
    return seen


@pytest.mark.parametrize(
    "worker", [False, True], ids=["started-in-each-process", "started-in-parent"], indirect=True
)
def test_every_worker_process_follows_every_change(
    worker: tuple[Any, Path], redis_url: str, namespace: str
) -> None:
    client, log_path = worker
    first = answers(client, time.monotonic() + 60)
    assert len(first) == PROCESSES, first
    assert {(r["processor"], r["status"]) for r in first.values()} == {("acme", "live")}
    ops, country = writer(redis_url, namespace)
    for implementation in ("premium", "acme"):
        version = ops.admin.set_state(
            "PaymentProcessor", route_ca(country, implementation), author="t", reason=""
        )
        deadline = time.monotonic() + 20
        seen: dict[int, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            seen = answers(client, deadline)
            if {(r["processor"], r["version"]) for r in seen.values()} == {
                (implementation, version)
            }:
                break
        assert {r["processor"] for r in seen.values()} == {implementation}, seen
    assert "Traceback" not in log_path.read_text()
