"""The web admin: ``feats.web.create_app(storage, ...)`` to mount, or ``feats web`` to run.

Needs the ``web`` extra (``pip install 'feats[web]'``). Importing ``feats.web`` alone
imports none of it, so the ``feats`` command can offer ``feats web`` without it; the
names below load on first use and say which extra is missing if it is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import AuthHook as AuthHook
    from ._app import create_app as create_app
    from ._auth import ROLES as ROLES
    from ._auth import LoginThrottle as LoginThrottle
    from ._auth import Principal as Principal
    from ._auth import Role as Role
    from ._auth import Users as Users
    from ._auth import hash_password as hash_password
    from ._auth import verify_password as verify_password

__all__ = [
    "ROLES",
    "AuthHook",
    "LoginThrottle",
    "Principal",
    "Role",
    "Users",
    "create_app",
    "hash_password",
    "verify_password",
]

_HOMES = {
    "AuthHook": "._app",
    "create_app": "._app",
    "ROLES": "._auth",
    "LoginThrottle": "._auth",
    "Principal": "._auth",
    "Role": "._auth",
    "Users": "._auth",
    "hash_password": "._auth",
    "verify_password": "._auth",
}

WEB_PACKAGES = frozenset({"starlette", "jinja2", "itsdangerous", "multipart", "python_multipart"})


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'feats.web' has no attribute {name!r}")
    try:
        module = importlib.import_module(home, __name__)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in WEB_PACKAGES:
            raise
        raise ImportError(
            f"feats.web needs the 'web' extra: pip install 'feats[web]' (missing: {error.name})"
        ) from error
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
