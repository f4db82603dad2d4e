"""Passwords, the users file and login throttling, without a web server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import feats.web
from feats.web import LoginThrottle, Principal, Users


def test_hashes_are_salted_scrypt_and_verify() -> None:
    first = feats.web.hash_password("correct horse battery")
    second = feats.web.hash_password("correct horse battery")
    assert first.startswith("scrypt$32768$8$1$") and first != second
    assert feats.web.verify_password("correct horse battery", first)
    assert not feats.web.verify_password("correct horse batterY", first)
    for broken in ("", "scrypt$", "md5$x$y$z$a$b", "scrypt$99999999$8$1$AAAA$AAAA", first[:-4]):
        assert not feats.web.verify_password("correct horse battery", broken)
    with pytest.raises(ValueError, match="8 to 1024"):
        feats.web.hash_password("short")


def test_users_file_keeps_no_password_and_follows_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    assert Users.add(path, "alice", "correct horse battery", "editor") is True
    assert "correct horse" not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    users = Users(path)
    assert users.check("alice", "correct horse battery") == Principal("alice", "editor")
    assert users.check("alice", "wrong password") is None
    assert users.check("mallory", "correct horse battery") is None
    assert Users.add(path, "alice", "another password", "viewer") is False
    os.utime(path, ns=(1, 10**18))  # a new mtime whatever the clock's resolution
    assert users.get("alice") == Principal("alice", "viewer")
    assert Users.remove(path, "alice") and not Users.remove(path, "alice")
    os.utime(path, ns=(1, 2 * 10**18))
    assert users.get("alice") is None


def test_a_broken_users_file_is_refused_at_start_and_ignored_after(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    with pytest.raises(ValueError, match="does not exist"):
        Users(path)
    path.write_text(json.dumps({"users": {"bob": {"role": "admin", "hash": "x"}}}))
    with pytest.raises(ValueError, match="needs a role"):
        Users(path)
    Users.add(path.with_name("good.json"), "bob", "correct horse battery", "viewer")
    users = Users(path.with_name("good.json"))
    path.with_name("good.json").write_text("{not json")
    os.utime(path.with_name("good.json"), ns=(1, 10**18))
    assert users.get("bob") == Principal("bob", "viewer")  # the last good accounts


def test_principals_have_a_name_and_a_known_role() -> None:
    assert Principal("a", "editor").can_edit and not Principal("a", "viewer").can_edit
    with pytest.raises(ValueError):
        Principal("", "editor")
    with pytest.raises(ValueError):
        Principal("a", "admin")  # type: ignore[arg-type]  # the point of the test


def test_throttle_locks_a_name_and_a_client_and_backs_off() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=3, lockout=10, max_lockout=60, clock=lambda: now[0])
    keys = throttle.keys("Alice", "10.0.0.1")
    for _ in range(2):
        throttle.failed(keys)
        assert throttle.wait(keys) == 0
    throttle.failed(keys)
    assert throttle.wait(keys) == 10
    assert throttle.wait(throttle.keys("alice", "127.0.0.2")) == 10  # the name, anywhere
    assert throttle.wait(throttle.keys("bob", "10.0.0.1")) == 10  # the client, any name
    now[0] = 11
    throttle.failed(keys)
    assert throttle.wait(keys) == 20  # twice as long
    throttle.succeeded(keys)
    assert throttle.wait(throttle.keys("alice", None)) == 0
    many = LoginThrottle(max_keys=10, clock=lambda: now[0])
    for index in range(100):
        many.failed(many.keys(f"user{index}", None))
    assert len(many._failures) <= 11
