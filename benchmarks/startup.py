"""Startup and memory: many configured features, from start() to the first evaluation.

Every measurement runs in a fresh interpreter (``python -m benchmarks.startup --child ...``)
so imports, declarations and freed memory of earlier work do not blur it: the child
imports and declares first, then measures the clock and the resident set around
``start()`` + one evaluation (feats) or ``load()`` (a peer: parse its document, build the
client, evaluate once).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

import feats
import feats.aio
from benchmarks._measure import rss_bytes
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import Failure, Results, StartupRow
from benchmarks._scenarios import declare_flags
from benchmarks._settings import Settings
from benchmarks._users import User
from benchmarks.peers import PEER_LIBRARIES, build_peer_loaders
from feats import FeatureState, Rollout, Static

__all__ = ["main", "run_startup", "startup_steps"]

_REPO = Path(__file__).resolve().parent.parent
_MB = 1024 * 1024
_USER = User(id=42, country="US")
# What the configured features look like: "static" mirrors the peers' documents (every flag
# on); "rollouts" gives every feature a Country rule and a salted rollout by user id.
KINDS = ("static", "rollouts")


def startup_steps(settings: Settings) -> int:
    return len(KINDS) * 3 + (len(PEER_LIBRARIES) + 1 if settings.peers else 0)


def _state(kind: str) -> FeatureState:
    if kind == "static":
        return FeatureState(rules={None: Static("enabled")})
    return FeatureState(
        segments=["Country"],
        rules={
            ("CA",): Static("disabled"),
            None: Rollout("UserId", {"enabled": 20, "disabled": 80}),
        },
    )


def _declare(app: feats.App | feats.aio.App, flags: int) -> list[Any]:
    @app.segment
    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    return declare_flags(app, flags)


async def _seed(url: str, namespace: str, flags: int, kind: str, concurrency: int = 64) -> None:
    """Configure ``flags`` features through the admin, a few dozen writes in flight."""
    client = redis.asyncio.Redis.from_url(url)
    app = feats.aio.App(storage=feats.aio.RedisStorage(redis=client, namespace=namespace))
    handles = _declare(app, flags)
    await app.start()
    state = _state(kind)
    try:
        for start in range(0, flags, concurrency):
            await asyncio.gather(
                *(
                    app.admin.set_state(handle, state, author="bench", reason="startup seed")
                    for handle in handles[start : start + concurrency]
                )
            )
    finally:
        await app.aclose()
        await client.aclose()


# --------------------------------------------------------------------------- children


def _measure(declared_at: float, rss_declared: int, run: Any) -> dict[str, float]:
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    extra = run()
    elapsed = time.perf_counter() - started
    after = rss_bytes()
    return {
        "ms": elapsed * 1000,
        "rss_mb": (after - before) / _MB,
        "declare_ms": declared_at * 1000,
        "declare_rss_mb": rss_declared / _MB,
        **extra,
    }


def _child_feats_aio(url: str, namespace: str, flags: int) -> dict[str, float]:
    async def go() -> dict[str, float]:
        rss0 = rss_bytes()
        started = time.perf_counter()
        client = redis.asyncio.Redis.from_url(url)
        app = feats.aio.App(storage=feats.aio.RedisStorage(redis=client, namespace=namespace))
        handles = _declare(app, flags)
        declared = time.perf_counter() - started
        rss_declared = rss_bytes() - rss0
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        await app.start()
        answer = await handles[0].is_enabled(_USER)
        elapsed = time.perf_counter() - started
        after = rss_bytes()
        loaded = len(app._core.served)
        await app.aclose()
        return {
            "ms": elapsed * 1000,
            "rss_mb": (after - before) / _MB,
            "declare_ms": declared * 1000,
            "declare_rss_mb": rss_declared / _MB,
            "loaded": loaded,
            "answer": float(answer),
        }

    return asyncio.run(go())


def _child_feats_sync(url: str, namespace: str, flags: int) -> dict[str, float]:
    rss0 = rss_bytes()
    started = time.perf_counter()
    app = feats.App(
        storage=feats.RedisStorage(redis=redis.Redis.from_url(url), namespace=namespace)
    )
    handles = _declare(app, flags)
    declared = time.perf_counter() - started
    rss_declared = rss_bytes() - rss0
    box: dict[str, float] = {}

    def run() -> dict[str, float]:
        app.start()
        box["answer"] = float(handles[0].is_enabled(_USER))
        return {}

    result = _measure(declared, rss_declared, run)
    result.update(box, loaded=len(app._core.served))
    app.close()
    return result


def _child_peer(library: str, flags: int, workdir: str) -> dict[str, float]:
    loaders, failures = build_peer_loaders(flags, Path(workdir))
    for failure in failures:
        if failure.library == library:
            raise RuntimeError(failure.reason)
    loader = next(loader for loader in loaders if loader.library == library)
    closers = []

    def run() -> dict[str, float]:
        closers.append(loader.load())
        return {}

    result = _measure(0.0, 0, run)
    for close in closers:
        close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup")
    parser.add_argument("--child", choices=("feats-aio", "feats-sync", "peer"), required=True)
    parser.add_argument("--flags", type=int, required=True)
    parser.add_argument("--url")
    parser.add_argument("--namespace")
    parser.add_argument("--library")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    if args.child == "feats-aio":
        result = _child_feats_aio(args.url, args.namespace, args.flags)
    elif args.child == "feats-sync":
        result = _child_feats_sync(args.url, args.namespace, args.flags)
    else:
        result = _child_peer(args.library, args.flags, args.workdir)
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the parent


def _run_child(arguments: list[str], timeout: float = 600.0) -> dict[str, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.startup", *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(_REPO),
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(tail)}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _feats_rows(settings: Settings, url: str, section: Section, results: Results) -> None:
    flags = settings.startup_features
    for kind in KINDS:
        namespace = fresh_namespace(f"startup-{kind}")
        try:
            section.note(f"configuring {flags} features ({kind})")
            asyncio.run(_seed(url, namespace, flags, kind))
            section.advance(f"{flags} features configured ({kind})")
            for child, label in (("feats-aio", "await start()"), ("feats-sync", "start()")):
                section.note(f"feats {label}, {kind}")
                try:
                    measured = _run_child(
                        [
                            "--child",
                            child,
                            "--flags",
                            str(flags),
                            "--url",
                            url,
                            "--namespace",
                            namespace,
                        ]
                    )
                except Exception as error:
                    results.failures.append(Failure("startup", f"feats {child}", str(error)))
                    section.advance()
                    continue
                note = (
                    f"{int(measured.get('loaded', 0))} features loaded from Redis; "
                    f"declaring them took {measured['declare_ms']:.0f} ms and "
                    f"{measured['declare_rss_mb']:.1f} MB before start()"
                )
                if kind == "static" and measured.get("answer") != 1.0:
                    note += "; WRONG first answer"
                results.startup.append(
                    StartupRow(
                        library="feats",
                        version=feats.__version__,
                        flags=flags,
                        what=f"{label} + first evaluation, {kind}",
                        ms=round(measured["ms"], 2),
                        rss_mb=round(measured["rss_mb"], 2),
                        note=note,
                        extra={k: round(v, 2) for k, v in measured.items()},
                    )
                )
                section.advance(f"feats {label}, {kind}")
        finally:
            delete_namespace(url, namespace)


def _peer_rows(settings: Settings, section: Section, results: Results) -> None:
    flags = settings.startup_features
    with tempfile.TemporaryDirectory(prefix="feats-bench-startup-") as workdir:
        section.note(f"writing the peers' {flags}-flag documents")
        loaders, failures = build_peer_loaders(flags, Path(workdir))
        for failure in failures:
            results.failures.append(Failure("startup", failure.library, failure.reason))
        section.advance("peer documents written")
        for loader in loaders:
            section.note(loader.library)
            try:
                measured = _run_child(
                    [
                        "--child",
                        "peer",
                        "--library",
                        loader.library,
                        "--flags",
                        str(flags),
                        "--workdir",
                        workdir,
                    ]
                )
            except Exception as error:
                results.failures.append(Failure("startup", loader.library, str(error)))
                section.advance(loader.library)
                continue
            results.startup.append(
                StartupRow(
                    library=loader.library,
                    version=loader.version,
                    flags=flags,
                    what="parse a local document, build the client, evaluate once",
                    ms=round(measured["ms"], 2),
                    rss_mb=round(measured["rss_mb"], 2),
                    note="every flag on (a boolean without rules); no network",
                )
            )
            section.advance(loader.library)
        section.advance(steps=len(PEER_LIBRARIES) - len(loaders))


def run_startup(settings: Settings, url: str | None, section: Section, results: Results) -> None:
    if url is not None:
        _feats_rows(settings, url, section, results)
    else:
        results.failures.append(Failure("startup", "feats", "no Redis: feats rows skipped"))
    if settings.peers:
        _peer_rows(settings, section, results)
    section.done()


if __name__ == "__main__":
    sys.exit(main())
