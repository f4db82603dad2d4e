"""Startup and memory: many configured features, from start() to the first evaluation.

Every measurement runs in a fresh interpreter (``python -m benchmarks.startup --child ...``)
so imports, declarations and freed memory of earlier work do not blur it: the child
imports and declares first, then measures the clock and the resident set around
``start()`` + one evaluation (feats), one HGETALL of the stored records and ``json.loads``
of each (the floor the issue-13 target is a ratio of), or ``load()`` (a peer: parse its
document, build the client, evaluate once).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
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
from benchmarks._child import child_env, command, repo_root
from benchmarks._many import KINDS, USER, declare_many, seed, states_key
from benchmarks._measure import rss_bytes
from benchmarks._profile import profiled
from benchmarks._progress import Section
from benchmarks._redis import delete_namespace, fresh_namespace
from benchmarks._results import Failure, Results, StartupRow
from benchmarks._settings import Settings
from benchmarks.peers import PEER_LIBRARIES, build_peer_loaders

__all__ = ["main", "run_startup", "startup_steps"]

_MB = 1024 * 1024
_USER = USER


def startup_steps(settings: Settings) -> int:
    return len(KINDS) * 4 + (len(PEER_LIBRARIES) + 1 if settings.peers else 0)


def _declare(app: feats.App | feats.aio.App, flags: int) -> list[Any]:
    return declare_many(app, flags)


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


def _child_floor(url: str, namespace: str) -> dict[str, float]:
    """What start-up cannot beat: the same stored records in one HGETALL, each json.loads-ed.

    The client is made before the clock starts (as the App's is); connecting is timed, as
    the App's first load connects too. The decoded records stay referenced until measured.
    """
    client = redis.Redis.from_url(url)
    box: dict[str, Any] = {}

    def run() -> dict[str, float]:
        raw = client.hgetall(states_key(namespace))
        box["records"] = {name: json.loads(value) for name, value in raw.items()}
        return {"loaded": float(len(box["records"]))}

    result = _measure(0.0, 0, run)
    client.close()
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
    parser.add_argument(
        "--child", choices=("feats-aio", "feats-sync", "floor", "peer"), required=True
    )
    parser.add_argument("--flags", type=int, required=True)
    parser.add_argument("--url")
    parser.add_argument("--namespace")
    parser.add_argument("--library")
    parser.add_argument("--workdir")
    args = parser.parse_args(argv)
    with profiled():
        if args.child == "feats-aio":
            result = _child_feats_aio(args.url, args.namespace, args.flags)
        elif args.child == "feats-sync":
            result = _child_feats_sync(args.url, args.namespace, args.flags)
        elif args.child == "floor":
            result = _child_floor(args.url, args.namespace)
        else:
            result = _child_peer(args.library, args.flags, args.workdir)
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the parent


def _run_child(arguments: list[str], name: str, timeout: float = 600.0) -> dict[str, float]:
    done = subprocess.run(
        command("benchmarks.startup", arguments, name),
        capture_output=True,
        text=True,
        env=child_env(name),
        cwd=str(repo_root()),
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"exit {done.returncode}: {' | '.join(tail)}")
    # The last JSON line: a profiler wrapping the child may print after it.
    said = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not said:
        raise RuntimeError(f"no result from the child: {done.stdout.strip()[-200:]!r}")
    result: dict[str, float] = json.loads(said[-1])
    return result


_FEATS_CHILDREN = (
    ("floor", "floor", "one HGETALL of the stored records + json.loads of each"),
    ("feats-aio", "feats", "await start()"),
    ("feats-sync", "feats", "start()"),
)


def _feats_rows(settings: Settings, url: str, section: Section, results: Results) -> None:
    flags = settings.startup_features
    for kind in KINDS:
        namespace = fresh_namespace(f"startup-{kind}")
        try:
            section.note(f"configuring {flags} features ({kind})")
            asyncio.run(seed(url, namespace, flags, kind))
            section.advance(f"{flags} features configured ({kind})")
            for child, library, label in _FEATS_CHILDREN:
                section.note(f"{library} {label}, {kind}")
                arguments = ["--child", child, "--flags", str(flags)]
                arguments += ["--url", url, "--namespace", namespace]
                try:
                    measured = _run_child(arguments, f"startup-{child}-{kind}")
                except Exception as error:
                    results.failures.append(Failure("startup", f"{library} {child}", str(error)))
                    section.advance()
                    continue
                results.startup.append(_feats_row(child, library, label, kind, flags, measured))
                section.advance(f"{library} {label}, {kind}")
        finally:
            delete_namespace(url, namespace)


def _feats_row(
    child: str, library: str, label: str, kind: str, flags: int, measured: dict[str, float]
) -> StartupRow:
    loaded = int(measured.get("loaded", 0))
    if child == "floor":
        note = f"{loaded} records read and decoded; the floor of the start-up targets"
        what = f"{label}, {kind}"
    else:
        note = (
            f"{loaded} features loaded from Redis; "
            f"declaring them took {measured['declare_ms']:.0f} ms and "
            f"{measured['declare_rss_mb']:.1f} MB before start()"
        )
        if kind == "static" and measured.get("answer") != 1.0:
            note += "; WRONG first answer"
        what = f"{label} + first evaluation, {kind}"
    return StartupRow(
        library=library,
        version=feats.__version__ if library == "feats" else "",
        flags=flags,
        what=what,
        ms=round(measured["ms"], 2),
        rss_mb=round(measured["rss_mb"], 2),
        note=note,
        extra={k: round(v, 2) for k, v in measured.items()},
    )


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
                    ],
                    f"startup-{loader.library}",
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
