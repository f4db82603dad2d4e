"""``feats demo``: the seed README's payments story, live.

A serving App evaluates simulated users of several countries continuously, with no network
on the hot path; an operator App that has no declarations of its own (like the CLI) applies
the story's changes one after another, validated against the catalog the serving App
published. A live table shows, per country, the share of users on each implementation, and
each change's propagation time: from asking for the change to the serving App applying it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .._stored import version_at_least
from ..aio import App, MemoryStorage, RedisStorage, Storage
from ._shop import User, declare

__all__ = ["COUNTRIES", "STEPS", "Step", "Story", "choose_steps", "run"]

COUNTRIES: tuple[tuple[str, int], ...] = (("US", 8), ("CA", 4), ("GB", 3), ("DE", 3), ("MX", 2))
"""Countries of the simulated users and their relative sizes."""
PROCESSORS = ("acme", "premium", "aperture")
PRIORITIES = ("no_priority", "two_priorities", "three_priorities")
AUTHOR = "feats-demo"
PARTS = ("Country", "UserId", "PaymentProcessor", "AllowedPriorities")
"""What the serving App declares of the shop (feats/_cli/_shop.py)."""


def population(size: int) -> list[User]:
    """``size`` users spread over COUNTRIES by their weights, deterministically."""
    cycle = [country for country, weight in COUNTRIES for _ in range(weight)]
    return [User(index + 1, cycle[index % len(cycle)]) for index in range(size)]


@dataclass
class Outcome:
    """What one step did and what the serving App's users saw afterwards."""

    name: str
    title: str
    command: str
    version: str | None = None
    propagation_ms: float | None = None
    observed: str = ""
    shares: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    command: str
    act: Callable[[Story], Awaitable[str]]
    observe: Callable[[Story], str]
    hold: float = 3.5


class Story:
    """The running demo: two Apps on one storage, the users, the sweeps, the outcomes."""

    def __init__(self, serving: App, operator: App, users: list[User]) -> None:
        self.serving = serving
        self.operator = operator
        self.users = users
        shop = declare(serving, PARTS)
        self.payment, self.priorities = shop.PaymentProcessor, shop.AllowedPriorities
        self.processor = ["acme"] * len(users)
        self.priority = ["no_priority"] * len(users)
        self.sweeps = 0
        self.evaluations = 0
        self.started = time.perf_counter()
        self.swept_version: str | None = None
        """The version the serving App had applied when the last complete sweep began."""
        self.applied: list[tuple[str, float]] = []
        self.outcomes: list[Outcome] = []
        self.experiment_running = False
        self.aperture_before: set[int] = set()
        self.exposures: dict[str, int] = {}
        self._swept = asyncio.Condition()
        serving.add_listener(self._on_change)

    def _on_change(self, version: str, features: tuple[str, ...]) -> None:
        self.applied.append((version, time.perf_counter()))

    # -- evaluating ------------------------------------------------------------------

    async def evaluate_forever(self, period: float) -> None:
        """Sweep every user through both features, at most once per ``period``."""
        names = {(): "no_priority", (2,): "two_priorities", (3,): "three_priorities"}
        payment, priorities = self.payment, self.priorities
        while True:
            began = time.perf_counter()
            version = self.serving.version
            for index, user in enumerate(self.users):
                self.processor[index] = await payment.create(user)
                allowed = await priorities.create(user)
                self.priority[index] = names[(len(allowed),) if allowed else ()]
                if index % 256 == 255:
                    await asyncio.sleep(0)
            self.evaluations += 2 * len(self.users)
            self.sweeps += 1
            async with self._swept:
                self.swept_version = version or "0-0"
                self._swept.notify_all()
            await asyncio.sleep(max(0.0, period - (time.perf_counter() - began)))

    async def wait_for_sweep(self, version: str, timeout: float = 10.0) -> None:
        """Until a sweep that began with ``version`` applied has completed."""

        def done() -> bool:
            swept = self.swept_version
            return swept is not None and version_at_least(swept, version)

        async with self._swept:
            await asyncio.wait_for(self._swept.wait_for(done), timeout)

    def shares(self) -> dict[str, dict[str, float]]:
        return _shares(self.users, self.processor)

    def priority_shares(self) -> dict[str, dict[str, float]]:
        return _shares(self.users, self.priority)

    def aperture_users(self) -> set[int]:
        return {self.users[i].id for i, name in enumerate(self.processor) if name == "aperture"}

    # -- changing --------------------------------------------------------------------

    async def change(self, step: Step) -> Outcome:
        outcome = Outcome(step.name, step.title, step.command)
        self.outcomes.append(outcome)
        asked = time.perf_counter()
        version = await step.act(self)
        outcome.version = version
        await self.serving.wait_for_version(version, timeout=10)
        applied = next(
            (at for seen, at in self.applied if version_at_least(seen, version)),
            time.perf_counter(),
        )
        outcome.propagation_ms = max(0.0, (applied - asked) * 1000)
        await self.wait_for_sweep(version)
        outcome.observed = step.observe(self)
        outcome.shares = self.shares()
        return outcome


def _shares(users: Sequence[User], chosen: Sequence[str]) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, int]] = {}
    for user, name in zip(users, chosen, strict=True):
        row = counts.setdefault(user.country, {})
        row[name] = row.get(name, 0) + 1
    return {
        country: {name: count / sum(row.values()) for name, count in row.items()}
        for country, row in counts.items()
    }


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


# -- the story's steps -------------------------------------------------------------------


async def _start(story: Story) -> str:
    return await story.operator.admin.set_fallthrough(
        "PaymentProcessor", "acme", author=AUTHOR, reason="Acme is the cheapest: everyone on it"
    )


async def _canada(story: Story) -> str:
    return await story.operator.admin.route(
        "PaymentProcessor",
        "premium",
        where={"Country": "CA"},
        author=AUTHOR,
        reason="Monitoring: Acme charges fail in Canada",
    )


async def _rollback(story: Story) -> str:
    admin = story.operator.admin
    history = await admin.history("PaymentProcessor")
    if len(history) < 2:
        return await admin.reset("PaymentProcessor", author=AUTHOR, reason="Acme recovered")
    return await admin.rollback(
        "PaymentProcessor", history[-2].version, author=AUTHOR, reason="Acme recovered in Canada"
    )


def _aperture(percent: int) -> Callable[[Story], Awaitable[str]]:
    async def act(story: Story) -> str:
        story.aperture_before = story.aperture_users()
        weights = (
            {"aperture": percent, "acme": 100 - percent} if percent < 100 else {"aperture": 100}
        )
        return await story.operator.admin.rollout(
            "PaymentProcessor",
            "UserId",
            weights,
            where={"Country": "US"},
            author=AUTHOR,
            reason=f"Aperture integration healthy: {percent}% of US users",
        )

    return act


async def _priorities(story: Story) -> str:
    story.experiment_running = True
    return await story.operator.admin.start_experiment(
        "AllowedPriorities",
        "UserId",
        {"no_priority": 34, "two_priorities": 33, "three_priorities": 33},
        author=AUTHOR,
        reason="Do priorities make users happier?",
    )


def _observe_all(story: Story) -> str:
    shares = story.shares()
    acme = min(row.get("acme", 0.0) for row in shares.values())
    return f"every country {_pct(acme)} acme"


def _observe_canada(story: Story) -> str:
    shares = story.shares()
    others = min(row.get("acme", 0.0) for country, row in shares.items() if country != "CA")
    return f"CA {_pct(shares['CA'].get('premium', 0.0))} premium, others {_pct(others)} acme"


def _observe_rollback(story: Story) -> str:
    shares = story.shares()
    return f"CA back to {_pct(shares['CA'].get('acme', 0.0))} acme"


def _observe_aperture(story: Story) -> str:
    shares = story.shares()
    now = story.aperture_users()
    text = f"US {_pct(shares['US'].get('aperture', 0.0))} aperture"
    before = story.aperture_before
    if before:
        kept = len(before & now) / len(before)
        text += f"; {_pct(kept)} of earlier aperture users kept it"
    others = max(row.get("aperture", 0.0) for country, row in shares.items() if country != "US")
    return text + f"; elsewhere {_pct(others)}"


def _observe_priorities(story: Story) -> str:
    shares: dict[str, int] = {}
    for name in story.priority:
        shares[name] = shares.get(name, 0) + 1
    total = len(story.priority)
    return "users: " + ", ".join(
        f"{name} {_pct(shares.get(name, 0) / total)}" for name in PRIORITIES
    )


STEPS: tuple[Step, ...] = (
    Step(
        "start",
        "Everyone pays with Acme",
        "feats set PaymentProcessor acme",
        _start,
        _observe_all,
        hold=2.5,
    ),
    Step(
        "canada",
        "Acme fails in Canada: Canadians to premium",
        "feats set PaymentProcessor premium --where Country=CA",
        _canada,
        _observe_canada,
    ),
    Step(
        "rollback",
        "Acme recovered: roll back",
        "feats rollback PaymentProcessor",
        _rollback,
        _observe_rollback,
    ),
    Step(
        "aperture5",
        "Roll out Aperture to 5% of US users",
        "feats rollout PaymentProcessor --by UserId aperture=5 acme=95 --where Country=US",
        _aperture(5),
        _observe_aperture,
    ),
    Step(
        "aperture25",
        "Aperture to 25% of US users",
        "feats rollout PaymentProcessor --by UserId aperture=25 acme=75 --where Country=US",
        _aperture(25),
        _observe_aperture,
    ),
    Step(
        "aperture100",
        "Aperture to all US users",
        "feats rollout PaymentProcessor --by UserId aperture=100 --where Country=US",
        _aperture(100),
        _observe_aperture,
    ),
    Step(
        "priorities",
        "Experiment: do priorities help?",
        "feats experiment AllowedPriorities --by UserId no_priority=34 two_priorities=33 "
        "three_priorities=33",
        _priorities,
        _observe_priorities,
        hold=6.0,
    ),
)


def choose_steps(spec: str | None) -> tuple[Step, ...]:
    """All steps; ``N``: the first N; else a comma list of step names, numbers and ranges
    (``1-3``, ``canada,rollback``, ``4-6,priorities``). ValueError otherwise."""
    if spec is None or not spec.strip():
        return STEPS
    spec = spec.strip()
    if spec.isdigit():
        return STEPS[: _step_number(spec)]
    by_name = {step.name: step for step in STEPS}
    chosen: list[Step] = []
    for part in (part.strip() for part in spec.split(",")):
        first, dash, last = part.partition("-")
        if part.isdigit():
            chosen.append(STEPS[_step_number(part) - 1])
        elif dash and first.strip().isdigit() and last.strip().isdigit():
            start, end = _step_number(first), _step_number(last)
            if start > end:
                raise ValueError(f"--steps: {part!r} goes backwards (write {end}-{start})")
            chosen.extend(STEPS[start - 1 : end])
        elif part in by_name:
            chosen.append(by_name[part])
        else:
            raise ValueError(
                f"--steps: unknown step {part!r} (steps: 1-{len(STEPS)} or {', '.join(by_name)})"
            )
    return tuple(chosen)


def _step_number(text: str) -> int:
    number = int(text)
    if not 1 <= number <= len(STEPS):
        raise ValueError(f"--steps: a step number from 1 to {len(STEPS)}, got {number}")
    return number


# -- rendering ---------------------------------------------------------------------------


def render(story: Story, *, storage: str, title: str = "", changes: bool = True) -> Group:
    elapsed = max(1e-9, time.perf_counter() - story.started)
    header = Text("feats demo", style="bold")
    header.append(
        f" · {storage} · {len(story.users):,} users re-evaluated every 100 ms · "
        f"{story.evaluations:,} evaluations in {elapsed:.1f} s, none touching the network"
    )
    if title:
        header.append(f"\n▶ {title}", style="bold cyan")
    payments = Table(title="PaymentProcessor: share of users per country", title_justify="left")
    payments.add_column("Country")
    payments.add_column("Users", justify="right")
    for name in PROCESSORS:
        payments.add_column(name, justify="right")
    shares = story.shares()
    sizes = _sizes(story.users)
    for country, _ in COUNTRIES:
        row = shares.get(country, {})
        payments.add_row(
            country,
            f"{sizes.get(country, 0):,}",
            *(_cell(row.get(name, 0.0)) for name in PROCESSORS),
        )
    parts: list[Any] = [header, payments]
    if story.experiment_running:
        priorities = Table(
            title="AllowedPriorities experiment (by UserId): share per country",
            title_justify="left",
        )
        priorities.add_column("Country")
        for name in PRIORITIES:
            priorities.add_column(name, justify="right")
        priority_shares = story.priority_shares()
        for country, _ in COUNTRIES:
            row = priority_shares.get(country, {})
            priorities.add_row(country, *(_cell(row.get(name, 0.0)) for name in PRIORITIES))
        if story.exposures:
            total = sum(story.exposures.values()) or 1
            priorities.caption = "exposures recorded: " + ", ".join(
                f"{name} {count:,} ({count / total * 100:.1f}%)"
                for name, count in story.exposures.items()
            )
            priorities.caption_justify = "left"
        parts.append(priorities)
    if not changes:
        return Group(*parts)
    steps = Table(title="Changes", title_justify="left")
    steps.add_column("#", justify="right")
    steps.add_column("Step")
    steps.add_column("Version", no_wrap=True)
    steps.add_column("Propagation", justify="right", no_wrap=True)
    steps.add_column("Observed")
    for index, outcome in enumerate(story.outcomes, 1):
        steps.add_row(
            str(index),
            Text(outcome.title) + Text(f"\n$ {outcome.command}", style="dim"),
            outcome.version or "…",
            "…" if outcome.propagation_ms is None else f"{outcome.propagation_ms:.1f} ms",
            outcome.observed,
        )
    parts.append(steps)
    return Group(*parts)


def _cell(share: float) -> Text:
    style = "bold" if share >= 0.5 else ("" if share > 0 else "dim")
    return Text(_pct(share), style=style)


def _sizes(users: Sequence[User]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for user in users:
        sizes[user.country] = sizes.get(user.country, 0) + 1
    return sizes


# -- running -----------------------------------------------------------------------------


async def _storages(redis_url: str | None, namespace: str) -> tuple[Storage, Storage, Any]:
    if redis_url is None:
        shared = MemoryStorage(namespace)
        return shared, shared, None
    import redis.asyncio

    serving_client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2)
    operator_client = redis.asyncio.Redis.from_url(redis_url, socket_connect_timeout=2)
    return (
        RedisStorage(serving_client, namespace, block_ms=1000),
        RedisStorage(operator_client, namespace, block_ms=1000),
        (serving_client, operator_client),
    )


async def _cleanup(clients: Any, namespace: str) -> None:
    serving_client, operator_client = clients
    keys = [key async for key in operator_client.scan_iter(match=f"feats:{{{namespace}}}:*")]
    if keys:
        await operator_client.delete(*keys)
    await serving_client.aclose()
    await operator_client.aclose()


async def play(
    *,
    redis_url: str | None,
    namespace: str | None,
    speed: float,
    steps: Sequence[Step],
    users: int,
    console: Console | None,
    live: bool,
) -> dict[str, Any]:
    own_namespace = namespace is None
    namespace = namespace or f"feats-demo-{uuid.uuid4().hex[:8]}"
    serving_storage, operator_storage, clients = await _storages(redis_url, namespace)
    label = "in-memory storage" if redis_url is None else f"Redis namespace {namespace!r}"
    serving = App(storage=serving_storage, block_ms=1000, flush_interval=0.1)
    operator = App(storage=operator_storage, block_ms=1000)
    story = Story(serving, operator, population(users))
    title = ""
    display: Live | None = None
    try:
        await serving.start()
        # The operator validates against the catalog, which the tail publishes soon after
        # start: the story's first change must not race it.
        await serving.admin.publish_catalog()
        evaluator = asyncio.create_task(story.evaluate_forever(period=0.1))
        if live and console is not None:
            display = Live(
                render(story, storage=label), console=console, refresh_per_second=8, transient=False
            )
            display.start()

        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.125)
                if display is not None:
                    display.update(render(story, storage=label, title=title))

        refresher = asyncio.create_task(refresh())
        await story.wait_for_sweep("0-0")
        for step in steps:
            title = step.title
            began = time.perf_counter()
            outcome = await story.change(step)
            if step.name == "priorities":
                await asyncio.sleep(max(0.0, step.hold / speed - (time.perf_counter() - began)))
                await serving.flush()
                report = await operator.admin.exposures("AllowedPriorities")
                story.exposures = {i.implementation: i.exposures for i in report.implementations}
                total = report.total or 1
                outcome.observed += "; exposures " + ", ".join(
                    f"{i.implementation} {i.exposures / total * 100:.1f}%"
                    for i in report.implementations
                )
            else:
                await asyncio.sleep(max(0.0, step.hold / speed - (time.perf_counter() - began)))
            if console is not None and not live:
                line = Text(f"▶ {step.title}", style="bold")
                line.append(f"\n  $ {step.command}", style="dim")
                line.append(
                    f"\n  version {outcome.version}, applied by the serving App "
                    f"{outcome.propagation_ms or 0.0:.1f} ms after it was asked for; "
                    f"{outcome.observed}"
                )
                console.print(line)
                console.print(render(story, storage=label, changes=False).renderables[1:][0])
                console.print()
        title = "done"
        refresher.cancel()
        evaluator.cancel()
        for task in (refresher, evaluator):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if display is not None:
            display.update(render(story, storage=label, title="done"))
        elif console is not None:
            console.print(render(story, storage=label, title="done"))
    finally:
        if display is not None:
            display.stop()
        await serving.aclose()
        await operator.aclose()
        if clients is not None:
            if own_namespace:
                await _cleanup(clients, namespace)
            else:
                for client in clients:
                    await client.aclose()
    elapsed = time.perf_counter() - story.started
    return {
        "storage": "memory" if redis_url is None else "redis",
        "namespace": namespace,
        "users": users,
        "evaluations": story.evaluations,
        "sweeps": story.sweeps,
        "seconds": round(elapsed, 3),
        "steps": [
            {
                "name": outcome.name,
                "title": outcome.title,
                "command": outcome.command,
                "version": outcome.version,
                "propagation_ms": None
                if outcome.propagation_ms is None
                else round(outcome.propagation_ms, 3),
                "observed": outcome.observed,
                "shares": outcome.shares,
            }
            for outcome in story.outcomes
        ],
        "exposures": story.exposures,
    }


def run(
    *,
    redis_url: str | None,
    namespace: str | None,
    speed: float,
    steps: Sequence[Step],
    users: int,
    plain: bool,
    json_output: bool,
) -> dict[str, Any]:
    """Play the story; live table on a terminal, snapshots without one, nothing with JSON."""
    import os
    import sys

    console: Console | None = None
    live = False
    if not json_output:
        terminal = sys.stdout.isatty()
        width = None if terminal else int(os.environ.get("COLUMNS", "120"))
        console = Console(file=sys.stdout, width=width, highlight=False)
        live = terminal and not plain and console.is_terminal
    return asyncio.run(
        play(
            redis_url=redis_url,
            namespace=namespace,
            speed=speed,
            steps=steps,
            users=users,
            console=console,
            live=live,
        )
    )
