"""feats.web's public names are pinned; importing it imports none of the web extra."""

from __future__ import annotations

import subprocess
import sys

import feats.web

WEB_ALL = [
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


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert feats.web.__all__ == WEB_ALL
    for name in WEB_ALL:
        assert getattr(feats.web, name) is not None
    assert set(WEB_ALL) <= set(dir(feats.web))


def test_importing_feats_and_the_cli_imports_no_web_package() -> None:
    code = (
        "import sys, feats, feats.web, feats._cli\n"
        "web = ('starlette', 'jinja2', 'itsdangerous', 'uvicorn')\n"
        "loaded = [m for m in web if m in sys.modules]\n"
        "print(loaded)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "import feats.web\n"
        "try:\n"
        "    feats.web.create_app\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "pip install 'feats[web]'" in result.stdout
