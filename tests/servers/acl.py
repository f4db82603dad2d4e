"""The README's least-privilege ACL lines, read from the README itself, so the fault and
CLI tests run on exactly what users are told to configure."""

from __future__ import annotations

from pathlib import Path

__all__ = ["admin_acl", "app_acl"]

_README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_line(user: str) -> str:
    for line in _README.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"user {user} "):
            return line
    raise LookupError(f"README.md has no ACL line for {user}")


def _acl(user: str, placeholder: str, namespace: str, password: str) -> str:
    line = _readme_line(user)
    assert f">{placeholder} " in line and "{shop}" in line, line
    return line.replace(f">{placeholder} ", f">{password} ").replace(
        "{shop}", "{" + namespace + "}"
    )


def app_acl(namespace: str, password: str) -> str:
    """The README's App user: read configuration and catalog, write exposures and catalog."""
    return _acl("feats-app", "APP_PASSWORD", namespace, password)


def admin_acl(namespace: str, password: str) -> str:
    """The README's admin user: everything under the namespace's prefix, nothing else."""
    return _acl("feats-admin", "ADMIN_PASSWORD", namespace, password)
