"""The URLs of tests/contrib/test_django.py: the example shop's, and a view that sees a
change in the middle of its request."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, URLResolver, include, path


def twice(request: HttpRequest) -> JsonResponse:
    """Two evaluations, with a change written by another process applied between them."""
    from shop_site.flags import PaymentProcessor, User

    from feats.contrib.django import feats_app
    from tests.contrib.test_django import route_ca, writer

    user = User(1, "CA")
    first = PaymentProcessor.create(user)
    version = writer().admin.set_state(
        "PaymentProcessor", route_ca(request.GET["then"]), author="t", reason="mid-request"
    )
    feats_app().wait_for_version(version, timeout=10)
    return JsonResponse({"first": first, "second": PaymentProcessor.create(user)})


urlpatterns: list[URLPattern | URLResolver] = [
    path("", include("shop_site.urls")),
    path("twice", twice),
]
