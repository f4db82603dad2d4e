"""OpenFeature: the shop's features evaluated through an OpenFeature client, answered by
FeatsProvider from the App's snapshot (flag key = feature, variant = implementation)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from shop import Address, User, app, describe_storage

import feats
from feats.openfeature import FeatsProvider


def shop_inputs(feature: str, context: EvaluationContext) -> Sequence[Any]:
    """The User a shop feature's implementations take, built from an evaluation context:
    what lets the provider return AllowedPriorities' lists and ImageProcessing's own value."""
    country = str(context.attributes.get("Country", ""))
    return (User(int(context.targeting_key or 0), Address(country, "")),)


def context(user_id: int | None, **attributes: str) -> EvaluationContext:
    return EvaluationContext(None if user_id is None else str(user_id), dict(attributes))


async def main() -> None:
    print(f"feats OpenFeature provider example on {describe_storage()}")
    # Made inside the running loop: initialize() starts the App on it, from the SDK's thread.
    provider = FeatsProvider(app, inputs=shop_inputs)
    await asyncio.to_thread(api.set_provider_and_wait, provider)
    client = api.get_client()
    print(f"provider {client.provider.get_metadata().name}: {client.get_provider_status().value}")

    # Each run tells the same story: from no configuration (a change that changes nothing
    # writes nothing, and announces nothing).
    before = await app.admin.reset("PaymentProcessor", author="example", reason="start afresh")
    changed: list[EventDetails] = []
    announced = threading.Event()

    def on_change(details: EventDetails) -> None:
        if details.metadata.get("version") != before:  # the reset's own, if it comes late
            changed.append(details)
            announced.set()

    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, on_change)
    version = await app.admin.set_state(
        "PaymentProcessor",
        feats.FeatureState(
            segments=["Country"],
            rules={("CA",): feats.Static("premium"), None: feats.Static("acme")},
        ),
        author="example",
        reason="Acme fails in Canada",
    )
    await asyncio.to_thread(announced.wait, 5)
    event = changed[0]
    print(
        f"PROVIDER_CONFIGURATION_CHANGED: {event.flags_changed} at {event.metadata['version']}"
        f" ({'the version set_state returned' if event.metadata['version'] == version else '?'})"
    )

    print("\nPaymentProcessor, a string flag: the implementation's name")
    for name, user_id, country in (("Alice", 1, "US"), ("Bruno", 2, "CA")):
        details = await client.get_string_details_async(
            "PaymentProcessor", "acme", context(user_id, Country=country)
        )
        print(f"  {name} ({country}): {details.value}, {details.reason}")
    details = await client.get_string_details_async("PaymentProcessor", "acme", context(3))
    print(
        f"  no Country: {details.value}, {details.reason}: {details.flag_metadata['explanation']}"
    )

    print("\nAllowedPriorities, an object flag: what the implementation returns (an experiment)")
    await app.admin.set_state(
        "AllowedPriorities",
        feats.FeatureState(
            rules={
                None: feats.Experiment(
                    "UserId", {"no_priority": 34, "two_priorities": 33, "three_priorities": 33}
                )
            }
        ),
        author="example",
        reason="Do priorities help?",
    )
    written = app.status.exposures_written
    for user_id in range(1, 5):
        priorities = await client.get_object_details_async(
            "AllowedPriorities", [], context(user_id)
        )
        print(f"  user {user_id}: {priorities.variant:<16} {priorities.value}, {priorities.reason}")
    for _ in range(500):  # the writer flushes every 50 ms; wait for it, at most 5 s
        if app.status.exposures_written - written >= 4:
            break
        await asyncio.sleep(0.01)
    print(f"  exposures recorded by these 4 evaluations: {app.status.exposures_written - written}")

    enabled = await client.get_boolean_details_async("ImageProcessing", False, context(7))
    print(f"\nImageProcessing, a boolean: {enabled.value} ({enabled.variant}, {enabled.reason})")

    print("\nErrors answer the caller's default, never raise:")
    missing = client.get_string_details("Checkout", "classic")
    print(f"  Checkout: {missing.value!r}, {missing.error_code}: {missing.error_message}")
    mismatch = client.get_integer_details("PaymentProcessor", 0, context(2, Country="CA"))
    print(f"  PaymentProcessor as an integer: {mismatch.value}, {mismatch.error_code}")

    await asyncio.to_thread(api.shutdown)  # shuts the provider down: it closes the App
    print(f"\nafter api.shutdown(): the App is {app.status.state}")


if __name__ == "__main__":
    asyncio.run(main())
