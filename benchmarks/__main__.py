"""``python -m benchmarks``: run the suite and write results.md, results.json and charts.

Also what ``feats bench`` runs: ``main(argv)`` takes the same arguments and returns the exit
status (0 when the run completed, whatever the targets say; timings are reported, never
asserted). ``--only SECTION`` runs some sections, ``--profile SECTION`` one of them under a
profiler (profiles in OUT/profiles/), ``--baseline OLD/results.json`` compares the
evaluation rows with an earlier run. benchmarks/README.md lists the sections.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from benchmarks import _profile
from benchmarks._progress import Section, Steps
from benchmarks._redis import RedisTarget, redis_target
from benchmarks._results import Failure, Results
from benchmarks._settings import FULL, QUICK, SECTIONS, Settings
from benchmarks.evaluation import evaluation_steps, run_evaluation
from benchmarks.exposures import exposure_steps, run_exposures
from benchmarks.gc_pauses import gc_steps, run_gc
from benchmarks.loaded import loaded_steps, run_loaded
from benchmarks.propagation import propagation_steps, run_propagation
from benchmarks.report import load_baseline, write_report
from benchmarks.stalls import run_stalls, stall_steps
from benchmarks.startup import run_startup, startup_steps
from benchmarks.telemetry import run_telemetry, telemetry_steps
from benchmarks.write_path import run_write, write_steps

__all__ = ["DEFAULT_OUT", "QUICK_OUT", "main", "output_folder"]

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
"""Where a full run writes: the committed results the README quotes."""
QUICK_OUT = Path(__file__).resolve().parent / "runs" / "quick"
"""Where a --quick run writes unless --out says otherwise (not committed: .gitignore)."""
_DISTRIBUTIONS = (
    "redis",
    "hiredis",
    "xxhash",
    "growthbook",
    "launchdarkly-server-sdk",
    "UnleashClient",
    "flagsmith",
    "openfeature-sdk",
    "opentelemetry-sdk",
    "prometheus_client",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark feats against a plain-function floor and other flag libraries.",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results folder (default {DEFAULT_OUT}; with --quick {QUICK_OUT})",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        help="run only this section (repeatable); default: all",
    )
    parser.add_argument(
        "--redis-url",
        help="use this Redis (unique namespaces, deleted afterwards) instead of starting a "
        "private redis-server on a free loopback port",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the other libraries")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--profile",
        choices=SECTIONS,
        metavar="SECTION",
        help="run only SECTION (one of: %(choices)s) with every process it measures under a "
        "profiler, and write the profiles to OUT/profiles/ (timings of such a run are not "
        "results: the profiler slows what it watches)",
    )
    parser.add_argument(
        "--profile-tool",
        choices=_profile.TOOLS,
        default="cprofile",
        help="cprofile (default: .prof and a .txt summary per process, every thread merged) "
        "or py-spy (a flame graph .svg per process, sampled from outside)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a results.json of an earlier run: the no-regression targets of scenarios "
        "(b)-(d) compare with its evaluation rows",
    )
    knobs = parser.add_argument_group("sizes (override the --quick or full defaults)")
    knobs.add_argument("--users", type=int, help="distinct users per evaluation pass")
    knobs.add_argument("--repeat", type=int, help="timed passes per evaluation row")
    knobs.add_argument("--apps", type=int, help="asyncio Apps following the writer")
    knobs.add_argument("--processes", type=int, help="processes the Apps are spread over")
    knobs.add_argument("--changes", type=int, help="changes the writer makes")
    knobs.add_argument("--interval-ms", type=float, help="ms between two changes")
    knobs.add_argument("--fanout-features", type=int, help="features configured, second run")
    knobs.add_argument("--startup-features", type=int, help="features loaded at startup")
    knobs.add_argument("--exposure-seconds", type=float, help="seconds per exposure run")
    knobs.add_argument("--stall-features", type=int, help="features of the stall-probed App")
    knobs.add_argument("--burst-changes", type=int, help="changes in the stall burst phase")
    knobs.add_argument("--loaded-tasks", type=int, help="request tasks saturating the loop")
    knobs.add_argument("--loaded-changes", type=int, help="changes under the loaded loop")
    knobs.add_argument("--write-changes", type=int, help="changes of the write-to-visible run")
    knobs.add_argument("--gc-features", type=int, help="features of the GC-measured App")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    settings = QUICK if args.quick else FULL
    overrides: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "users",
            "repeat",
            "apps",
            "processes",
            "changes",
            "interval_ms",
            "fanout_features",
            "startup_features",
            "exposure_seconds",
            "stall_features",
            "burst_changes",
            "loaded_tasks",
            "loaded_changes",
            "write_changes",
            "gc_features",
        )
        if getattr(args, name) is not None
    }
    if args.no_peers:
        overrides["peers"] = False
    if args.only:
        overrides["sections"] = tuple(s for s in SECTIONS if s in args.only)
    elif args.profile:
        overrides["sections"] = (args.profile,)
    return settings.with_(**overrides)


def output_folder(args: argparse.Namespace) -> Path:
    """--out if given; else a quick run writes beside, not over, the committed results."""
    if args.out is not None:
        return Path(args.out)
    return QUICK_OUT if args.quick else DEFAULT_OUT


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | str:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return "?"


def _versions() -> dict[str, str]:
    import feats

    versions = {"feats": feats.__version__}
    for name in _DISTRIBUTIONS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _machine(argv: Sequence[str], target: RedisTarget | None) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis": target.description if target is not None else "no Redis",
        "command": " ".join(["python -m benchmarks", *argv]),
        "versions": _versions(),
    }


Runner = Callable[[Settings, Any, Section, Results], None]
_NEEDS_REDIS = ("propagation", "stalls", "loaded", "write", "gc")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; 0 when it completed and wrote its files, 2 on bad arguments.

    Targets missed are reported, never an error: timings depend on the machine.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(arguments)
    except SystemExit as stop:  # --help, or arguments argparse refused (it printed why)
        return stop.code if isinstance(stop.code, int) else 2
    settings = _settings(args)
    # feats warns once per cause (a 10,000-feature catalog too large to publish, say); the
    # run reports what matters itself. Restored afterwards: main() also runs in-process
    # (feats bench, the smoke test).
    feats_logger = logging.getLogger("feats")
    level = feats_logger.level
    feats_logger.setLevel(logging.ERROR)
    try:
        return _run(args, arguments, settings)
    finally:
        feats_logger.setLevel(level)


def _run(args: argparse.Namespace, arguments: list[str], settings: Settings) -> int:
    out = output_folder(args)
    profiles = out / "profiles"
    if args.profile:
        if args.profile_tool == "py-spy" and _profile.py_spy() is None:
            print("py-spy is not installed (pip install -e '.[bench]')", file=sys.stderr)
            return 2
        _profile.clear(profiles)
        _profile.enable(profiles, args.profile_tool)
    try:
        with redis_target(args.redis_url) as target:
            url = target.url if target is not None else None
            results = Results(
                machine=_machine(arguments, target), settings=dict(vars(settings).items())
            )
            if args.baseline is not None:
                results.baseline = load_baseline(args.baseline)
            _sections(args, settings, url, results)
    finally:
        _profile.disable()
    if args.profile:
        results.profiles = _profile.written(profiles)
    paths = write_report(results, out)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    for profile in results.profiles:
        print(f"  profile {out / profile}")
    for target_ in results.targets:
        verdict = "n/a" if target_.met is None else ("met" if target_.met else "MISSED")
        print(f"  {verdict:>6}  {target_.name}: {target_.measured} (goal {target_.goal})")
    return 0


def _sections(
    args: argparse.Namespace, settings: Settings, url: str | None, results: Results
) -> None:
    plan: list[tuple[str, int, Runner]] = [
        ("evaluation", evaluation_steps(settings), run_evaluation),
        ("propagation", propagation_steps(settings), run_propagation),
        ("startup", startup_steps(settings), run_startup),
        ("exposures", exposure_steps(settings), run_exposures),
        ("stalls", stall_steps(settings), run_stalls),
        ("loaded", loaded_steps(settings), run_loaded),
        ("write", write_steps(settings), run_write),
        ("gc", gc_steps(settings), run_gc),
        ("telemetry", telemetry_steps(settings), run_telemetry),
    ]
    with Steps(enabled=not args.no_progress) as steps:
        sections = [
            (name, steps.section(name, total), run)
            for name, total, run in plan
            if name in settings.sections
        ]
        for name, section, run in sections:
            if name in _NEEDS_REDIS and url is None:
                results.failures.append(Failure(name, "feats", "no Redis: section skipped"))
                continue
            started = time.perf_counter()
            try:
                # The parent's own part of a profiled section (writers, floors) is
                # profiled too; its children profile themselves.
                with _profile.profiled(f"{name}-parent") if args.profile else _nothing():
                    run(settings, url, section, results)
            except Exception as error:
                results.failures.append(Failure(name, "suite", f"{type(error).__name__}: {error}"))
                steps.log(f"[red]{name} failed: {type(error).__name__}: {error}[/red]")
            results.sections_seconds[name] = round(time.perf_counter() - started, 1)


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
