"""A Django site with the web admin mounted the way the README shows, through a2wsgi.

``python -m tests.web._django_site REDIS_URL NAMESPACE DIRECTORY`` configures Django (its
SQLite database in DIRECTORY), creates the users ``alice`` (superuser: an editor of the
admin), ``victor`` (staff: a viewer) and ``mallory`` (not staff: not let in), serves
``application`` with wsgiref on a free loopback port, prints ``{"port": N}`` and serves
until its standard input closes. Its own process, because Django's settings are global.
"""

from __future__ import annotations

import json
import sys
import threading
from importlib import import_module
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

import redis.asyncio
from a2wsgi import ASGIMiddleware
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import feats.aio
import feats.web

PASSWORD = "correct horse battery"
SECRET_KEY = "django-test-secret-key-of-enough-length"


def home(request: Any) -> Any:
    return HttpResponse("the shop")


def sign_in(request: Any) -> Any:
    """The site's own sign-in (Django's admin would need templates): name and password."""
    from django.contrib.auth import authenticate, login

    user = authenticate(
        request, username=request.POST.get("username"), password=request.POST.get("password")
    )
    if user is None:
        return HttpResponse("wrong name or password", status=401)
    login(request, user)
    return HttpResponseRedirect(request.POST.get("next") or "/")


# ROOT_URLCONF is this module. The test site's sign-in skips Django's CSRF check; the
# admin's forms keep their own.
urlpatterns = [path("", home), path("login/", csrf_exempt(sign_in))]


# -- what the README shows (mysite/wsgi.py) --------------------------------------------


def staff(request: Any) -> feats.web.Principal | None:
    """A sync hook runs in a worker thread, so the ORM may be used."""
    from django.conf import settings
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore
    session = store(request.cookies.get(settings.SESSION_COOKIE_NAME))
    user: Any = get_user(cast(Any, SimpleNamespace(session=session)))  # Django's own checks
    if not (user.is_active and user.is_staff):
        return None
    role: feats.web.Role = "editor" if user.has_perm("feats.change_configuration") else "viewer"
    return feats.web.Principal(user.get_username(), role)


def application_for(storage: feats.aio.Storage) -> Any:
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    admin = feats.web.create_app(
        storage, auth=staff, secret_key=settings.SECRET_KEY, login_url="/login/"
    )
    wsgi_admin: Any = ASGIMiddleware(admin)  # type: ignore[arg-type]  # a2wsgi's ASGIApp type is narrower than Starlette's
    return DispatcherMiddleware(get_wsgi_application(), {"/feats": wsgi_admin})


# -- the test site around it -----------------------------------------------------------


def configure(directory: Path) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        DEBUG=False,
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "site.sqlite3"),
            }
        },
        # A fast hash: these passwords live for one test.
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.contrib.auth import get_user_model

    users: Any = get_user_model().objects
    users.create_superuser("alice", "alice@example.com", PASSWORD)
    users.create_user("victor", "victor@example.com", PASSWORD, is_staff=True)
    users.create_user("mallory", "mallory@example.com", PASSWORD)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(redis_url: str, namespace: str, directory: str) -> None:
    configure(Path(directory))
    storage = feats.aio.RedisStorage(redis.asyncio.Redis.from_url(redis_url), namespace)
    server = make_server("127.0.0.1", 0, application_for(storage), handler_class=_Quiet)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    sys.stdout.write(json.dumps({"port": server.server_port}) + "\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the test closes it
    server.shutdown()
    serving.join(timeout=10)


if __name__ == "__main__":
    main(*sys.argv[1:4])
