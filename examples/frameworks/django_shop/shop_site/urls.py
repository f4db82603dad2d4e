"""URLs of the example shop."""

from django.urls import path

from .views import checkout

urlpatterns = [path("checkout/<int:user_id>", checkout)]
