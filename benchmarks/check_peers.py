"""Sanity check of the peer setups: answer shares, rough cost, setup time, and no network use."""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import statistics
import sys
import time
import timeit
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks._users import User, make_users
from benchmarks.peers import (
    DEFAULT,
    DOCUMENTED_POLL_INTERVALS,
    EXPERIMENT_D,
    IMPLEMENTATIONS,
    ROLLOUT_B,
    SCENARIOS,
    PeerCase,
    build_peer_cases,
    build_peer_loaders,
)

# Share tolerance in percentage points; 10,000 users give a standard error near 0.5 points.
TOLERANCE = 2.5
SETUP_LIMIT_SECONDS = 1.0
COLUMNS = ("enabled", "disabled", *IMPLEMENTATIONS, DEFAULT)


@dataclass
class NetworkGuard:
    """Refuses every outbound connection and name lookup, and remembers who asked."""

    attempts: list[str] = field(default_factory=list)

    def refuse(self, what: str) -> OSError:
        self.attempts.append(what)
        return OSError(f"network disabled by check_peers: {what}")


@contextlib.contextmanager
def no_network() -> Iterator[NetworkGuard]:
    guard = NetworkGuard()
    saved = {
        "connect": socket.socket.connect,
        "connect_ex": socket.socket.connect_ex,
        "getaddrinfo": socket.getaddrinfo,
        "create_connection": socket.create_connection,
    }

    def connect(sock: socket.socket, address: Any) -> None:
        raise guard.refuse(f"connect {address!r}")

    def connect_ex(sock: socket.socket, address: Any) -> int:
        raise guard.refuse(f"connect_ex {address!r}")

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        raise guard.refuse(f"getaddrinfo {host!r}:{port!r}")

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        raise guard.refuse(f"create_connection {address!r}")

    # setattr: the socket class and module functions are not meant to be reassigned statically.
    setattr(socket.socket, "connect", connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010
    setattr(socket, "create_connection", create_connection)  # noqa: B010
    try:
        yield guard
    finally:
        setattr(socket.socket, "connect", saved["connect"])  # noqa: B010
        setattr(socket.socket, "connect_ex", saved["connect_ex"])  # noqa: B010
        setattr(socket, "getaddrinfo", saved["getaddrinfo"])  # noqa: B010
        setattr(socket, "create_connection", saved["create_connection"])  # noqa: B010


def shares(answers: Sequence[str]) -> dict[str, float]:
    counts = collections.Counter(answers)
    return {name: 100.0 * count / len(answers) for name, count in counts.items()}


def expected_shares(scenario: str) -> dict[str, float]:
    if scenario == "a":
        return {"enabled": 50.0, "disabled": 50.0}
    if scenario == "c":
        return {DEFAULT: 100.0}
    return {
        name: float(weight)
        for name, weight in (ROLLOUT_B if scenario == "b" else EXPERIMENT_D).items()
    }


def problems(scenario: str, users: Sequence[User], answers: Sequence[str]) -> list[str]:
    found: list[str] = []
    if scenario == "b":
        canadian = [a for u, a in zip(users, answers, strict=True) if u.country == "CA"]
        if any(a != "premium" for a in canadian):
            found.append("CA not all premium")
        # Outside CA the three-way rollout must hold on its own.
        answers = [a for u, a in zip(users, answers, strict=True) if u.country != "CA"]
    got = shares(answers)
    for name, want in expected_shares(scenario).items():
        if abs(got.get(name, 0.0) - want) > TOLERANCE:
            found.append(f"{name} {got.get(name, 0.0):.1f}% vs {want:.0f}%")
    unexpected = set(got) - set(expected_shares(scenario))
    if unexpected:
        found.append(f"unexpected answers {sorted(unexpected)}")
    return found


def time_case(case: PeerCase, users: Sequence[User], repeat: int) -> float:
    """Median ns per call over `repeat` passes, each evaluating every user once."""
    evaluate = case.evaluate

    def one_pass() -> None:
        for user in users:
            evaluate(user)

    runs = timeit.repeat(one_pass, number=1, repeat=repeat)
    return statistics.median(runs) / len(users) * 1e9


def check_scenario(scenario: str, users: Sequence[User], repeat: int) -> bool:
    started = time.perf_counter()
    cases, failures = build_peer_cases(scenario)
    built = time.perf_counter() - started
    print(f"\nscenario ({scenario}): {len(cases)} peers set up in {built * 1000:.0f} ms")
    header = f"{'library':<13}{'version':<9}{'setup ms':>9}{'ns/call':>10}  "
    header += "".join(f"{c:>9}" for c in COLUMNS) + "  checks"
    print(header)
    ok = True
    for case in cases:
        answers = [case.evaluate(user) for user in users]
        ns = time_case(case, users, repeat)
        case.close()
        found = problems(scenario, users, answers)
        if case.setup_seconds > SETUP_LIMIT_SECONDS:
            found.append(f"setup {case.setup_seconds:.2f}s")
        got = shares(answers)
        cells = "".join(f"{got[c]:>8.1f}%" if c in got else f"{'-':>9}" for c in COLUMNS)
        extra = ""
        if scenario == "b":
            canadian = [a for u, a in zip(users, answers, strict=True) if u.country == "CA"]
            extra = f" CA->premium {100.0 * canadian.count('premium') / len(canadian):.1f}%;"
        if case.exposures is not None:
            extra += f" exposures {case.exposures()};"
        verdict = "ok" if not found else "CHECK: " + ", ".join(found)
        ok = ok and not found
        row = f"{case.library:<13}{case.version:<9}{case.setup_seconds * 1000:>9.1f}{ns:>10.0f}  "
        print(row + cells + f"  {verdict};{extra}")
    for failure in failures:
        ok = False
        print(f"{failure.library:<13}FAILED: {failure.reason}")
    return ok


def check_loaders(n_flags: int) -> bool:
    loaders, failures = build_peer_loaders(n_flags)
    print(f"\nloaders: {n_flags} boolean flags from a local document, load + first evaluation")
    for loader in loaders:
        started = time.perf_counter()
        close = loader.load()
        elapsed = time.perf_counter() - started
        close()
        print(f"{loader.library:<13}{loader.version:<9}{elapsed * 1000:>9.1f} ms")
    for failure in failures:
        print(f"{failure.library:<13}FAILED: {failure.reason}")
    return not failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.check_peers", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--loader-flags", type=int, default=1_000, help="0 skips the loaders")
    args = parser.parse_args(argv)
    users = make_users(args.users)
    with no_network() as guard:
        ok = all([check_scenario(s, users, args.repeat) for s in args.scenario or SCENARIOS])
        if args.loader_flags:
            ok = check_loaders(args.loader_flags) and ok
    print("\ndocumented refresh intervals:")
    for interval in DOCUMENTED_POLL_INTERVALS.values():
        seconds = "push" if interval.default_seconds is None else f"{interval.default_seconds:g} s"
        print(f"  {interval.library:<13}{seconds:<7}{interval.mechanism}")
    if guard.attempts:
        ok = False
        print(f"\nnetwork attempts: {len(guard.attempts)}, first: {guard.attempts[:3]}")
    else:
        print("\nnetwork attempts: none")
    print("all checks ok" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
