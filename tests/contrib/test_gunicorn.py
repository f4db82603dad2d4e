"""gunicorn --preload with the Flask example, on a free loopback port and the real Redis:
every worker follows every change, and what the master holds depends on when the App
starts (measured here: the README says so)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.request import urlopen

import pytest
import redis

from tests.contrib.test_flask import route_ca, writer
from tests.servers._common import release_port, reserve_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FRAMEWORKS = Path(__file__).resolve().parents[2] / "examples" / "frameworks"
GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 2


def redis_connections(pid: int, redis_port: int) -> int:
    """Established TCP connections of process ``pid`` to ``redis_port`` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def get_json(url: str) -> dict[str, object]:
    import json

    with urlopen(url, timeout=5) as response:
        body: dict[str, object] = json.loads(response.read())
    return body


def answers_per_worker(base: str, deadline: float) -> dict[int, str]:
    """Ask until every worker has answered (bounded in time and count)."""
    seen: dict[int, str] = {}
    for _ in range(500):
        if len(seen) == WORKERS or time.monotonic() > deadline:
            break
        body = get_json(f"{base}/checkout/1?country=CA")
        pid = body["pid"]
        assert isinstance(pid, int)
        seen[pid] = str(body["processor"])
    return seen


@pytest.fixture
def gunicorn(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, namespace: str
) -> Iterator[tuple[str, bool, subprocess.Popen[bytes]]]:
    started_in_master: bool = request.param
    module = "flask_app"
    if started_in_master:
        # The App started at import: with --preload, in the master, before the fork.
        (tmp_path / "preloaded.py").write_text(
            "from flask_app import app, flask_app\n\napp.start()\n"
        )
        module = "preloaded"
    port = reserve_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
    environment.update(
        FEATS_REDIS_URL=redis_url,
        FEATS_NAMESPACE=namespace,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(FRAMEWORKS)]),
    )
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "--preload",
            "-w",
            str(WORKERS),
            "-b",
            f"127.0.0.1:{port}",
            f"{module}:flask_app",
        ],
        cwd=tmp_path,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            get_json(f"{base}/health/feats")
            break
        except OSError:
            time.sleep(0.1)  # polling for the server to listen, bounded by the deadline
    try:
        yield base, started_in_master, process
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
        release_port(port)
        print((tmp_path / "gunicorn.log").read_text())


@pytest.mark.parametrize(
    "gunicorn", [False, True], ids=["lazy", "started-in-master"], indirect=True
)
def test_every_worker_follows_every_change(
    gunicorn: tuple[str, bool, subprocess.Popen[bytes]], redis_url: str, namespace: str
) -> None:
    base, started_in_master, master = gunicorn
    redis_port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    ops, country = writer(redis_url, namespace)
    assert set(answers_per_worker(base, time.monotonic() + 30).values()) == {"acme"}
    for step, implementation in enumerate(("premium", "acme", "premium")):
        ops.admin.set_state(
            "PaymentProcessor", route_ca(country, implementation), author="t", reason=str(step)
        )
        deadline = time.monotonic() + 10
        answers: dict[int, str] = {}
        while time.monotonic() < deadline:
            answers = answers_per_worker(base, deadline)
            if len(answers) == WORKERS and set(answers.values()) == {implementation}:
                break
        assert len(answers) == WORKERS and set(answers.values()) == {implementation}, answers
    master_connections = redis_connections(master.pid, int(redis_port))
    worker_connections = [redis_connections(pid, int(redis_port)) for pid in answers]
    print(f"connections to Redis: master {master_connections}, workers {worker_connections}")
    assert all(count >= 1 for count in worker_connections)
    if started_in_master:
        # The master's own App: its client's connection and its tail's, for nothing.
        assert master_connections == 2
    else:
        assert master_connections == 0  # the extension starts the App in each worker
