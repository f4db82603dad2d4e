"""feats.contrib.django with the real Django (settings configured here, Django's test
client), on the real Redis: the AppConfig, the middleware, FEATS, ``manage.py feats``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import django
import pytest
import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

import feats
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.redis

SHOP = Path(__file__).resolve().parents[2] / "examples" / "frameworks" / "django_shop"
NAMESPACE = f"test-django-{uuid.uuid4().hex[:8]}"
"""Django's settings are once per process: one namespace for this module."""


@dataclass(frozen=True)
class Customer:
    country: str


def route_ca(implementation: str) -> feats.FeatureState:
    return feats.FeatureState(segments=["Country"], rules={("CA",): feats.Static(implementation)})


_writer: list[feats.App] = []


def writer() -> feats.App:
    """Another App on the same namespace, as the ops side would have."""
    if not _writer:
        other = feats.App(storage=feats.RedisStorage(redis.Redis.from_url(REDIS_URL), NAMESPACE))

        class Country:
            def customer(self, customer: Customer) -> str:
                return customer.country

        other.segment(Country)

        class PaymentProcessor(feats.FeatureClass[[Customer], str], app=other):
            @other.default
            def acme(self, customer: Customer) -> str:
                return "acme"

            def premium(self, customer: Customer) -> str:
                return "premium"

        _writer.append(other)
    return _writer[0]


def app() -> feats.App:
    from feats.contrib.django import feats_app

    return feats_app()


@pytest.fixture(scope="module", autouse=True)
def django_settings(redis_url: str) -> Iterator[None]:
    sys.path.insert(0, str(SHOP))
    if not settings.configured:
        settings.configure(
            SECRET_KEY="test",
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF="tests.contrib._django_urls",
            INSTALLED_APPS=["feats.contrib.django"],
            MIDDLEWARE=["feats.contrib.django.SnapshotMiddleware"],
            DATABASES={},
            USE_TZ=True,
            FEATS={"APP": "shop_site.flags:app", "REDIS_URL": redis_url, "NAMESPACE": NAMESPACE},
        )
        django.setup()
    yield
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"feats:{{{NAMESPACE}}}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def test_the_app_starts_at_the_first_request_not_before() -> None:
    assert app().status.state == "initializing"  # django.setup() connected nothing
    response = Client().get("/checkout/1", {"country": "CA"})
    assert response.status_code == 200
    assert response.json() == {
        "processor": "acme",
        "again": "acme",
        "why": "no configuration: the default answers",
    }
    assert app().status.live
    from feats.contrib.django import ensure_started

    assert ensure_started() is app()  # once per process


def test_a_change_reaches_the_view() -> None:
    version = writer().admin.set_state(
        "PaymentProcessor", route_ca("premium"), author="t", reason="Acme fails in Canada"
    )
    Client().get("/checkout/2")  # started
    app().wait_for_version(version, timeout=10)
    body = Client().get("/checkout/1", {"country": "CA"}).json()
    assert body == {
        "processor": "premium",
        "again": "premium",
        "why": "rule Country=CA: static premium",
    }


def test_one_configuration_per_request() -> None:
    version = writer().admin.set_state("PaymentProcessor", route_ca("acme"), author="t", reason="")
    Client().get("/checkout/2")
    app().wait_for_version(version, timeout=10)
    assert Client().get("/twice", {"then": "premium"}).json() == {
        "first": "acme",
        "second": "acme",
    }
    # Without the middleware the same request sees both configurations.
    with override_settings(MIDDLEWARE=[]):
        assert Client().get("/twice", {"then": "acme"}).json() == {
            "first": "premium",
            "second": "acme",
        }


def test_a_wrong_feats_setting_is_improperly_configured() -> None:
    from feats.contrib.django import feats_app, feats_settings

    with (
        override_settings(FEATS={"APP": "shop_site.flags"}),
        pytest.raises(ImproperlyConfigured, match="module:name"),
    ):
        feats_settings()
    with (
        override_settings(FEATS={"APP": "x:y", "REDIS": "redis://"}),
        pytest.raises(ImproperlyConfigured, match=r"unknown key.*REDIS"),
    ):
        feats_settings()
    with (
        override_settings(FEATS={"APP": "shop_site.flags:User"}),
        pytest.raises(ImproperlyConfigured, match=r"not a feats\.App"),
    ):
        feats_app()


def manage(*arguments: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FEATS_")}
    environment.update(FEATS_REDIS_URL=redis_url, FEATS_NAMESPACE=NAMESPACE)
    return subprocess.run(
        [sys.executable, "manage.py", "feats", *arguments],
        cwd=SHOP,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_manage_py_feats_is_the_feats_cli_on_the_settings(redis_url: str) -> None:
    writer().admin.set_state("PaymentProcessor", route_ca("premium"), author="t", reason="")
    shown = manage("show", "PaymentProcessor", "--json", redis_url=redis_url)
    assert shown.returncode == 0, shown.stderr
    assert "premium" in json.dumps(json.loads(shown.stdout))
    helped = manage("--help", redis_url=redis_url)
    assert helped.returncode == 0
    assert "manage.py feats" in helped.stdout
    unknown = manage("show", "Nope", redis_url=redis_url)
    assert unknown.returncode == 3, unknown.stdout + unknown.stderr  # the CLI's exit code


def test_a_forked_serving_process_follows_on(redis_url: str) -> None:
    """gunicorn --preload forks after Django is set up: a child starts (or keeps) its own."""
    Client().get("/checkout/1")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: serve one request after a change, report, leave
        try:
            version = writer().admin.set_state(
                "PaymentProcessor", route_ca("acme"), author="t", reason="child"
            )
            app().wait_for_version(version, timeout=10)
            body = Client().get("/checkout/1", {"country": "CA"}).json()
            os.write(write, body["processor"].encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 100) == b"acme"
    os.close(read)
    assert status == 0


def test_the_autoreloaders_watcher_is_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """START="ready" starts the App when Django is ready, but not in runserver's watcher."""
    from feats.contrib.django._settings import autoreloader_watcher

    monkeypatch.delenv("RUN_MAIN", raising=False)
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver"])
    assert autoreloader_watcher()
    monkeypatch.setenv("RUN_MAIN", "true")  # the child that serves
    assert not autoreloader_watcher()
    monkeypatch.delenv("RUN_MAIN")
    monkeypatch.setattr(sys, "argv", ["manage.py", "runserver", "--noreload"])
    assert not autoreloader_watcher()
    monkeypatch.setattr(sys, "argv", ["gunicorn", "shop_site.wsgi"])
    assert not autoreloader_watcher()
