"""What every command shares: settings, the connection, --app, name resolution, exit codes."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import time
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
from .._stored import Loaded, Problem
from .._verbs import configured_changes, resolve_feature, suggest, unreadable_records
from ._exit import Exit
from ._redact import redact

__all__ = ["DEFAULT_REDIS_URL", "CliError", "Exit", "Session", "Settings", "console"]

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
NAMESPACE_SCAN_KEYS = 100_000
NAMESPACE_SCAN_SECONDS = 2.0
"""Looking for the namespaces a Redis holds stops after this many keys or seconds."""
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
        raise CliError(f"--redis {redact(url)}: {error}", Exit.USAGE) from error
    try:
        client.ping()
    except (redis.RedisError, OSError) as error:
        client.close()
        raise storage_error(error, url, connecting=True) from error
    return client


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
    def loaded(self) -> Loaded:
        """The namespace's current records, read once per command."""
        return self.storage.load()

    @cached_property
    def configurations(self) -> dict[str, Change]:
        return configured_changes(self.loaded)

    @cached_property
    def unreadable(self) -> dict[str, Problem]:
        """Configured features whose current record cannot be read, and why."""
        return unreadable_records(self.loaded)

    def version_of(self, feature: str) -> str | None:
        """The current version of ``feature``, readable or not."""
        found = self.loaded.records.get(feature)
        return None if found is None else found[0]

    def feature(self, given: str) -> str:
        """The feature an operator means: declared (by --app or the catalog) or configured."""
        own = self.app.registry
        if given in own.features:
            return given
        configured = [*self.configurations, *self.unreadable]
        if not self.declarations.features and not configured:
            raise CliError(
                f"unknown feature {given!r}: nothing is declared or configured in namespace "
                f"{self.namespace!r}",
                Exit.NOT_FOUND,
                *self.namespace_hints(),
                "no App has published a catalog here yet: start your App (it publishes its "
                "declarations when it starts), or pass --app module:attr",
                kind="not_found",
            )
        return resolve_feature(given, self.declarations, configured)

    def is_empty(self) -> bool:
        """Nothing of this namespace is in Redis: no configuration, catalog or exposures."""
        keys = Keys(self.namespace)
        names = (keys.log, keys.states, keys.versions, keys.epoch, keys.catalog, keys.exposures)
        return not self.client.exists(*names)

    def namespaces(self) -> list[str]:
        """The feats namespaces this Redis holds (a bounded scan of its keys)."""
        found: set[str] = set()
        deadline = time.monotonic() + NAMESPACE_SCAN_SECONDS
        for index, key in enumerate(self.client.scan_iter(match="feats:{*}:*", count=1000)):
            text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            name = text[len("feats:{") :].partition("}:")[0]
            if name:
                found.add(name)
            if index >= NAMESPACE_SCAN_KEYS or time.monotonic() > deadline:
                break
        return sorted(found)

    def namespace_hints(self) -> list[str]:
        """When this namespace holds nothing: the ones that exist, the closest first.

        Best effort: a Redis user that may not run EXISTS or SCAN (an ACL) gets no hints.
        """
        try:
            if not self.is_empty():
                return []
            others = [name for name in self.namespaces() if name != self.namespace]
        except redis.ResponseError:
            return []
        if not others:
            return []
        close = suggest(self.namespace, others)
        listing = ", ".join(others[:20]) + (", ..." if len(others) > 20 else "")
        first = f"did you mean -n {close}? " if close else ""
        return [f"{first}namespaces in this Redis: {listing}"]

    def note_if_empty(self) -> None:
        """A namespace that holds nothing while others exist is most likely a typo: say so
        on stderr (the answer itself, "nothing here", stays what it is)."""
        for hint in self.namespace_hints():
            console(stderr=True).print(
                f"note: namespace {self.namespace!r} holds nothing in this Redis; {hint}"
            )

    def author(self, given: str | None) -> str:
        return given or os.environ.get("FEATS_AUTHOR") or default_author()


def storage_error(
    error: StorageError | redis.RedisError | OSError, url: str, *, connecting: bool = False
) -> CliError:
    """Redis that answered and refused (a permission, a key of the wrong type, a bad
    password) is an error of its own, exit 1; only Redis that could not be reached is 6."""
    where = redact(url)
    if isinstance(error, redis.AuthenticationError):
        return CliError(
            f"Redis at {where} refused the credentials: {error}",
            Exit.ERROR,
            "check the user and password in --redis or FEATS_REDIS_URL",
            kind="refused",
        )
    refused = isinstance(error, redis.ResponseError) or (
        isinstance(error, StorageError) and error.reachable
    )
    if refused:
        text = str(error)
        hints = []
        cause = error if isinstance(error, redis.RedisError) else error.__cause__
        if isinstance(cause, redis.exceptions.NoPermissionError) or "NOPERM" in text:
            text = f"NOPERM: {text}" if "NOPERM" not in text else text
            hints.append(
                "the Redis user lacks a permission this command needs: the feats command "
                "writes configuration, which the README's feats-admin ACL user may do"
            )
        elif "WRONGTYPE" in text:
            hints.append(
                "a key of this namespace holds the wrong type of value: something other than "
                "feats wrote it"
            )
        return CliError(f"Redis at {where} refused: {text}", Exit.ERROR, *hints, kind="refused")
    verb = "cannot reach Redis at" if connecting else "Redis at"
    return CliError(
        f"{verb} {where}: {error}" if connecting else f"{verb} {where} failed: {error}",
        Exit.UNREACHABLE,
        "check --redis or FEATS_REDIS_URL, and that redis-server is running",
        kind="unreachable",
    )
