"""The checkout view: which processor a user gets, and why."""

from django.http import HttpRequest, JsonResponse

from .flags import PaymentProcessor, User


def checkout(request: HttpRequest, user_id: int) -> JsonResponse:
    user = User(user_id, request.GET.get("country", "US"))
    return JsonResponse(
        {
            "processor": PaymentProcessor.create(user),
            "again": PaymentProcessor.create(user),  # the same: one configuration per request
            "why": PaymentProcessor.explain(user).reason,
        }
    )
