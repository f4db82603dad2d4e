"""Browser fixtures: Debian's Chromium under Playwright, and the standalone admin for real.

Each test gets a redis-server of its own on a free loopback port (tests/servers/), so its
namespace can be called ``shop`` as in the README without meeting another test's, with: a
users file made by ``feats web add-user`` (the password on stdin), an App in another
process serving the shop's declarations (tests/web/_serving.py), and
``feats web --users FILE`` on a free loopback port.

Screenshots go to a temporary directory; ``FEATS_SCREENSHOTS=docs/screenshots`` (a path
relative to the repository root, or absolute) writes them there instead, for the README.
Run apart from the main suite, without pytest-asyncio: ``pytest -p no:asyncio tests/browser``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

import feats

from ..servers import RedisServer
from ..web._shop import declare

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "shop"
SCREENSHOTS_VARIABLE = "FEATS_SCREENSHOTS"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PASSWORD = "correct horse battery"
CHROMIUM = os.environ.get("FEATS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_SECONDS = 20.0
ANSWER_SECONDS = 20.0

expect.set_options(timeout=10_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Peer:
    """The serving App's process: one JSON command in, one JSON answer out."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.web._serving", redis_url, namespace],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ready = self._answer()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _answer(self) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=ANSWER_SECONDS)
        except queue.Empty:
            raise AssertionError(
                f"the serving App did not answer (exit {self.process.poll()})"
            ) from None
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def serves(self, version: str, feature: str, users: list[tuple[int, str]]) -> list[str]:
        """What the App answers for ``users`` once it has applied ``version``."""
        answer = self.ask(op="wait", version=version, feature=feature, users=users)
        assert answer["explained"] == version or not users
        found: list[str] = answer["answers"]
        return found

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The reader ends at the pipe's end of file; its file is closed once it has.
        self.reader.join(timeout=ANSWER_SECONDS)
        assert self.process.stdout is not None
        self.process.stdout.close()
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


@dataclass
class Stack:
    """Everything a story needs: the admin's URL, the serving App, and an admin for setup."""

    base: str
    peer: Peer
    app: feats.App
    namespace: str

    def history(self, feature: str = "PaymentProcessor") -> list[feats.Change]:
        return self.app.admin.history(feature)


def _add_user(users: Path, name: str, role: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "feats", "web", "add-user", str(users), name, "--role", role],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in users.read_text()


def _wait_for_http(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"feats web exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"feats web did not answer at {url} within {START_SECONDS}s")


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium, or set FEATS_CHROMIUM")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for this test alone: the namespace is ``shop`` and meets no other."""
    with RedisServer(name="browser") as server:
        yield server


def _stop(server: subprocess.Popen[str]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def stack(redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    redis_url, namespace = redis_server.url + "/0", NAMESPACE
    users = tmp_path / "users.json"
    _add_user(users, "alice", "editor")
    with contextlib.ExitStack() as cleanup:
        sync_redis: redis.Redis = redis_server.client()
        cleanup.callback(sync_redis.close)
        peer = Peer(redis_url, namespace)
        cleanup.callback(peer.close)
        port = free_port()
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "feats", "web", "--redis", redis_url, "-n", namespace),
                *("--host", "127.0.0.1", "--port", str(port), "--users", str(users)),
            ],
            cwd=ROOT,
            env={**os.environ, "FEATS_WEB_SECRET_KEY": "browser-tests-secret-key"},
            text=True,
        )
        cleanup.callback(_stop, server)
        admin_app = feats.App(
            storage=feats.RedisStorage(sync_redis, namespace, block_ms=500), block_ms=500
        )
        declare(admin_app)
        base = f"http://127.0.0.1:{port}"
        _wait_for_http(base + "/login", server)
        yield Stack(base, peer, admin_app, namespace)


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860}, device_scale_factor=1)
    opened = context.new_page()
    errors = record_errors(opened)
    yield opened
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


def record_errors(page: Page) -> list[str]:
    """The page's uncaught errors and console errors, as they come (a test asserts none)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    return errors


def sign_in(page: Page, stack: Stack, name: str = "alice") -> None:
    page.goto(stack.base + "/")
    expect(page).to_have_url(stack.base + "/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("header .user")).to_have_text(name)
    expect(page.locator("header .ns")).to_have_text(stack.namespace)


def screenshot_directory(chosen: str | None, temporary: Path) -> Path:
    """Where screenshots go: ``temporary`` unless $FEATS_SCREENSHOTS names a directory
    (relative to the repository root, so the committed ones change only when asked)."""
    return ROOT / chosen if chosen else temporary


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = screenshot_directory(
        os.environ.get(SCREENSHOTS_VARIABLE), tmp_path_factory.mktemp("screenshots")
    )
    directory.mkdir(parents=True, exist_ok=True)
    return directory


Shoot = Callable[[Page, str], Path]


@pytest.fixture
def shoot(screenshots: Path) -> Shoot:
    """``shoot(page, name)``: a full-page PNG ``name.png``, checked to be written."""

    def take(page: Page, name: str) -> Path:
        if page.locator("body").get_attribute("data-events"):
            # The header's live dot shows a connected page, not one still connecting.
            expect(page.locator("body")).to_have_attribute("data-live-state", "connected")
        path = screenshots / f"{name}.png"
        path.unlink(missing_ok=True)
        page.screenshot(path=str(path), full_page=True)
        with path.open("rb") as written:
            assert written.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE, f"{path} is not a PNG"
        assert path.stat().st_size > 10_000, f"{path} is too small to show a page"
        return path

    return take
