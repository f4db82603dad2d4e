"""Experiment story: a three-way AllowedPriorities experiment by UserId, with its exposures."""

from __future__ import annotations

import asyncio
from collections import Counter

from shop import AllowedPriorities, UserId, app, describe, describe_storage, read_exposures, users

import feats

ARMS = ("no_priority", "two_priorities", "three_priorities")
PEOPLE = users("US", 3_000)
WEB = PEOPLE[:1_200]  # open their TODO list in the browser: create()
MOBILE = PEOPLE[1_000:1_500]  # the app preselected, then showed it: used_implementation()


async def main() -> None:
    print(f"feats AllowedPriorities experiment example on {describe_storage()}")
    async with app:
        # From no configuration, so that this run's experiment is a version of its own
        # (writing the state a feature already has writes nothing).
        await app.admin.reset(AllowedPriorities, author="product@shop", reason="start afresh")
        experiment = feats.FeatureState(
            rules={None: feats.Experiment(UserId, {arm: 1 for arm in ARMS})}
        )
        version = await app.admin.set_state(
            AllowedPriorities,
            experiment,
            author="product@shop",
            reason="Do priorities make people finish more TODOs?",
        )
        print(f"Configured (version {version}): {describe(experiment)}")

        # A mobile client polls ahead for every user: no exposure is recorded for that.
        preselected = {user.id: AllowedPriorities.find_implementation(user) for user in PEOPLE}
        shares = Counter(preselected.values())
        print(f"\nfind_implementation for {len(PEOPLE):,} users (records nothing):")
        for arm in ARMS:
            print(f"  {arm:<17} {shares[arm]:>5,} users  {shares[arm] / len(PEOPLE):6.2%}")

        for user in WEB:
            priorities = await AllowedPriorities.create(user)
            assert AllowedPriorities.find_implementation(user) == preselected[user.id]
            assert len(priorities) == ARMS.index(preselected[user.id]) + (
                1 if preselected[user.id] != "no_priority" else 0
            )
        for user in MOBILE:
            await AllowedPriorities.used_implementation(preselected[user.id], user)
        sample = PEOPLE[0]
        print(f"\nUser {sample.id} sees {await AllowedPriorities.create(sample)}")
        print(f"  explain: {AllowedPriorities.explain(sample).reason}")
        calls = len(WEB) + len(MOBILE) + 1
        print(
            f"\n{len(WEB):,} create() calls on the web, {len(MOBILE):,} used_implementation() "
            f"calls from mobile, 1 more create() above: {calls:,} exposures expected"
        )
    # Leaving `async with` flushed the exposures that were still buffered.
    print(
        f"App status after close: {app.status.exposures_written:,} exposures written, "
        f"{app.status.exposures_dropped} dropped"
    )

    batches, exposures = await read_exposures(app.storage)
    mine = [item for item in exposures if item[0] == "AllowedPriorities" and item[3] == version]
    entries = f"{batches} stream entr{'y' if batches == 1 else 'ies'}"
    print(f"\nRead back from storage: {len(mine):,} exposures for this experiment ({entries})")
    counts = Counter(str(item[1]) for item in mine)
    exposed = {str(item[2]) for item in mine}
    for arm in ARMS:
        print(f"  {arm:<17} {counts[arm]:>5,} exposures")
    only_preselected = {str(user.id) for user in PEOPLE} - exposed
    print(
        f"Distinct users exposed: {len(exposed):,}; users only preselected, never exposed: "
        f"{len(only_preselected):,}"
    )
    assert len(mine) == calls, (len(mine), calls)
    assert all(preselected[int(str(item[2]))] == item[1] for item in mine)


if __name__ == "__main__":
    asyncio.run(main())
