"""Ops story: Acme fails in Canada, Canadians get the premium processor, then a rollback."""

from __future__ import annotations

import asyncio

from shop import (
    Address,
    Country,
    PaymentProcessor,
    User,
    app,
    describe,
    describe_storage,
)

import feats

CUSTOMERS = [
    User(1, Address("US", "WA"), "Alice"),
    User(2, Address("CA", "QC"), "Bruno", language="fr"),
    User(3, Address("CA", "ON"), "Chloe"),
    User(4, Address("GB", "ENG"), "Dev"),
]


async def checkout(title: str) -> None:
    print(f"\n{title}")
    for user in CUSTOMERS:
        processor = await PaymentProcessor.create(user)
        evaluation = PaymentProcessor.explain(user)
        print(
            f"  {user.name:<6} ({user.address.country_code}): {processor.charge(40.0):<35}"
            f"  <- {evaluation.reason}"
        )


async def main() -> None:
    print(f"feats payments ops example on {describe_storage()}")
    async with app:
        admin = app.admin
        # PaymentProcessor.acme(user) is a type error, and at run time an AttributeError:
        # feats chooses the implementation.

        everyone_acme = feats.FeatureState(segments=[Country], rules={None: feats.Static("acme")})
        first = await admin.set_state(
            PaymentProcessor,
            everyone_acme,
            author="ops@shop",
            reason="Acme is our cheapest processor: use it everywhere",
        )
        await checkout(f"Normal operation (version {first}):")

        # Monitoring alerts: Acme charges fail in Canada. Route Canada to Premium.
        canada_premium = everyone_acme.with_rule(("CA",), feats.Static("premium"))
        incident = await admin.set_state(
            PaymentProcessor,
            canada_premium,
            author="oncall@shop",
            reason="INC-1042: Acme card charges failing in Canada",
            expected_version=first,
        )
        await checkout(f"Incident: Canada routed to Premium (version {incident}):")

        # Acme fixed it: go back to exactly what we had before the incident.
        fixed = await admin.rollback(
            PaymentProcessor,
            first,
            author="oncall@shop",
            reason="INC-1042 resolved by Acme: roll back",
        )
        await checkout(f"Rolled back to version {first} (as new version {fixed}):")

        print("\nHistory of PaymentProcessor (this run):")
        changes = await admin.history(PaymentProcessor)
        start = [change.version for change in changes].index(first)
        for change in changes[start:]:
            print(f"  {change.version}  {change.author:<12} {change.reason}")
            print(f"  {'':<{len(change.version)}}  rules: {describe(change.state)}")
        current = await admin.get_state(PaymentProcessor)
        print(f"\nCurrent state equals version {first}'s: {current == everyone_acme}")


if __name__ == "__main__":
    asyncio.run(main())
