"""``feats web``: refuses to start without a way to sign in, and manages the users file."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from feats._cli import cli
from feats.web import Principal, Users
from feats.web._cli import is_loopback

PASSWORD = "correct horse battery"


def run(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["web", *args], input=input)
    return result.exit_code, result.output


def test_without_users_or_no_auth_it_refuses_to_start(redis_url: str) -> None:
    code, output = run("--redis", redis_url)
    assert code == 2
    assert "give --users FILE" in output and "feats web add-user" in output


def test_no_auth_only_on_loopback(redis_url: str) -> None:
    code, output = run("--redis", redis_url, "--no-auth", "--host", "0.0.0.0")
    assert code == 2 and "only allowed on a loopback --host" in output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert (
        not is_loopback("0.0.0.0")
        and not is_loopback("192.0.2.1")
        and not is_loopback("example.com")
    )


def test_a_missing_users_file_and_an_unreachable_redis(tmp_path: Path, redis_url: str) -> None:
    code, output = run("--redis", redis_url, "--users", str(tmp_path / "none.json"))
    assert code == 2 and "does not exist" in output
    Users.add(tmp_path / "users.json", "alice", PASSWORD, "editor")
    code, output = run("--redis", "redis://127.0.0.1:1/0", "--users", str(tmp_path / "users.json"))
    assert code == 6 and "cannot reach Redis" in output


def test_add_user_reads_the_password_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    code, output = run("add-user", str(path), "alice", "--role", "editor", input=PASSWORD + "\n")
    assert code == 0 and "Added alice (editor)" in output
    code, output = run("add-user", str(path), "alice", "--role", "viewer", input=PASSWORD + "\n")
    assert code == 0 and "Updated alice (viewer)" in output
    assert PASSWORD not in path.read_text()
    assert json.loads(path.read_text())["users"]["alice"]["role"] == "viewer"
    assert Users(path).check("alice", PASSWORD) == Principal("alice", "viewer")
    code, output = run("add-user", str(path), "bob", "--role", "editor", input="short\n")
    assert code == 2 and "at least 8 characters" in output
    code, output = run("add-user", str(path), "bob", "--role", "admin", input=PASSWORD + "\n")
    assert code == 2 and "'admin' is not one of" in output
    code, output = run("remove-user", str(path), "alice")
    assert code == 0 and Users(path).get("alice") is None
    code, output = run("remove-user", str(path), "alice")
    assert code == 3


def test_without_the_extra_feats_web_names_it() -> None:
    code = (
        "import sys\n"
        "for name in ('starlette', 'uvicorn', 'jinja2'):\n"
        "    sys.modules[name] = None\n"
        "from feats._cli import main\n"
        "main(['web', '--no-auth'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert "pip install 'feats[web]'" in result.stderr
    assert "Traceback" not in result.stderr


class Terminal:
    """``feats web ...`` on a pseudo-terminal of its own (its controlling terminal, so the
    prompts read it as a person types), every read bounded by a deadline."""

    def __init__(self, *args: str, seconds: float = 30.0) -> None:
        self.deadline = time.monotonic() + seconds
        self.output = b""
        self.cursor = 0
        pid, self.fd = pty.fork()
        if pid == 0:  # the child: nothing but exec
            try:
                os.execv(sys.executable, [sys.executable, "-m", "feats", "web", *args])
            finally:
                os._exit(127)
        self.pid = pid

    def expect(self, text: str) -> None:
        """Read until ``text`` appears after what the last expect matched."""
        wanted = text.encode()
        while (found := self.output.find(wanted, self.cursor)) < 0:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} on the terminal; it shows {self.output!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the terminal closed before {text!r}: {self.output!r}")
                self.output += chunk
        self.cursor = found + len(wanted)

    def type(self, line: str) -> None:
        os.write(self.fd, line.encode() + b"\r")

    def exit_code(self) -> int:
        while time.monotonic() < self.deadline:
            with contextlib.suppress(OSError):
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if ready:
                    self.output += os.read(self.fd, 4096)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"feats web did not exit in time: {self.output!r}")


def test_add_user_on_a_terminal_asks_twice_without_echo(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    terminal = Terminal("add-user", str(path), "alice", "--role", "editor")
    terminal.expect("Password: ")
    terminal.type(PASSWORD)
    terminal.expect("Repeat for confirmation: ")
    terminal.type("a different one")
    terminal.expect("do not match")  # asked again, from the start
    terminal.expect("Password: ")
    terminal.type(PASSWORD)
    terminal.expect("Repeat for confirmation: ")
    terminal.type(PASSWORD)
    terminal.expect("Added alice (editor)")
    assert terminal.exit_code() == 0
    assert PASSWORD.encode() not in terminal.output  # never echoed
    assert b"a different one" not in terminal.output
    assert terminal.output.count(b"Password: ") == 2
    assert Users(path).check("alice", PASSWORD) == Principal("alice", "editor")
    assert PASSWORD not in path.read_text()


def test_add_user_on_a_terminal_refuses_a_short_password(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    terminal = Terminal("add-user", str(path), "bob", "--role", "viewer")
    terminal.expect("Password: ")
    terminal.type("short")
    terminal.expect("Repeat for confirmation: ")
    terminal.type("short")
    terminal.expect("at least 8 characters")
    assert terminal.exit_code() == 2
    assert not path.exists()
