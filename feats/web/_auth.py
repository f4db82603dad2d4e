"""Who may use the web admin: principals and roles, the users file (scrypt), login throttling."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ROLES",
    "LoginThrottle",
    "Principal",
    "Role",
    "Users",
    "hash_password",
    "verify_password",
]

Role = Literal["viewer", "editor"]
ROLES: tuple[Role, ...] = ("viewer", "editor")

# scrypt at N=2**15, r=8: 32 MiB and about 0.1 s per hash, OWASP's floor for scrypt.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
"""Longer passwords are refused before hashing: no one types them, an attacker might."""


@dataclass(frozen=True)
class Principal:
    """Someone using the admin: ``name`` is recorded as the author of their changes."""

    name: str
    role: Role

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"a principal needs a non-empty name, got {self.name!r}")
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")

    @property
    def can_edit(self) -> bool:
        return self.role == "editor"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * r * n, dklen=length
    )


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$key`` (base64) with a random salt: what the users file stores."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValueError(
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters"
        )
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` result; False for anything malformed."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
        cost, block, parallel = int(n), int(r), int(p)
        # Bounded: a doctored file must not make a login allocate gigabytes.
        if not (2 <= cost <= 2**17 and 1 <= block <= 16 and 1 <= parallel <= 4):
            return False
        if len(expected) != KEY_BYTES or len(salt_bytes) < SALT_BYTES:
            return False
        found = _scrypt(password, salt_bytes, cost, block, parallel, KEY_BYTES)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


_DUMMY_HASH: str | None = None


def _burn_time(password: str) -> None:
    """Spend what a real check costs, so a login for an unknown name takes as long."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password(secrets.token_urlsafe(12))
    verify_password(password, _DUMMY_HASH)


@dataclass(frozen=True)
class _Account:
    role: Role
    hash: str


class Users:
    """The standalone admin's users: a JSON file of names, roles and scrypt hashes.

    ``{"users": {"alice": {"role": "editor", "hash": "scrypt$..."}}}``. It is read again
    when it changes on disk, so adding or removing someone needs no restart.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, _Account] = {}
        self._read()

    def _read(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            raise ValueError(
                f"users file {self.path} does not exist; create it with "
                f"`feats web add-user {self.path} NAME --role editor`"
            ) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._accounts = _parse_users(self.path.read_text(encoding="utf-8"), str(self.path))
        self._stamp = stamp

    def _fresh(self) -> dict[str, _Account]:
        # A file being rewritten or broken: keep the last good accounts.
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._read()
        return self._accounts

    def names(self) -> list[str]:
        return sorted(self._fresh())

    def get(self, name: str) -> Principal | None:
        """The principal ``name`` is now (its role may have changed); None if removed."""
        account = self._fresh().get(name)
        return None if account is None else Principal(name, account.role)

    def check(self, name: str, password: str) -> Principal | None:
        """The principal if ``password`` is ``name``'s, else None (same cost either way)."""
        account = self._fresh().get(name)
        if account is None:
            _burn_time(password)
            return None
        if not verify_password(password, account.hash):
            return None
        return Principal(name, account.role)

    @staticmethod
    def add(path: str | os.PathLike[str], name: str, password: str, role: Role) -> bool:
        """Add ``name`` to the file (created if missing) or replace it; True if it was new."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        _check_name(name)
        target = Path(path)
        accounts = (
            _parse_users(target.read_text(encoding="utf-8"), str(target)) if target.exists() else {}
        )
        new = name not in accounts
        accounts[name] = _Account(role, hash_password(password))
        _write_users(target, accounts)
        return new

    @staticmethod
    def remove(path: str | os.PathLike[str], name: str) -> bool:
        """Remove ``name`` from the file; False if it was not there."""
        target = Path(path)
        accounts = _parse_users(target.read_text(encoding="utf-8"), str(target))
        if accounts.pop(name, None) is None:
            return False
        _write_users(target, accounts)
        return True


def _check_name(name: str) -> None:
    if not name or len(name) > 100 or not name.isprintable() or name != name.strip():
        raise ValueError(
            f"a user name has 1 to 100 printable characters without surrounding spaces, "
            f"got {name!r}"
        )


def _parse_users(text: str, where: str) -> dict[str, _Account]:
    try:
        document: Any = json.loads(text)
    except ValueError as error:
        raise ValueError(f"users file {where} is not JSON: {error}") from error
    users = document.get("users") if isinstance(document, dict) else None
    if not isinstance(users, dict):
        raise ValueError(f'users file {where}: expected {{"users": {{NAME: ...}}}}')
    accounts: dict[str, _Account] = {}
    for name, entry in users.items():
        if (
            not isinstance(entry, dict)
            or entry.get("role") not in ROLES
            or not isinstance(entry.get("hash"), str)
        ):
            raise ValueError(
                f"users file {where}: user {name!r} needs a role ({', '.join(ROLES)}) and a hash"
            )
        accounts[name] = _Account(entry["role"], entry["hash"])
    return accounts


def _write_users(target: Path, accounts: dict[str, _Account]) -> None:
    """Write atomically (a reader never sees half a file), readable by the owner only."""
    document = {
        "users": {
            name: {"role": account.role, "hash": account.hash}
            for name, account in sorted(accounts.items())
        }
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".users-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class LoginThrottle:
    """Slows password guessing: after ``limit`` failures for one name or one client within
    ``window`` seconds, that name or client must wait, twice as long after each further one.
    """

    def __init__(
        self,
        *,
        limit: int = 5,
        window: float = 900.0,
        lockout: float = 30.0,
        max_lockout: float = 900.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_lockout = max_lockout
        self.max_keys = max_keys
        self.clock = clock
        self._failures: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    @staticmethod
    def keys(name: str, client: str | None) -> tuple[str, ...]:
        found = [f"user:{name.strip().lower()}"]
        if client:
            found.append(f"client:{client}")
        return tuple(found)

    def wait(self, keys: tuple[str, ...]) -> float:
        """Seconds before these keys may try again (0: now)."""
        now = self.clock()
        return max([0.0, *(self._locked_until.get(key, 0.0) - now for key in keys)])

    def failed(self, keys: tuple[str, ...]) -> None:
        now = self.clock()
        if len(self._failures) > self.max_keys:
            self._prune(now)
        for key in keys:
            recent = [t for t in self._failures.get(key, []) if now - t < self.window]
            recent.append(now)
            self._failures[key] = recent[-(self.limit * 4) :]
            over = len(recent) - self.limit
            if over >= 0:
                pause = min(self.max_lockout, self.lockout * 2.0**over)
                self._locked_until[key] = now + pause

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            if key.startswith("user:"):
                self._failures.pop(key, None)
                self._locked_until.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            if all(now - t >= self.window for t in self._failures[key]):
                del self._failures[key]
        for key in [k for k, until in self._locked_until.items() if until <= now]:
            del self._locked_until[key]
        # Still too many (an attacker cycling names): forget the oldest half.
        if len(self._failures) > self.max_keys:
            for key in sorted(self._failures, key=lambda k: self._failures[k][-1])[
                : len(self._failures) // 2
            ]:
                del self._failures[key]
