"""fork() after start: multiprocessing's fork start method, a gunicorn-style preload of a sync
App, and an asyncio App, whose child must not silently serve a frozen snapshot."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.servers import RedisServer

from ._model import (
    CANADIAN,
    RECOVERY_BOUND,
    aio_app,
    async_client,
    canada_gets,
    sync_app,
    sync_client,
)
from .conftest import Measure

Report = dict[str, Any]


class Child:
    """A forked child that runs ``body(version)`` once the parent sends a version."""

    def __init__(self, body: Callable[[str], Report]) -> None:
        self._to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, self._from_child_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - reports through the pipe
            report: Report
            try:
                os.close(self._to_child_w)
                os.close(self._from_child_r)
                version = _read_line(self._to_child_r, RECOVERY_BOUND).strip()
                report = body(version)
            except BaseException as error:
                report = {"error": repr(error)}
            os.write(self._from_child_w, (json.dumps(report) + "\n").encode())
            os._exit(0)
        os.close(self._to_child_r)
        os.close(self._from_child_w)

    def send(self, version: str) -> None:
        os.write(self._to_child_w, (version + "\n").encode())

    def report(self) -> Report:
        try:
            report: Report = json.loads(_read_line(self._from_child_r, RECOVERY_BOUND + 10))
        finally:
            os.close(self._to_child_w)
            os.close(self._from_child_r)
            _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert "error" not in report, report
        return report


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"no line within {timeout}s (got {data!r})")
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def test_multiprocessing_fork_child_follows_later_changes(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    model = sync_app(sync_client(server.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe()

    def child() -> None:  # pragma: no cover - runs in the child
        version = child_end.recv()
        started = time.monotonic()
        model.app.wait_for_version(version, timeout=RECOVERY_BOUND)
        child_end.send(
            {
                "waited": time.monotonic() - started,
                "answer": model.Checkout.find_implementation(CANADIAN),
                "version": model.Checkout.explain(CANADIAN).version,
                "live": model.app.status.live,
            }
        )

    with model.app:
        model.app.wait_for_version(first, timeout=5)
        process = context.Process(target=child)
        process.start()
        second = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after the fork"
        )
        parent_end.send(second)
        assert parent_end.poll(RECOVERY_BOUND + 5)
        report = parent_end.recv()
        process.join(10)
        assert process.exitcode == 0
    assert report["answer"] == "oneclick" and report["version"] == second and report["live"]
    measure("child applied the change after it was sent (s)", report["waited"])


def test_gunicorn_style_preload(server: RedisServer, namespace: str, measure: Measure) -> None:
    """The master imports the app (started at import time), then forks its workers."""
    writer = sync_app(sync_client(server.url), namespace)
    model = sync_app(sync_client(server.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    model.app.start()  # what a module-level `app.start()` does under --preload
    try:
        model.app.wait_for_version(first, timeout=5)

        def worker(version: str) -> Report:  # pragma: no cover - runs in the child
            started = time.monotonic()
            model.app.wait_for_version(version, timeout=RECOVERY_BOUND)
            return {
                "pid": os.getpid(),
                "waited": time.monotonic() - started,
                "answer": model.Checkout.find_implementation(CANADIAN),
                "threads": sorted(t.name for t in threading.enumerate()),
                "live": model.app.status.live,
            }

        workers = [Child(worker) for _ in range(2)]
        second = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after the fork"
        )
        for child in workers:
            child.send(second)
        reports = [child.report() for child in workers]
        # The master keeps following too.
        model.app.wait_for_version(second, timeout=RECOVERY_BOUND)
    finally:
        model.app.close()
    for report in reports:
        assert report["answer"] == "oneclick" and report["live"], report
        assert "feats-tail" in report["threads"]
        measure(
            f"worker applied the change after it was sent (s) [{reports.index(report)}]",
            report["waited"],
        )


def test_aio_app_after_fork_says_so_and_restarts(
    server: RedisServer, namespace: str, measure: Measure
) -> None:
    writer = sync_app(sync_client(server.url), namespace)
    first = writer.app.admin.set_state(
        writer.Checkout, canada_gets("express"), author="o", reason="r"
    )
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="parent-loop", daemon=True)
    loop_thread.start()

    client = async_client(server.url)

    async def make() -> Any:
        model = aio_app(client, namespace)
        await model.app.start()
        await model.app.wait_for_version(first, timeout=5)
        return model

    model = asyncio.run_coroutine_threadsafe(make(), loop).result(10)

    def child(version: str) -> Report:  # pragma: no cover - runs in the child
        report: Report = {}
        status = model.app.status
        report["state"] = status.state
        report["status_error"] = status.error
        report["explain_stale"] = model.Checkout.explain(CANADIAN).stale
        report["frozen_answer"] = model.Checkout.find_implementation(CANADIAN)

        async def restart() -> None:
            try:
                await model.app.wait_for_version(version, timeout=1)
            except RuntimeError as error:
                report["wait_refused"] = str(error)
            started = time.monotonic()
            await model.app.start()
            await model.app.wait_for_version(version, timeout=RECOVERY_BOUND)
            report["waited"] = time.monotonic() - started
            report["answer"] = model.Checkout.find_implementation(CANADIAN)
            report["live"] = model.app.status.live
            await model.app.aclose()

        asyncio.run(restart())
        return report

    try:
        forked = Child(child)
        second = writer.app.admin.set_state(
            writer.Checkout, canada_gets("oneclick"), author="o", reason="after the fork"
        )
        forked.send(second)
        report = forked.report()
        # The parent's App is untouched by its child.
        asyncio.run_coroutine_threadsafe(model.app.wait_for_version(second, 10), loop).result(15)
        assert model.app.status.live
    finally:
        asyncio.run_coroutine_threadsafe(model.app.aclose(), loop).result(10)
        # The client belongs to the thread's loop: only that loop can close its connections.
        asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()
    assert report["state"] == "stale" and "forked" in report["status_error"], report
    assert report["explain_stale"] is True
    assert report["frozen_answer"] == "express"
    assert "start()" in report["wait_refused"]
    assert report["answer"] == "oneclick" and report["live"] is True
    measure("child restarted and applied the change (s)", report["waited"])
