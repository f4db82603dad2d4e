"""Rollout story: US users move to the Aperture processor, 5% then 25% then 100%."""

from __future__ import annotations

import asyncio

from shop import (
    Country,
    PaymentProcessor,
    User,
    UserId,
    app,
    describe,
    describe_storage,
    users,
)

import feats

PER_COUNTRY = 10_000
COUNTRIES = ("US", "CA", "GB")
STEPS = (5, 25, 100)


def population() -> dict[str, list[User]]:
    """10,000 users per country, ids consecutive across countries."""
    return {
        country: users(country, PER_COUNTRY, first_id=1 + index * PER_COUNTRY)
        for index, country in enumerate(COUNTRIES)
    }


async def main() -> None:
    print(f"feats payments rollout example on {describe_storage()}")
    people = population()
    async with app:
        admin = app.admin
        state = feats.FeatureState(segments=[Country], rules={None: feats.Static("acme")})
        await admin.set_state(
            PaymentProcessor, state, author="payments@shop", reason="start: Acme everywhere"
        )
        print(
            f"Share of {PER_COUNTRY:,} users per country who get Aperture "
            "(the rest get Acme), measured with find_implementation:"
        )
        header = "".join(f"{country + ' aperture':>14}" for country in COUNTRIES)
        print(f"  {'step':<9}{header}   had Aperture before, still have it")
        before: set[int] = set()
        for percent in STEPS:
            state = state.with_rule(
                ("US",), feats.Rollout(UserId, {"aperture": percent, "acme": 100 - percent})
            )
            await admin.set_state(
                PaymentProcessor,
                state,
                author="payments@shop",
                reason=f"roll Aperture out to {percent}% of US users",
            )
            cells = []
            aperture: set[int] = set()
            for country in COUNTRIES:
                got = {
                    user.id
                    for user in people[country]
                    if PaymentProcessor.find_implementation(user) == "aperture"
                }
                others = {PaymentProcessor.find_implementation(u) for u in people[country]}
                assert others <= {"aperture", "acme"}, others
                cells.append(f"{len(got) / PER_COUNTRY:>14.2%}")
                aperture |= got
            kept = f"{len(before & aperture):,} of {len(before):,}" if before else "-"
            print(f"  {f'US {percent}%':<9}{''.join(cells)}   {kept}")
            assert before <= aperture, "a user who had Aperture lost it"
            before = aperture

        sample = people["US"][0]
        processor = await PaymentProcessor.create(sample)
        print(f"\nUser {sample.id} (US) at 100%: {processor.charge(40.0)}")
        print(f"  explain: {PaymentProcessor.explain(sample).reason}")
        print(f"Configured: {describe(await admin.get_state(PaymentProcessor))}")
        print(
            "Every user who had Aperture kept it as the share grew: "
            "a higher weight only adds buckets."
        )


if __name__ == "__main__":
    asyncio.run(main())
