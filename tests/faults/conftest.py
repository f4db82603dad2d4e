"""Fixtures of the fault suite: real servers per test, and a table of what each scenario measured.

Every scenario records its figures with the ``measure`` fixture; the table is printed at the
end of the run (and written as JSON to $FEATS_FAULTS_REPORT when set), which is where the
README's "Failure behaviour" numbers come from.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from tests.servers import FaultProxy, RedisServer, redis_server_available

from ._model import close_clients

Measure = Callable[[str, float | int | str], None]

_measurements: list[tuple[str, str, float | int | str]] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        path = str(item.fspath)
        if path.startswith(here) and not path.endswith("test_core_decisions.py"):
            item.add_marker(pytest.mark.redis)
            if not redis_server_available():
                item.add_marker(pytest.mark.skip(reason="redis-server is not installed"))


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Measure:
    """``measure(label, value)``: one figure of this scenario for the closing table."""
    scenario = request.node.name.removeprefix("test_")

    def record(label: str, value: float | int | str) -> None:
        _measurements.append((scenario, label, value))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _measurements:
        return
    terminalreporter.section("fault scenarios: measured")
    width = max(len(scenario) for scenario, _, _ in _measurements)
    for scenario, label, value in _measurements:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        terminalreporter.write_line(f"{scenario:<{width}}  {label}: {shown}")
    path = os.environ.get("FEATS_FAULTS_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(
                [{"scenario": s, "label": label, "value": v} for s, label, v in _measurements],
                out,
                indent=2,
            )


@pytest.fixture
def namespace() -> str:
    return f"faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, without persistence."""
    with RedisServer(name="faults") as srv:
        yield srv


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """The clients a scenario made (sync_client, async_client) are closed when it ends."""
    yield
    await close_clients()


@pytest.fixture
def aof_server() -> Iterator[RedisServer]:
    """A redis-server with AOF (appendfsync always): every acknowledged write survives."""
    with RedisServer(name="faults-aof", persistence="aof") as srv:
        yield srv


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy.for_server(server) as prx:
        yield prx
