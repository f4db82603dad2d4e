"""``feats web``: run the web admin standalone, and manage its users file.

Only click is imported here, so ``feats`` can list this command without the ``web`` extra;
running it without the extra says which one to install.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import secrets
import sys
from typing import Any, cast

import click

__all__ = ["web"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 6


def _fail(message: str, code: int, *hints: str) -> None:
    click.echo(f"error: {message}", err=True)
    for hint in hints:
        click.echo(f"  {hint}", err=True)
    raise SystemExit(code)


def _require_extra() -> Any:
    """The web modules, or a one-line error naming the extra to install."""
    try:
        import uvicorn

        import feats.web
        from feats.web import _app  # noqa: F401  (fails here, not mid-start, without the extra)
    except ImportError as error:
        missing = getattr(error, "name", None) or str(error)
        _fail(
            f"feats web needs the 'web' extra, which is not installed (missing: {missing})",
            EXIT_ERROR,
            "install it: pip install 'feats[web]'",
        )
    return feats.web, uvicorn


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


def _secret_key(path: str | None) -> tuple[str, bool]:
    """From --secret-key-file or $FEATS_WEB_SECRET_KEY; else a random one (sessions end
    when the process does)."""
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                key = file.read().strip()
        except OSError as error:
            _fail(f"--secret-key-file {path}: {error.strerror}", EXIT_USAGE)
        if len(key) < 16:
            _fail(f"--secret-key-file {path}: the key needs at least 16 characters", EXIT_USAGE)
        return key, True
    key = os.environ.get("FEATS_WEB_SECRET_KEY", "")
    if key:
        if len(key) < 16:
            _fail("$FEATS_WEB_SECRET_KEY needs at least 16 characters", EXIT_USAGE)
        return key, True
    return secrets.token_urlsafe(32), False


@click.group(
    "web",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    help="Redis URL (default: $FEATS_REDIS_URL, else redis://localhost:6379/0).",
)
@click.option(
    "--namespace",
    "-n",
    metavar="NAME",
    help="Namespace (default: $FEATS_NAMESPACE, else 'default').",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--users",
    "users_file",
    metavar="FILE",
    help="The users file (see `feats web add-user`): who may sign in, and their roles.",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="No sign-in: everyone is an editor. Only on a loopback --host; pages say so.",
)
@click.option(
    "--secret-key-file",
    metavar="FILE",
    help="Key that signs session cookies (default: $FEATS_WEB_SECRET_KEY, else random: "
    "sessions end with the process).",
)
@click.option(
    "--root-path",
    default="",
    metavar="PATH",
    help="The path prefix a reverse proxy serves the admin under, e.g. /feats.",
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Trust X-Forwarded-Proto/For from --forwarded-allow-ips (behind https proxies).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    metavar="IPS",
    help="Proxies whose X-Forwarded-* headers are trusted.",
)
@click.pass_context
def web(
    ctx: click.Context,
    redis_url: str | None,
    namespace: str | None,
    host: str,
    port: int,
    users_file: str | None,
    no_auth: bool,
    secret_key_file: str | None,
    root_path: str,
    proxy_headers: bool,
    forwarded_allow_ips: str,
) -> None:
    """The web admin of a namespace: overview, feature pages, changes with preview,
    history and rollback, explain, exposures, drift; pages follow changes live.

    Needs only the Redis URL, like the rest of `feats`: declarations come from the catalog
    the Apps publish. Sign-in uses --users FILE; --no-auth is for a loopback host only.

    \b
    Example:
      feats web add-user users.json alice --role editor
      feats web --redis redis://127.0.0.1:6379/0 -n shop --users users.json
    """
    if ctx.invoked_subcommand is not None:
        return
    if users_file and no_auth:
        _fail("give --users FILE or --no-auth, not both", EXIT_USAGE)
    if not users_file and not no_auth:
        _fail(
            "feats web needs to know who may sign in: give --users FILE",
            EXIT_USAGE,
            "create the file: feats web add-user users.json NAME --role editor",
            "or, on your own machine only: feats web --no-auth (listens on 127.0.0.1)",
        )
    if no_auth and not is_loopback(host):
        _fail(
            f"--no-auth is only allowed on a loopback --host (127.0.0.1, ::1), not {host!r}: "
            "anyone who reaches it could change configuration",
            EXIT_USAGE,
        )
    if not 0 < port < 65536:
        _fail(f"--port {port}: not a port", EXIT_USAGE)
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        _fail(f"--root-path {root_path!r}: start with / and do not end with one", EXIT_USAGE)
    feats_web, uvicorn = _require_extra()

    import redis
    import redis.asyncio

    import feats.aio

    url = redis_url or os.environ.get("FEATS_REDIS_URL") or DEFAULT_REDIS_URL
    name = namespace or os.environ.get("FEATS_NAMESPACE") or "default"
    try:
        probe = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0)
        probe.ping()
        probe.close()
    except ValueError as error:
        _fail(f"--redis {url!r}: {error}", EXIT_USAGE)
    except (redis.RedisError, OSError) as error:
        _fail(
            f"cannot reach Redis at {_redact(url)}: {error}",
            EXIT_UNREACHABLE,
            "check --redis or FEATS_REDIS_URL, and that redis-server is running",
        )
    try:
        storage = feats.aio.RedisStorage(
            redis.asyncio.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=10.0),
            namespace=name,
        )
    except ValueError as error:
        _fail(f"--namespace {name!r}: {error}", EXIT_USAGE)
    key, persistent = _secret_key(secret_key_file)
    options: dict[str, Any] = {}
    if users_file:
        try:
            options["users"] = feats_web.Users(users_file)
        except ValueError as error:
            _fail(str(error), EXIT_USAGE)
    else:
        who = os.environ.get("FEATS_AUTHOR") or _os_user()
        options["anonymous"] = feats_web.Principal(who, "editor")
    app = feats_web.create_app(storage, secret_key=key, **options)
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}{root_path}/"
    click.echo(
        f"feats web: namespace {name!r} at {_redact(url)}, on {where}"
        + (" (no sign-in: loopback only)" if no_auth else ""),
        err=True,
    )
    if not persistent:
        click.echo(
            "note: random session key; sessions end when this process does "
            "(set FEATS_WEB_SECRET_KEY or --secret-key-file to keep them)",
            err=True,
        )
    sys.stderr.flush()
    uvicorn.run(
        app,
        host=host,
        port=port,
        root_path=root_path,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="warning",
        timeout_graceful_shutdown=2,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


def _read_password() -> str:
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


@web.command("add-user")
@click.argument("users_file", metavar="FILE")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "editor"]),
    required=True,
    help="viewer: reads only; editor: also changes configuration.",
)
def add_user(users_file: str, name: str, role: str) -> None:
    """Add NAME to the users FILE (created if missing), or change their password and role.

    The password is read from standard input when it is not a terminal (one line), else
    asked for twice. The file keeps a salted scrypt hash, never the password.
    """
    from ._auth import MIN_PASSWORD_LENGTH, Role, Users

    password = _read_password()
    if len(password) < MIN_PASSWORD_LENGTH:
        _fail(f"the password needs at least {MIN_PASSWORD_LENGTH} characters", EXIT_USAGE)
    try:
        new = Users.add(users_file, name, password, cast(Role, role))
    except (ValueError, OSError) as error:
        _fail(str(error), EXIT_USAGE)
    click.echo(f"{'Added' if new else 'Updated'} {name} ({role}) in {users_file}", err=True)


@web.command("remove-user")
@click.argument("users_file", metavar="FILE")
@click.argument("name")
def remove_user(users_file: str, name: str) -> None:
    """Remove NAME from the users FILE (their sessions end at their next request)."""
    from ._auth import Users

    try:
        removed = Users.remove(users_file, name)
    except (ValueError, OSError) as error:
        _fail(str(error), EXIT_USAGE)
    if not removed:
        _fail(f"{name} is not in {users_file}", 3)
    click.echo(f"Removed {name} from {users_file}", err=True)
