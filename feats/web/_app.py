"""The web admin as a Starlette app: pages, the change flow (form, preview, compare-and-set)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import feats
import feats.aio

from . import _views as views
from ._auth import LoginThrottle, Principal, Users
from ._forms import KINDS, EditForm, FormError
from ._live import ChangeHub, sse
from ._security import SessionMiddleware, csrf_matches, session_of

__all__ = ["AuthHook", "create_app"]

logger = logging.getLogger("feats.web")

AuthHook: TypeAlias = Callable[[Request], "Principal | Awaitable[Principal | None] | None"]
"""Who is asking: a Principal, or None (not signed in). Sync hooks run in a thread."""

HERE = Path(__file__).parent
KEEPALIVE_SECONDS = 15.0


class _Web:
    """The state behind every route: the never-started App, templates, auth and live hub."""

    def __init__(
        self,
        storage: feats.aio.Storage,
        *,
        auth: AuthHook | None,
        users: Users | None,
        anonymous: Principal | None,
        title: str,
        login_url: str | None,
        throttle: LoginThrottle,
        live: bool,
    ) -> None:
        self.storage = storage
        self.app = feats.aio.App(storage=storage)
        self.admin = self.app.admin
        self.auth = auth
        self.users = users
        self.anonymous = anonymous
        self.title = title
        self.login_url = login_url
        self.throttle = throttle
        self.live = live
        self.hub = ChangeHub(self.admin)
        self.router: Any = None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            relative_time=views.relative_time,
            absolute_time=views.absolute_time,
            doc_text=views.doc_text,
            is_live=views.is_live,
            live_meaning=views.live_meaning,
        )
        self.static_version = _static_version()

    # -- plumbing ----------------------------------------------------------------------

    def url(
        self, request: Request, name: str, query: Mapping[str, str] | None = None, **path: str
    ) -> str:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        found = root + str(self.router.url_path_for(name, **path))
        if query:
            found += "?" + urlencode(list(query.items()))
        return found

    def static(self, request: Request, name: str) -> str:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return f"{root}/static/{name}?v={self.static_version}"

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        principal: Principal | None,
        status: int = 200,
        live: str | None = None,
        feature: str | None = None,
        version: str | None = None,
    ) -> HTMLResponse:
        session = session_of(request.scope)

        def url(name: str, query: Mapping[str, str] | None = None, **path: str) -> str:
            return self.url(request, name, query, **path)

        page = {
            "title": self.title,
            "namespace": self.storage.namespace,
            "principal": principal,
            "csrf": session.csrf,
            "flash": session.take_flash(),
            "no_auth": self.anonymous is not None,
            "url": url,
            "static": lambda name: self.static(request, name),
            "events_url": url("events") if (self.live and principal and live) else "",
            "state_url": url("state", {"feature": feature} if feature else None),
            "live": live or "",
            "live_feature": feature or "",
            "live_version": version or "",
            "request_path": request.url.path,
        }
        html = self.env.get_template(template).render({**page, **context})
        return HTMLResponse(html, status_code=status)

    async def principal(self, request: Request) -> Principal | None:
        if self.anonymous is not None:
            return self.anonymous
        if self.auth is not None:
            if inspect.iscoroutinefunction(self.auth):
                found: Any = await self.auth(request)
            else:
                found = await run_in_threadpool(self.auth, request)
                if inspect.isawaitable(found):
                    found = await found
            if found is not None and not isinstance(found, Principal):
                raise TypeError(
                    f"the auth hook must return a feats.web.Principal or None, got {found!r}"
                )
            return found
        assert self.users is not None
        name = session_of(request.scope).user
        return None if name is None else self.users.get(name)

    def unauthenticated(self, request: Request) -> Response:
        wants_html = "text/html" in request.headers.get("accept", "")
        if request.method == "GET" and wants_html and (self.users is not None or self.login_url):
            here = _route_path(request)
            if self.users is not None:
                target = self.url(request, "login", {"next": here} if here != "/" else None)
            else:
                assert self.login_url is not None
                target = self.login_url
            return RedirectResponse(target, status_code=303)
        return self.error(
            request,
            None,
            401,
            "Not signed in",
            "Sign in to use the feats admin: nothing was changed.",
        )

    def error(
        self, request: Request, principal: Principal | None, status: int, title: str, message: str
    ) -> HTMLResponse:
        return self.render(
            request,
            "error.html",
            {"heading": title, "message": message, "status": status},
            principal=principal,
            status=status,
        )

    def page(
        self,
        handler: Callable[[Request, Principal, FormData | None], Awaitable[Response]],
        *,
        edits: bool = False,
    ) -> Callable[[Request], Awaitable[Response]]:
        """Authenticate, check the CSRF token of a POST and the role of an edit, then run
        ``handler``; configuration that cannot be read is reported, never a traceback."""

        async def endpoint(request: Request) -> Response:
            principal = await self.principal(request)
            if principal is None:
                return self.unauthenticated(request)
            form: FormData | None = None
            if request.method == "POST":
                form = await request.form(max_files=0, max_fields=300)
                if request.headers.get("sec-fetch-site") == "cross-site" or not csrf_matches(
                    session_of(request.scope), _text(form, "csrf")
                ):
                    return self.error(
                        request,
                        principal,
                        403,
                        "Forbidden",
                        "This form is missing its security token or it expired (CSRF check). "
                        "Nothing was changed; reload the page and try again.",
                    )
                if edits and not principal.can_edit:
                    return self.error(
                        request,
                        principal,
                        403,
                        "Forbidden",
                        f"{principal.name} is a viewer: viewers can look, not change. "
                        "Nothing was changed.",
                    )
            # No cap on pages read at once: they read through the host's own client, whose
            # pool grows as needed, and the live watch holds one connection of it.
            try:
                return await handler(request, principal, form)
            except feats.StorageError as error:
                return self.error(
                    request,
                    principal,
                    503,
                    "Redis is unavailable",
                    f"Reading or writing configuration failed: {error}. Nothing was changed.",
                )

        return endpoint

    # -- reading pages -----------------------------------------------------------------

    async def overview(
        self, request: Request, principal: Principal, _: FormData | None
    ) -> Response:
        configured = await self.admin.configurations()
        catalog = await self.admin.catalog()
        registry = catalog.registry()
        drift = views.drift_by_feature(await self.admin.drift())
        rows = []
        for name in sorted(set(registry.features) | set(configured)):
            declaration = registry.features.get(name)
            change = configured.get(name)
            rows.append(
                {
                    "name": name,
                    "declaration": declaration,
                    "kind": _kind_text(declaration),
                    "summary": views.summary(
                        None if change is None else change.state,
                        None if declaration is None else declaration.default,
                    ),
                    "change": change,
                    "drift": [d for d in drift.get(name, []) if d.kind != "unconfigured"],
                    "deploys": views.deploys(catalog, name),
                    "splits": _split_kinds(None if change is None else change.state),
                }
            )
        return self.render(
            request,
            "overview.html",
            {"rows": rows, "catalog": catalog},
            principal=principal,
            live="refresh",
            version=await self.admin.head(),
        )

    async def _feature(
        self, name: str
    ) -> tuple[str, feats.Registry, feats.Change | None, feats.Catalog]:
        catalog = await self.admin.catalog()
        registry = catalog.registry()
        configured = await self.admin.configurations()
        if name not in registry.features and name not in configured:
            raise _NotFound(name)
        return name, registry, configured.get(name), catalog

    async def feature(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        name, registry, change, catalog = await self._feature(request.path_params["feature"])
        declaration = registry.features.get(name)
        implementations = list(declaration.implementations) if declaration else []
        state = None if change is None else change.state
        drift = [
            d for d in await self.admin.drift() if d.feature == name and d.kind != "unconfigured"
        ]
        return self.render(
            request,
            "feature.html",
            {
                "name": name,
                "declaration": declaration,
                "kind": _kind_text(declaration),
                "segments": views.segment_options(registry, name),
                "state": state,
                "change": change,
                "rows": views.rule_rows(state, implementations),
                "summary": views.summary(state, declaration.default if declaration else None),
                "deploys": views.deploys(catalog, name),
                "drift": drift,
                "has_experiment": any(
                    isinstance(s, feats.Experiment) for s in (state.rules.values() if state else ())
                ),
                "version": "" if change is None else change.version,
            },
            principal=principal,
            live="refresh",
            feature=name,
            version="" if change is None else change.version,
        )

    async def history(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        name, registry, change, _catalog = await self._feature(request.path_params["feature"])
        entries = await self.admin.history_entries(name)
        return self.render(
            request,
            "history.html",
            {
                "name": name,
                "entries": list(reversed(entries)),
                "current": "" if change is None else change.version,
                "declared": name in registry.features,
            },
            principal=principal,
            live="refresh",
            feature=name,
            version="" if change is None else change.version,
        )

    async def diff(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        name, _registry, change, _catalog = await self._feature(request.path_params["feature"])
        before = request.query_params.get("before", "")
        after = request.query_params.get("after", "")
        entries = await self.admin.history_entries(name)
        error = None
        lines: list[feats.DiffLine] = []
        try:
            lines = await self.admin.diff(name, before or None, after or None)
        except feats.FeatsError as problem:
            error = str(problem)
        return self.render(
            request,
            "diff.html",
            {
                "name": name,
                "before": before,
                "after": after,
                "lines": lines,
                "error": error,
                "versions": [e.change for e in reversed(entries)],
            },
            principal=principal,
            status=400 if error else 200,
            live="notify",
            feature=name,
            version="" if change is None else change.version,
        )

    async def explain(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        name, registry, change, _catalog = await self._feature(request.path_params["feature"])
        values = {
            key[len("where.") :]: value.strip()
            for key, value in request.query_params.items()
            if key.startswith("where.") and value.strip()
        }
        declaration = registry.features.get(name)
        implementations = list(declaration.implementations) if declaration else []
        evaluation = error = bar = None
        if values or request.query_params.get("explain"):
            try:
                evaluation = await self.admin.explain(name, values)
            except feats.FeatsError as problem:
                error = str(problem)
            else:
                bar = views.bar_of(evaluation.selector, implementations, marker=evaluation.bucket)
        return self.render(
            request,
            "explain.html",
            {
                "name": name,
                "segments": views.segment_options(registry, name),
                "values": values,
                "evaluation": evaluation,
                "explain_bar": bar,
                "error": error,
            },
            principal=principal,
            status=400 if error else 200,
            live="notify",
            feature=name,
            version="" if change is None else change.version,
        )

    async def exposures(
        self, request: Request, principal: Principal, _: FormData | None
    ) -> Response:
        name, registry, change, _catalog = await self._feature(request.path_params["feature"])
        by_value = request.query_params.get("by_value") == "1"
        report = await self.admin.exposures(name, by_value=by_value)
        declaration = registry.features.get(name)
        order = {
            impl: i % views.COLORS
            for i, impl in enumerate(declaration.implementations if declaration else [])
        }
        return self.render(
            request,
            "exposures.html",
            {
                "name": name,
                "report": report,
                "by_value": by_value,
                "colors": order,
                "state": None if change is None else change.state,
            },
            principal=principal,
            live="refresh",
            feature=name,
            version="" if change is None else change.version,
        )

    async def drift(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        items = await self.admin.drift()
        catalog = await self.admin.catalog()
        return self.render(
            request,
            "drift.html",
            {"items": items, "catalog": catalog},
            principal=principal,
            live="refresh",
        )

    async def catalog(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        catalog = await self.admin.catalog()
        return self.render(
            request,
            "catalog.html",
            {"catalog": catalog},
            principal=principal,
        )

    async def state(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        """Versions for pages that poll (no EventSource, or a proxy that buffers it)."""
        feature = request.query_params.get("feature")
        configured = await self.admin.configurations()
        if feature:
            change = configured.get(feature)
            return JSONResponse({"version": "" if change is None else change.version})
        return JSONResponse({"version": await self.admin.head()})

    # -- changing ----------------------------------------------------------------------

    async def editor(self, request: Request, principal: Principal, _: FormData | None) -> Response:
        kind = request.path_params["kind"]
        if kind not in ("route", "rollout", "experiment", "stop"):
            return self.error(request, principal, 404, "Not found", f"There is no {kind!r} editor.")
        if not principal.can_edit:
            return self.error(
                request,
                principal,
                403,
                "Forbidden",
                f"{principal.name} is a viewer: viewers can look, not change.",
            )
        form = EditForm.from_fields(request.query_params.multi_items(), kind=kind)
        return await self._editor(request, principal, form, None)

    async def _editor(
        self, request: Request, principal: Principal, form: EditForm, error: str | None
    ) -> Response:
        name, registry, change, _catalog = await self._feature(request.path_params["feature"])
        declaration = registry.features.get(name)
        if declaration is None:
            return self.error(
                request,
                principal,
                400,
                f"No App declares {name}",
                "Changes are checked against what the Apps declare: this feature can only "
                "be reset.",
            )
        state = None if change is None else change.state
        version = "" if change is None else change.version
        if not form.expected_version and error is None:
            form.expected_version = version
        segments = views.segment_options(registry, name)
        if form.kind in ("rollout", "experiment") and not form.by:
            unbounded = [s for s, _doc, options in segments if options is None]
            form.by = unbounded[0] if unbounded else (segments[0][0] if segments else "")
        # A rule being edited keeps its order (the script appends what else is filled in);
        # a new split is written in the order its weights are filled in.
        weight_order = ",".join(form.weights)
        if form.kind in ("rollout", "experiment") and not form.weights:
            form.weights = {
                impl: ("100" if impl == declaration.default else "0")
                for impl in declaration.implementations
            }
        weight_rows = []
        if form.kind in ("rollout", "experiment"):
            # A rule's own order first (its weights read the same afterwards), then the rest.
            for impl in declaration.implementations:
                form.weights.setdefault(impl, "0")
            colors = {impl: i % views.COLORS for i, impl in enumerate(declaration.implementations)}
            weight_rows = [
                (declaration.implementations[impl], colors[impl], value)
                for impl, value in form.weights.items()
                if impl in declaration.implementations
            ]
        return self.render(
            request,
            "edit.html",
            {
                "name": name,
                "form": form,
                "declaration": declaration,
                "segments": segments,
                "state": state,
                "rows": views.rule_rows(state, list(declaration.implementations)),
                "error": error,
                "weight_rows": weight_rows,
                "weight_order": weight_order,
            },
            principal=principal,
            status=400 if error else 200,
            live="notify",
            feature=name,
            version=version,
        )

    async def _history_states(self, name: str) -> dict[str, feats.FeatureState | None]:
        return {change.version: change.state for change in await self.admin.history(name)}

    async def _edit_of(self, name: str, form: EditForm) -> feats.Edit:
        history = await self._history_states(name) if form.kind == "rollback" else None
        return form.edit(history)

    async def preview(
        self, request: Request, principal: Principal, data: FormData | None
    ) -> Response:
        assert data is not None
        form = EditForm.from_fields(_items(data))
        return await self._preview(request, principal, form, None)

    async def _preview(
        self, request: Request, principal: Principal, form: EditForm, error: str | None
    ) -> Response:
        name, registry, _change, _catalog = await self._feature(request.path_params["feature"])
        if form.kind not in KINDS:
            return self.error(
                request,
                principal,
                400,
                "Unknown change",
                f"There is no change of kind {form.kind!r}.",
            )
        try:
            edit = await self._edit_of(name, form)
            plan = await self.admin.preview(name, edit)
        except (FormError, feats.FeatsError) as problem:
            return await self._back(request, principal, form, str(problem))
        if form.expected_version != (plan.version or ""):
            return await self._conflict(request, principal, name, form, edit)
        declaration = registry.features.get(name)
        implementations = list(declaration.implementations) if declaration else []
        return self.render(
            request,
            "preview.html",
            {
                "name": name,
                "form": form,
                "edit": edit,
                "plan": plan,
                "rows_after": views.rule_rows(plan.after, implementations),
                "summary_after": views.summary(
                    plan.after, declaration.default if declaration else None
                ),
                "error": error,
                "back": self._back_url(request, name, form),
            },
            principal=principal,
            status=400 if error else 200,
            live="notify",
            feature=name,
            version=plan.version or "",
        )

    def _back_url(self, request: Request, name: str, form: EditForm) -> str:
        if form.kind in ("route", "rollout", "experiment", "stop"):
            return self.url(request, "editor", form.query(), feature=name, kind=form.kind)
        if form.kind == "rollback":
            return self.url(request, "history", feature=name)
        return self.url(request, "feature", feature=name)

    async def _back(
        self, request: Request, principal: Principal, form: EditForm, error: str
    ) -> Response:
        """The form again with what is wrong; buttons without a form go to their page."""
        if form.kind in ("route", "rollout", "experiment", "stop"):
            return await self._editor(request, principal, form, error)
        return self.error(
            request, principal, 400, "This change cannot be made", f"{error}. Nothing was changed."
        )

    async def apply(
        self, request: Request, principal: Principal, data: FormData | None
    ) -> Response:
        assert data is not None
        name, _registry, _change, _catalog = await self._feature(request.path_params["feature"])
        form = EditForm.from_fields(_items(data))
        try:
            reason = form.check_reason()
        except FormError as problem:
            return await self._preview(request, principal, form, str(problem))
        try:
            edit = await self._edit_of(name, form)
            version = await self.admin.change(
                name,
                edit,
                author=principal.name,
                reason=reason,
                expected_version=form.expected_version,
            )
        except feats.ConflictError:
            return await self._conflict(request, principal, name, form, edit)
        except (FormError, feats.FeatsError) as problem:
            if isinstance(problem, feats.StorageError):
                raise
            return await self._back(request, principal, form, str(problem))
        logger.info(
            "feats.web: %s changed %s to version %s: %s", principal.name, name, version, reason
        )
        session_of(request.scope).flash(f"{name} is now at version {version}: {edit.describe()}")
        return RedirectResponse(self.url(request, "feature", feature=name), status_code=303)

    async def _conflict(
        self, request: Request, principal: Principal, name: str, form: EditForm, edit: feats.Edit
    ) -> Response:
        """Both sides: what was written since the page was rendered, and what this change
        would do now. Nothing is written."""
        entries = await self.admin.history_entries(name)
        base = views.version_key(form.expected_version)
        theirs = [e for e in entries if views.version_key(e.change.version) > base]
        current = entries[-1].change.version if entries else ""
        mine: list[feats.DiffLine] = []
        mine_error = None
        try:
            mine = list((await self.admin.preview(name, await self._edit_of(name, form))).diff)
        except (FormError, feats.FeatsError) as problem:
            if isinstance(problem, feats.StorageError):
                raise
            mine_error = str(problem)
        retry = EditForm.from_fields(form.hidden_fields())
        retry.expected_version = current
        retry.reason = form.reason
        return self.render(
            request,
            "conflict.html",
            {
                "name": name,
                "form": form,
                "retry": retry,
                "edit": edit,
                "theirs": list(reversed(theirs)),
                "current": current,
                "mine": mine,
                "mine_error": mine_error,
            },
            principal=principal,
            status=409,
            feature=name,
            version=current,
        )

    async def plan_json(
        self, request: Request, principal: Principal, _: FormData | None
    ) -> Response:
        """What a form would change, for the live figure beside the weights: the diff of
        ``Admin.preview``, with its "moves X% of these users" notes."""
        name = request.path_params["feature"]
        form = EditForm.from_fields(request.query_params.multi_items())
        try:
            plan = await self.admin.preview(name, await self._edit_of(name, form))
        except (FormError, feats.FeatsError) as problem:
            if isinstance(problem, feats.StorageError):
                raise
            return JSONResponse({"ok": False, "error": str(problem)})
        return JSONResponse(
            {
                "ok": True,
                "version": plan.version or "",
                "stale": (plan.version or "") != form.expected_version,
                "changed": plan.changed,
                "diff": [line.as_dict() for line in plan.diff],
            }
        )

    # -- live --------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        principal = await self.principal(request)
        if principal is None:
            return self.unauthenticated(request)
        if not self.live:
            return self.error(request, principal, 404, "Not found", "Live updates are off.")

        async def stream() -> Any:
            async with self.hub.subscribe() as queue:
                await self.hub.wait_ready(10.0)
                yield sse("ready", {"namespace": self.storage.namespace})
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    yield sse("problem" if "error" in event else "change", event)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    # -- signing in --------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if self.users is None:
            return self.error(
                request, None, 404, "Not found", "Sign-in is handled by the host application."
            )
        session = session_of(request.scope)
        next_path = _safe_next(request.query_params.get("next", "/"))
        if request.method == "GET":
            return self._login_page(request, next_path, None, "", 200)
        form = await request.form(max_files=0, max_fields=20)
        next_path = _safe_next(_text(form, "next") or "/")
        name = _text(form, "name").strip()
        password = _text(form, "password")
        if request.headers.get("sec-fetch-site") == "cross-site" or not csrf_matches(
            session, _text(form, "csrf")
        ):
            return self._login_page(
                request, next_path, "The form expired: please sign in again.", name, 403
            )
        client = request.client.host if request.client else None
        keys = self.throttle.keys(name, client)
        wait = self.throttle.wait(keys)
        if wait > 0:
            return self._login_page(
                request,
                next_path,
                f"Too many failed sign-ins: try again in {int(wait) + 1} seconds.",
                name,
                429,
                {"retry-after": str(int(wait) + 1)},
            )
        found = await run_in_threadpool(self.users.check, name, password) if name else None
        if found is None:
            self.throttle.failed(keys)
            return self._login_page(request, next_path, "Wrong name or password.", name, 401)
        self.throttle.succeeded(keys)
        session.sign_in(found.name)
        logger.info("feats.web: %s signed in (%s)", found.name, found.role)
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return RedirectResponse(root + next_path, status_code=303)

    def _login_page(
        self,
        request: Request,
        next_path: str,
        error: str | None,
        name: str,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        response = self.render(
            request,
            "login.html",
            {"error": error, "next": next_path, "name": name},
            principal=None,
            status=status,
        )
        response.headers.update(headers or {})
        return response

    async def logout(self, request: Request) -> Response:
        form = await request.form(max_files=0, max_fields=20)
        session = session_of(request.scope)
        if not csrf_matches(session, _text(form, "csrf")):
            return self.error(
                request,
                None,
                403,
                "Forbidden",
                "This form is missing its security token (CSRF check).",
            )
        session.sign_out()
        target = "login" if self.users is not None else "overview"
        return RedirectResponse(self.url(request, target), status_code=303)


class _NotFound(Exception):
    def __init__(self, feature: str) -> None:
        super().__init__(feature)
        self.feature = feature


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _items(form: FormData) -> list[tuple[str, str]]:
    return [(key, value) for key, value in form.multi_items() if isinstance(value, str)]


def _route_path(request: Request) -> str:
    root = str(request.scope.get("root_path", ""))
    path = request.url.path
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    if request.url.query:
        path += "?" + request.url.query
    return path


def _safe_next(path: str) -> str:
    """Only a path inside the admin: never another site (no open redirect)."""
    if (
        not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or any(c < " " for c in path)
    ):
        return "/"
    return path


def _kind_text(declaration: feats.FeatureDeclaration | None) -> str:
    if declaration is None:
        return "undeclared"
    if declaration.boolean:
        return "boolean"
    return f"{len(declaration.implementations)} implementations"


def _split_kinds(state: feats.FeatureState | None) -> list[str]:
    if state is None:
        return []
    kinds = {views.kind_of(selector) for selector in state.rules.values()}
    return [kind for kind in ("experiment", "rollout") if kind in kinds]


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted((HERE / "static").iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def create_app(
    storage: feats.aio.Storage,
    *,
    auth: AuthHook | None = None,
    users: Users | str | os.PathLike[str] | None = None,
    secret_key: str | bytes,
    anonymous: Principal | None = None,
    title: str = "feats",
    login_url: str | None = None,
    session_max_age: int = 12 * 3600,
    throttle: LoginThrottle | None = None,
    live: bool = True,
) -> Starlette:
    """The web admin of ``storage``'s namespace, as an ASGI app to run or mount anywhere.

    Exactly one way to know who is asking: ``auth`` (a hook returning a Principal from
    the request, for hosts with their own users; ``login_url`` is where it signs people
    in), ``users`` (a users file: the admin's own sign-in page), or ``anonymous`` (everyone
    is that principal, for a loopback-only admin; pages say so). ``secret_key`` signs the
    session cookie. Needs no lifespan: mounted apps' lifespans do not run.
    """
    given = [option for option in (auth, users, anonymous) if option is not None]
    if len(given) != 1:
        raise ValueError(
            "create_app needs exactly one of auth= (a hook returning a feats.web.Principal), "
            "users= (a users file, see `feats web add-user`) or anonymous= (no sign-in); "
            f"got {len(given)}"
        )
    key = secret_key.encode() if isinstance(secret_key, str) else secret_key
    if len(key) < 16:
        raise ValueError("secret_key must have at least 16 bytes (e.g. secrets.token_urlsafe(32))")
    if users is not None and not isinstance(users, Users):
        users = Users(users)
    web = _Web(
        storage,
        auth=auth,
        users=users,
        anonymous=anonymous,
        title=title,
        login_url=login_url,
        throttle=throttle or LoginThrottle(),
        live=live,
    )
    read = web.page
    routes = [
        Route("/", read(web.overview), name="overview"),
        Route("/login", web.login, methods=["GET", "POST"], name="login"),
        Route("/logout", web.logout, methods=["POST"], name="logout"),
        Route("/drift", read(web.drift), name="drift"),
        Route("/catalog", read(web.catalog), name="catalog"),
        Route("/events", web.events, name="events"),
        Route("/state.json", read(web.state), name="state"),
        Route("/features/{feature}", read(web.feature), name="feature"),
        Route("/features/{feature}/history", read(web.history), name="history"),
        Route("/features/{feature}/diff", read(web.diff), name="diff"),
        Route("/features/{feature}/explain", read(web.explain), name="explain"),
        Route("/features/{feature}/exposures", read(web.exposures), name="exposures"),
        Route("/features/{feature}/plan.json", read(web.plan_json), name="plan"),
        Route("/features/{feature}/edit/{kind}", read(web.editor), name="editor"),
        Route(
            "/features/{feature}/preview",
            read(web.preview, edits=True),
            methods=["POST"],
            name="preview",
        ),
        Route(
            "/features/{feature}/apply", read(web.apply, edits=True), methods=["POST"], name="apply"
        ),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def not_found(request: Request, error: Exception) -> Response:
        principal = await web.principal(request)
        if principal is None:
            return web.unauthenticated(request)
        if isinstance(error, _NotFound):
            message = (
                f"No App declares a feature {error.feature!r} and none is configured in "
                f"namespace {storage.namespace!r}."
            )
        else:
            message = "There is no such page."
        return web.error(request, principal, 404, "Not found", message)

    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SessionMiddleware, secret_key=key, max_age=session_max_age),
        ],
        exception_handlers={_NotFound: not_found, 404: not_found},
    )
    web.router = app.router
    app.state.feats = web
    return app
