"""What every command shares: settings, the connection, --app, name resolution, exit codes."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rich.console import Console

from .._app import App
from .._catalog import Catalog
from .._changes import default_author
from .._declarations import Registry
from .._errors import FeatsError, StorageError
from .._layout import DEFAULT_NAMESPACE, Keys
from .._state import Change
from .._storage import RedisStorage
from .._verbs import resolve_feature
from ._exit import Exit

__all__ = ["DEFAULT_REDIS_URL", "CliError", "Exit", "Session", "Settings", "console"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
CONNECT_TIMEOUT = 1.0
"""An unreachable Redis is reported after this long, not after the OS gives up."""


class CliError(Exception):
    """A failure the CLI reports in one message, with an exit code and optional hints."""

    def __init__(self, message: str, code: Exit, *hints: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.hints = hints
        self.kind = kind or code.name.lower()


def console(*, stderr: bool = False) -> Console:
    """A console on the current stdout/stderr: wide when captured, plain when not a TTY."""
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    width = None if terminal else int(os.environ.get("COLUMNS", "120"))
    return Console(file=stream, width=width, highlight=False, soft_wrap=not terminal)


@dataclass
class Settings:
    """Options given on the group or on the command (the command's win)."""

    redis_url: str | None = None
    namespace: str | None = None
    app_path: str | None = None
    json: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.redis_url or os.environ.get("FEATS_REDIS_URL") or DEFAULT_REDIS_URL


def import_app(path: str) -> Any:
    """``module:attr`` (``attr`` may be dotted) to a feats App, importing from the cwd too."""
    module_name, colon, attribute = path.partition(":")
    if not colon or not module_name or not attribute:
        raise CliError(
            f"--app {path!r}: expected module:attribute, e.g. myapp.feats:app", Exit.USAGE
        )
    try:
        target: Any = import_from_cwd(module_name)
    except FeatsError as error:
        raise CliError(
            f"--app {path}: its declarations are invalid: {error}", Exit.USAGE
        ) from error
    except Exception as error:
        raise CliError(
            f"--app {path}: cannot import {module_name}: {type(error).__name__}: {error}",
            Exit.USAGE,
        ) from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(
                f"--app {path}: {module_name} has no attribute {attribute}", Exit.USAGE
            ) from None
    if not isinstance(getattr(target, "registry", None), Registry):
        raise CliError(
            f"--app {path}: {type(target).__name__} is not a feats App "
            "(feats.App or feats.aio.App)",
            Exit.USAGE,
        )
    return target


def import_from_cwd(module_name: str) -> Any:
    """``importlib.import_module``, also finding a top-level package in the working
    directory (where ``feats --app`` is run from) without adding it to ``sys.path``."""
    top = module_name.partition(".")[0]
    if top not in sys.modules and importlib.util.find_spec(top) is None:
        spec = importlib.machinery.PathFinder.find_spec(top, [os.getcwd()])
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[top] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[top]
                raise
    return importlib.import_module(module_name)


def connect(url: str) -> redis.Redis:
    """A client that fails fast: a short connect timeout and no retries."""
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=10.0,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as error:
        raise CliError(f"--redis {url!r}: {error}", Exit.USAGE) from error
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        client.close()
        raise CliError(
            f"cannot reach Redis at {redact(url)}: {error}",
            Exit.UNREACHABLE,
            "check --redis or FEATS_REDIS_URL, and that redis-server is running",
        ) from error
    return client


def redact(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user + ':' if user else ''}***@{host}"


class Session:
    """A command's view of one namespace: a sync App that is never started, and its admin."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.imported = import_app(settings.app_path) if settings.app_path else None
        namespace = settings.namespace or os.environ.get("FEATS_NAMESPACE")
        if namespace is None and self.imported is not None:
            namespace = getattr(getattr(self.imported, "storage", None), "namespace", None)
        self.namespace: str = namespace or DEFAULT_NAMESPACE
        try:
            Keys(self.namespace)
        except ValueError as error:
            raise CliError(f"--namespace: {error}", Exit.USAGE) from error
        self.client = connect(settings.url)
        self.storage = RedisStorage(self.client, self.namespace)
        self.app = App(storage=self.storage)
        if self.imported is not None:
            registry: Registry = self.imported.registry
            for declaration in registry:
                self.app.registry.add_feature(declaration)
            for segment in registry.segments.values():
                self.app.registry.add_segment(segment)
        self.admin = self.app.admin

    def close(self) -> None:
        self.client.close()

    @cached_property
    def catalog(self) -> Catalog:
        return self.admin.catalog()

    @cached_property
    def declarations(self) -> Registry:
        return self.admin.declarations()

    @cached_property
    def configurations(self) -> dict[str, Change]:
        return self.admin.configurations()

    def feature(self, given: str) -> str:
        """The feature an operator means: declared (by --app or the catalog) or configured."""
        own = self.app.registry
        if given in own.features:
            return given
        if not self.declarations.features and not self.configurations:
            raise CliError(
                f"unknown feature {given!r}: nothing is declared or configured in namespace "
                f"{self.namespace!r}",
                Exit.NOT_FOUND,
                "no App has published a catalog here yet: start your App (it publishes its "
                "declarations when it starts), or pass --app module:attr",
                kind="not_found",
            )
        return resolve_feature(given, self.declarations, self.configurations)

    def author(self, given: str | None) -> str:
        return given or os.environ.get("FEATS_AUTHOR") or default_author()


def storage_error(error: StorageError | redis.RedisError | OSError, url: str) -> CliError:
    return CliError(
        f"Redis at {redact(url)} failed: {error}",
        Exit.UNREACHABLE,
        "check --redis or FEATS_REDIS_URL, and that redis-server is running",
    )
