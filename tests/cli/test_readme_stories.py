"""The README's operating stories work as written: its shop is the shop the examples, the
demo and the tests run on, and its ``feats -n shop ...`` commands, run in order against
``python examples/shop.py``, print what the README shows."""

from __future__ import annotations

import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import feats.aio
from feats._catalog import declarations_document
from feats._cli import Exit, cli
from feats._cli._shop import declare

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
OPERATING = README[README.index("## Operating features") : README.index("## Declaring features")]
VERSION = re.compile(r"\b\d{13}-\d+\b")
SMALL = ("--users", "200")
MISTAKES = ("premum", "acme=70")
"""The commands the README shows failing ("Mistakes change nothing")."""


@dataclass
class Story:
    command: str
    shown: list[str]


def _stories() -> list[Story]:
    """Every ``$ feats ...`` line of the operating section, with the output shown under it."""
    stories: list[Story] = []
    current: Story | None = None
    for line in OPERATING.splitlines():
        if line.startswith("    $ "):
            current = Story(line[6:], []) if line.startswith("    $ feats ") else None
            if current is not None:
                stories.append(current)
        elif line.startswith("    ") and current is not None:
            current.shown.append(line[4:])
        else:
            current = None
    return stories


def _shop_listing() -> str:
    section = OPERATING[OPERATING.index("### The shop the stories run on") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


def _plain(document: dict[str, Any]) -> Any:
    """Declarations as an operator sees them: without the modules they were declared in."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("module", "key", "mro")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    plain = strip(document)
    return {
        "features": sorted(plain["features"], key=lambda f: f["name"]),
        "segments": sorted(plain["segments"], key=lambda s: s["name"]),
    }


def test_the_readme_shop_is_the_shop() -> None:
    module = types.ModuleType("readme_shop")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    try:
        exec(compile(_shop_listing(), "README.md (the shop)", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    app = module.app
    assert isinstance(app, feats.aio.App) and app.storage.namespace == "shop"
    shop = feats.aio.App()
    declare(shop)
    assert _plain(declarations_document(app.registry)) == _plain(
        declarations_document(shop.registry)
    )


def test_every_story_names_the_shop_namespace() -> None:
    stories = _stories()
    assert len(stories) >= 10
    for story in stories:
        assert " -n shop " in f"{story.command} ", story.command


class Shop:
    """``python examples/shop.py`` in a process of its own, its output read line by line."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
        self.process = subprocess.Popen(
            [sys.executable, "examples/shop.py", "--redis", redis_url, "-n", namespace, *SMALL],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"examples/shop.py printed no line matching {pattern!r}"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if re.search(pattern, line):
                return line

    def stop(self) -> None:
        self.process.terminate()
        try:
            _, errors = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, errors = self.process.communicate()
        assert "Traceback" not in errors, errors


def _normal(text: str, namespace: str) -> str:
    return VERSION.sub("V", text).replace(repr(namespace), "'shop'")


def _checked(line: str) -> bool:
    """Lines of the README's output that must be printed as they are (tables of times,
    authors and exposure counts vary from run to run)."""
    return not line.startswith(("┃", "│", "┏", "┡", "└", "History of", "Exposures of"))


def test_the_readme_stories_run_as_written(redis_url: str, namespace: str) -> None:
    shop = Shop(redis_url, namespace)
    try:
        serving = shop.wait_for("^serving the shop")
        assert f"in namespace {namespace!r}" in serving
        runner = CliRunner()
        for story in _stories():
            args = shlex.split(story.command)[1:]
            args[args.index("-n") + 1] = namespace
            if args[args.index("-n") + 2] == "exposures":
                _wait_for_exposures(runner, redis_url, namespace)
            asked = "--yes" not in args and not any(m in story.command for m in MISTAKES)
            result = runner.invoke(
                cli,
                ["--redis", redis_url, *args],
                input="y\n" if asked else None,
                env={"FEATS_REDIS_URL": None, "FEATS_NAMESPACE": None, "COLUMNS": "120"},
            )
            assert "Traceback" not in result.output, result.output
            if any(mistake in story.command for mistake in MISTAKES):
                assert result.exit_code in (Exit.NOT_FOUND, Exit.INVALID), result.output
            else:
                assert result.exit_code == Exit.OK, (story.command, result.output)
            printed = _normal(result.output, namespace)
            for line in story.shown:
                expected = _normal(line, namespace).removesuffix(" y")
                if _checked(expected):
                    assert expected in printed, (story.command, expected, printed)
            if "exposures" in args:
                assert re.search(r"Exposures of AllowedPriorities: [\d,]+ in total", printed)
            if story.command.startswith("feats -n shop set PaymentProcessor premium --where"):
                shop.wait_for("PaymentProcessor now gives US acme, CA premium, GB acme")
    finally:
        shop.stop()


def _wait_for_exposures(runner: CliRunner, redis_url: str, namespace: str) -> None:
    """The shop's customers are exposed within a few seconds of the experiment's start."""
    deadline = time.monotonic() + 30
    while True:
        result = runner.invoke(
            cli, ["--redis", redis_url, "-n", namespace, "exposures", "AllowedPriorities", "--json"]
        )
        if result.exit_code == 0 and json.loads(result.stdout)["total"] > 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no exposures of AllowedPriorities after 30 s: {result.output}")
        time.sleep(0.2)
