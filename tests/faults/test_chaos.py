"""A chaos soak: random faults while a writer makes changes and readers evaluate.

About 10 s by default; FEATS_SOAK_SECONDS=300 for a longer run, FEATS_SOAK_SEED to replay
one. Readers (two sync Apps, two asyncio Apps) reach Redis through the fault proxy, the
writer (a started sync App, so it too holds a snapshot) directly. At the end every reader
must hold the last acknowledged version, no reader's version may ever have gone backwards,
and no evaluation may have raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

import feats
from feats._layout import Keys
from feats._stored import parse_version
from tests.servers import FaultProxy, RedisServer
from tests.servers._common import command

from ._model import (
    CANADIAN,
    AioModel,
    SyncModel,
    aio_app,
    async_client,
    nth_state,
    sync_app,
    sync_client,
)
from .conftest import Measure

SOAK_SECONDS = float(os.environ.get("FEATS_SOAK_SECONDS", "10"))
CATCH_UP = 30.0


@dataclass
class Tally:
    faults: Counter[str] = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)
    failed_writes: int = 0
    evaluations: int = 0
    exceptions: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, name: str, last: list[str | None], version: str | None) -> None:
        """Count an evaluation; a version lower than the one seen before is a regression."""
        with self.lock:
            self.evaluations += 1
            previous = last[0]
            if (
                version is not None
                and previous is not None
                and (parse_version(version) < parse_version(previous))
            ):
                self.regressions.append(f"{name}: {previous} -> {version}")
            if version is not None:
                last[0] = version


def evaluate_sync(model: SyncModel, name: str, tally: Tally, stop: threading.Event) -> None:
    last: list[str | None] = [None]
    while not stop.is_set():
        try:
            model.Checkout.create(CANADIAN)
            tally.observe(name, last, model.Checkout.explain(CANADIAN).version)
        except BaseException as error:
            tally.exceptions.append(f"{name}: {error!r}")
        stop.wait(0.002)


async def evaluate_aio(model: AioModel, name: str, tally: Tally, stop: threading.Event) -> None:
    last: list[str | None] = [None]
    while not stop.is_set():
        try:
            await model.Checkout.create(CANADIAN)
            tally.observe(name, last, model.Checkout.explain(CANADIAN).version)
        except BaseException as error:
            tally.exceptions.append(f"{name}: {error!r}")
        await asyncio.sleep(0.002)


class Faults:
    """The fault list, each one applied, held a random while, then healed."""

    def __init__(
        self, server: RedisServer, proxy: FaultProxy, namespace: str, rng: random.Random
    ) -> None:
        self.server, self.proxy, self.rng = server, proxy, rng
        self.keys = Keys(namespace)
        self.kinds: dict[str, Callable[[], None]] = {
            "proxy reset": self.reset,
            "black hole": self.blackhole,
            "refused connections": self.refuse,
            "CLIENT KILL": self.client_kill,
            "CLIENT PAUSE": self.client_pause,
            "SIGKILL + restart (AOF)": self.sigkill,
            "restart empty": self.restart_empty,
            "log trimmed": self.trim,
            "malformed entry": self.malformed,
        }

    def hold(self) -> None:
        time.sleep(self.rng.uniform(0.1, 1.2))  # how long the fault lasts, not a wait

    @contextlib.contextmanager
    def admin(self) -> Iterator[redis.Redis]:
        client = sync_client(self.server.url, socket_timeout=3.0)
        try:
            yield client
        finally:
            client.close()

    def reset(self) -> None:
        self.proxy.reset_all()

    def blackhole(self) -> None:
        self.proxy.blackhole(drop=self.rng.random() < 0.5)
        self.hold()
        self.proxy.reset_all()
        self.proxy.restore()

    def refuse(self) -> None:
        self.proxy.refuse()
        self.proxy.reset_all()
        self.hold()
        self.proxy.restore()

    def client_kill(self) -> None:
        with self.admin() as client:
            command(client, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")

    def client_pause(self) -> None:
        with self.admin() as client:
            command(client, "CLIENT", "PAUSE", self.rng.randint(200, 1500), "ALL")

    def sigkill(self) -> None:
        self.server.kill()
        self.hold()
        self.server.restart()

    def restart_empty(self) -> None:
        self.server.restart_empty()

    def trim(self) -> None:
        with self.admin() as client:
            client.xtrim(self.keys.log, maxlen=1, approximate=False)

    def malformed(self) -> None:
        with self.admin() as client:
            last = client.xrevrange(self.keys.log, count=1)
            prev: Any = last[0][0] if last else b"0-0"
            record = self.rng.choice([b"{not json", b"\xff\xfe", b'{"schema": 99}', b"[]"])
            client.xadd(self.keys.log, {"feature": "Checkout", "record": record, "prev": prev})

    def inject(self, tally: Tally) -> None:
        name = self.rng.choice(sorted(self.kinds))
        try:
            self.kinds[name]()
        except (redis.RedisError, OSError):
            pass  # a fault that hit another fault (a kill during a pause...) still counts
        finally:
            self.proxy.restore()
            if not self.server.running:
                self.server.start()
        tally.faults[name] += 1


def write_until_acknowledged(writer: SyncModel, n: int, deadline: float) -> str:
    while True:
        try:
            return writer.app.admin.set_state(
                writer.Checkout, nth_state(n), author="chaos", reason=f"final {n}"
            )
        except feats.StorageError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# The per-test timeout would cut a longer soak short: it gets its length and some more.
@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_chaos_soak(namespace: str, measure: Measure, capsys: Any) -> None:
    seed = int(os.environ.get("FEATS_SOAK_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    tally = Tally()
    stop = threading.Event()
    with (
        RedisServer(name="chaos", persistence="aof") as server,
        FaultProxy.for_server(server) as proxy,
    ):
        writer = sync_app(sync_client(server.url), namespace)
        sync_readers = [sync_app(sync_client(proxy.url), namespace) for _ in range(2)]
        loop = asyncio.new_event_loop()
        loop_thread = threading.Thread(target=loop.run_forever, name="chaos-loop", daemon=True)
        loop_thread.start()

        def on_loop(coroutine: Any, timeout: float = CATCH_UP + 10) -> Any:
            return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

        async def make_aio() -> list[AioModel]:
            models = [aio_app(async_client(proxy.url), namespace) for _ in range(2)]
            for model in models:
                await model.app.start()
            return models

        first = writer.app.admin.set_state(writer.Checkout, nth_state(0), author="c", reason="0")
        tally.acked.append(first)
        writer.app.start()
        for model in sync_readers:
            model.app.start()
        aio_readers: list[AioModel] = on_loop(make_aio())
        threads = [
            threading.Thread(target=evaluate_sync, args=(m, f"sync-{i}", tally, stop), daemon=True)
            for i, m in enumerate(sync_readers)
        ]
        evaluators = [
            asyncio.run_coroutine_threadsafe(evaluate_aio(m, f"aio-{i}", tally, stop), loop)
            for i, m in enumerate(aio_readers)
        ]

        def write() -> None:
            n = 1
            while not stop.is_set():
                try:
                    version = writer.app.admin.set_state(
                        writer.Checkout, nth_state(n), author="chaos", reason=str(n)
                    )
                    tally.acked.append(version)
                except feats.StorageError:
                    tally.failed_writes += 1
                n += 1
                stop.wait(0.02)

        writer_thread = threading.Thread(target=write, name="chaos-writer", daemon=True)
        for thread in [*threads, writer_thread]:
            thread.start()
        faults = Faults(server, proxy, namespace, rng)
        ends = time.monotonic() + SOAK_SECONDS
        try:
            while time.monotonic() < ends:
                faults.inject(tally)
                time.sleep(rng.uniform(0.05, 0.4))  # calm between faults, not a wait
        finally:
            proxy.restore()
            if not server.running:
                server.start()
            # Stop the writer, then make one last change that must reach everyone.
            healed = time.monotonic()
            stop.set()
            writer_thread.join(10)
        final = write_until_acknowledged(writer, len(tally.acked) + 1, time.monotonic() + CATCH_UP)
        tally.acked.append(final)
        lost = 0
        for model in sync_readers:
            with contextlib.suppress(TimeoutError):
                model.app.wait_for_version(final, timeout=CATCH_UP)
            if model.Checkout.explain(CANADIAN).version != final:
                lost += 1
        for aio_model in aio_readers:
            with contextlib.suppress(TimeoutError):
                on_loop(aio_model.app.wait_for_version(final, timeout=CATCH_UP))
            if aio_model.Checkout.explain(CANADIAN).version != final:
                lost += 1
        caught_up_after = time.monotonic() - healed
        stored = writer.app.admin.get_version(writer.Checkout)
        if stored != final:
            lost += 1
        for thread in threads:
            thread.join(5)
        for future in evaluators:
            future.result(5)
        statuses = [m.app.status for m in [*sync_readers, writer]] + [
            m.app.status for m in aio_readers
        ]
        for model in [*sync_readers, writer]:
            model.app.close()
        for aio_model in aio_readers:
            on_loop(aio_model.app.aclose())
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        loop.close()

    summary = [
        f"seed: {seed} (FEATS_SOAK_SEED), {SOAK_SECONDS:.0f} s",
        f"faults injected: {sum(tally.faults.values())} "
        + ", ".join(f"{name} {count}" for name, count in sorted(tally.faults.items())),
        f"changes acknowledged: {len(tally.acked)} (writes refused during faults: "
        f"{tally.failed_writes})",
        f"changes lost: {lost}",
        f"version regressions: {len(tally.regressions)}",
        f"evaluations: {tally.evaluations}, evaluation exceptions: {len(tally.exceptions)}",
        f"reader outages: {[s.outages for s in statuses]}, reloads: "
        f"{[s.reloads for s in statuses]}, re-seeds: {sum(s.reseeds for s in statuses)}",
        f"all caught up {caught_up_after:.2f} s after the last fault",
    ]
    with capsys.disabled():
        print("\nchaos soak\n  " + "\n  ".join(summary))
    measure("faults injected", sum(tally.faults.values()))
    measure("changes acknowledged", len(tally.acked))
    measure("changes lost", lost)
    measure("evaluation exceptions", len(tally.exceptions))
    measure("caught up after the last fault (s)", caught_up_after)
    assert lost == 0, summary
    assert tally.regressions == [], tally.regressions[:5]
    assert tally.exceptions == [], tally.exceptions[:5]
    assert tally.evaluations > 0 and sum(tally.faults.values()) > 0
