"""Bucketing: the pinned hash, minimal-reassignment allocation, and measured rollout shares."""

from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction
from itertools import pairwise
from math import floor

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

import feats
from feats._bucketing import Allocation, allocate, bucket_counts, derive_salt, shares
from tests.unit._models import Segments, declare_segments, payment_processor_class, user

USERS = 100_000

# -- golden vectors: these numbers must never change ---------------------------------------
# Changing the hash, its seeding or its encoding would move every user of every rollout and
# experiment already running. If one of these fails, the change is wrong, not the vector.

GOLDEN_BUCKETS = [
    (0x0, "", 3138),
    (0x0, "1", 33464),
    (0x0, "user-42", 92621),
    (0x1, "1", 64581),
    (0x2A, "42", 58374),
    (0xFFFF_FFFF_FFFF_FFFF, "US", 67056),
    (0x5EED, "12345", 28743),
    (0xDEAD_BEEF_CAFE_BABE, "alice@example.com", 41306),
    (0x75B_CD15, "Zoë", 98220),
    (0x7, "日本", 70983),
    (0x8000_0000_0000_0000, "0", 35585),
]

GOLDEN_SALTS = [
    (("PaymentProcessor", "None", "UserId"), 0x4781_B847_9059_FDF5),
    (("PaymentProcessor", "('US',)", "UserId"), 0x767F_FEBB_0C22_EDCC),
    (("ConfirmText", "None", "UserId"), 0x23BC_7DC4_5BA7_2FB1),
]


@pytest.mark.parametrize(("salt", "value", "expected"), GOLDEN_BUCKETS)
def test_golden_buckets(salt: int, value: str, expected: int) -> None:
    assert feats.bucket(salt, value) == expected


@pytest.mark.parametrize(("salt", "value", "expected"), GOLDEN_BUCKETS)
def test_bucket_is_xxh3_64_of_utf8_seeded_by_the_salt(salt: int, value: str, expected: int) -> None:
    assert xxhash.xxh3_64_intdigest(value.encode("utf-8"), seed=salt) % feats.BUCKETS == expected


@pytest.mark.parametrize(("parts", "expected"), GOLDEN_SALTS)
def test_golden_salts(parts: tuple[str, ...], expected: int) -> None:
    # States written without a salt get this one; it must not change under them either.
    assert derive_salt(*parts) == expected


def test_bucket_range() -> None:
    assert feats.BUCKETS == 100_000
    assert {feats.bucket(7, str(i)) for i in range(10_000)} <= set(range(feats.BUCKETS))


# -- allocation helpers --------------------------------------------------------------------


def owned(allocation: Allocation) -> dict[str, list[tuple[int, int]]]:
    ranges: dict[str, list[tuple[int, int]]] = {}
    for name, start, end in allocation:
        ranges.setdefault(name, []).append((start, end))
    return ranges


def size(ranges: Sequence[tuple[int, int]]) -> int:
    return sum(end - start for start, end in ranges)


def overlap(one: Sequence[tuple[int, int]], two: Sequence[tuple[int, int]]) -> int:
    return sum(
        max(0, min(end1, end2) - max(start1, start2))
        for start1, end1 in one
        for start2, end2 in two
    )


def counts(allocation: Allocation) -> dict[str, int]:
    return {name: size(ranges) for name, ranges in owned(allocation).items()}


def moved(before: Allocation, after: Allocation) -> int:
    """Buckets whose implementation changed."""
    new = owned(after)
    return feats.BUCKETS - sum(
        overlap(ranges, new.get(name, [])) for name, ranges in owned(before).items()
    )


def assert_covers(allocation: Allocation) -> None:
    assert allocation[0][1] == 0
    assert allocation[-1][2] == feats.BUCKETS
    for (name, _, end), (next_name, next_start, _) in pairwise(allocation):
        assert end == next_start, "ranges must be contiguous"
        assert name != next_name, "adjacent ranges of one implementation are merged"
    assert all(start < end for _, start, end in allocation)


names = st.sampled_from(["acme", "premium", "aperture", "stripe", "paypal"])
int_weights = st.dictionaries(names, st.integers(0, 1_000), min_size=1).filter(
    lambda w: sum(w.values()) > 0
)
any_weights = st.dictionaries(
    names, st.integers(0, 1_000) | st.floats(0, 100, allow_nan=False), min_size=1
).filter(lambda w: sum(w.values()) > 0)


@st.composite
def histories(draw: st.DrawFn) -> Allocation:
    """An allocation after a few weight changes: fragmented, as real ones become."""
    allocation = None
    for weights in draw(st.lists(int_weights, min_size=1, max_size=4)):
        allocation = allocate(weights, allocation)
    assert allocation is not None
    return allocation


# -- allocation properties -----------------------------------------------------------------


@given(any_weights, st.none() | histories())
def test_allocation_covers_every_bucket_contiguously(
    weights: Mapping[str, float], previous: Allocation | None
) -> None:
    allocation = allocate(weights, previous)
    assert_covers(allocation)
    expected = {name: count for name, count in bucket_counts(weights).items() if count}
    assert counts(allocation) == expected
    assert sum(shares(allocation).values()) == pytest.approx(1)


@given(int_weights)
def test_counts_follow_largest_remainder(weights: Mapping[str, int]) -> None:
    total = sum(weights.values())
    exact = {name: Fraction(weight * feats.BUCKETS, total) for name, weight in weights.items()}
    result = bucket_counts(weights)
    assert sum(result.values()) == feats.BUCKETS
    rounded_up = [name for name in weights if result[name] == floor(exact[name]) + 1]
    for name in weights:
        assert result[name] in (floor(exact[name]), floor(exact[name]) + 1)
        if exact[name] == floor(exact[name]):
            assert result[name] == exact[name]
    # Whoever got an extra bucket had a remainder at least as large as whoever did not.
    remainder = {name: exact[name] - floor(exact[name]) for name in weights}
    kept_down = [name for name in weights if name not in rounded_up]
    if rounded_up and kept_down:
        assert min(remainder[n] for n in rounded_up) >= max(remainder[n] for n in kept_down)


@given(histories(), names, st.integers(1, 1_000))
def test_raising_a_weight_never_moves_its_users(
    previous: Allocation, name: str, raise_by: int
) -> None:
    before = owned(previous)
    weights = {n: size(r) for n, r in before.items()}
    weights[name] = weights.get(name, 0) + raise_by
    after = owned(allocate(weights, previous))
    kept = before.get(name, [])
    assert overlap(kept, after[name]) == size(kept)


@given(histories(), int_weights)
def test_only_shrinking_implementations_lose_and_growing_ones_keep(
    previous: Allocation, weights: Mapping[str, int]
) -> None:
    allocation = allocate(weights, previous)
    before, after = owned(previous), owned(allocation)
    for name in set(before) | set(after):
        old, new = before.get(name, []), after.get(name, [])
        if size(new) <= size(old):
            # A shrinking implementation never gains a bucket it did not have...
            assert overlap(new, old) == size(new)
        if size(new) >= size(old):
            # ...and only shrinking ones lose users: the rest keep every bucket.
            assert overlap(old, new) == size(old)


@given(histories(), int_weights)
def test_moves_are_minimal(previous: Allocation, weights: Mapping[str, int]) -> None:
    allocation = allocate(weights, previous)
    old, new = counts(previous), counts(allocation)
    growth = sum(max(0, new.get(n, 0) - old.get(n, 0)) for n in set(old) | set(new))
    assert moved(previous, allocation) == growth


@given(int_weights)
def test_same_weights_move_nobody(weights: Mapping[str, int]) -> None:
    allocation = allocate(weights)
    assert allocate(weights, allocation) == allocation


# -- the spec's cases ----------------------------------------------------------------------


def test_five_to_ten_percent_keeps_the_first_five() -> None:
    five = allocate({"aperture": 5, "acme": 95})
    ten = allocate({"aperture": 10, "acme": 90}, five)
    assert owned(five)["aperture"] == [(0, 5_000)]
    assert overlap(owned(five)["aperture"], owned(ten)["aperture"]) == 5_000
    assert counts(ten) == {"aperture": 10_000, "acme": 90_000}
    assert moved(five, ten) == 5_000


def test_ninety_five_five_to_eighty_ten_ten_moves_only_the_first() -> None:
    before = allocate({"acme": 90, "premium": 5, "aperture": 5})
    after = allocate({"acme": 80, "premium": 10, "aperture": 10}, before)
    old, new = owned(before), owned(after)
    for grown in ("premium", "aperture"):
        assert overlap(old[grown], new[grown]) == 5_000
    assert overlap(old["acme"], new["acme"]) == 80_000
    assert moved(before, after) == 10_000


# -- measured over 100,000 user ids ---------------------------------------------------------


@pytest.fixture
def payments() -> Iterator[tuple[feats.App, Segments]]:
    with feats.App(storage=feats.MemoryStorage(), start_timeout=1) as app:
        yield app, declare_segments(app)


def rollout_of(
    app: feats.App, segments: Segments, name: str, weights: Mapping[str, float]
) -> feats.Feature:
    cls = payment_processor_class()
    cls.__name__ = name
    feature = app.feature(cls)
    set_weights(app, feature, segments, weights)
    return feature


def set_weights(
    app: feats.App, feature: feats.Feature, segments: Segments, weights: Mapping[str, float]
) -> None:
    state = feats.FeatureState(rules={None: feats.Rollout(segments.user_id, weights)})
    app.admin.set_state(feature, state, author="test", reason=f"weights {dict(weights)}")


def assignments(feature: feats.Feature) -> list[str]:
    return [feature.find_implementation(user(i)) for i in range(USERS)]


def fraction(chosen: list[str], implementation: str) -> float:
    return chosen.count(implementation) / len(chosen)


def test_fifty_fifty_within_one_percent(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    feature = rollout_of(app, segments, "Half", {"aperture": 50, "acme": 50})
    share = fraction(assignments(feature), "aperture")
    print(f"\n50/50 rollout over {USERS:,} user ids: {share:.3%} aperture")
    assert abs(share - 0.50) <= 0.01


def test_five_percent_within_point_three(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    feature = rollout_of(app, segments, "Few", {"aperture": 5, "acme": 95})
    share = fraction(assignments(feature), "aperture")
    print(f"\n5% rollout over {USERS:,} user ids: {share:.3%} aperture")
    assert abs(share - 0.05) <= 0.003


def test_two_features_pick_independent_users(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    one = assignments(rollout_of(app, segments, "One", {"aperture": 50, "acme": 50}))
    two = assignments(rollout_of(app, segments, "Two", {"aperture": 50, "acme": 50}))
    both = sum(a == b == "aperture" for a, b in zip(one, two, strict=True)) / USERS
    few_one = assignments(rollout_of(app, segments, "FewOne", {"aperture": 5, "acme": 95}))
    few_two = assignments(rollout_of(app, segments, "FewTwo", {"aperture": 5, "acme": 95}))
    few_both = sum(a == b == "aperture" for a, b in zip(few_one, few_two, strict=True)) / USERS
    print(
        f"\ntwo 50% rollouts on UserId: {both:.3%} of users in both (independent: 25%)"
        f"\ntwo 5% rollouts on UserId: {few_both:.3%} of users in both (independent: 0.25%,"
        " a shared salt would give 5%)"
    )
    assert abs(both - 0.25) <= 0.01
    assert few_both < 0.005


def test_salts_differ_between_features_and_rules(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    salts = []
    for name in ("One", "Two"):
        cls = payment_processor_class()
        cls.__name__ = name
        feature = app.feature(cls)
        state = feats.FeatureState(
            segments=[segments.country],
            rules={
                "US": feats.Rollout(segments.user_id, {"aperture": 5, "acme": 95}),
                "CA": feats.Rollout(segments.user_id, {"aperture": 5, "acme": 95}),
            },
        )
        app.admin.set_state(feature, state, author="t", reason="r")
        stored = app.admin.get_state(feature)
        assert stored is not None
        salts += [
            s.salt for _, s in stored.splits() if isinstance(s, feats.Rollout | feats.Experiment)
        ]
    assert len(set(salts)) == 4


def test_raising_a_rollout_keeps_its_users(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    feature = rollout_of(app, segments, "Grow", {"aperture": 5, "acme": 95})
    five = assignments(feature)
    set_weights(app, feature, segments, {"aperture": 10, "acme": 90})
    ten = assignments(feature)
    kept = sum(a == b == "aperture" for a, b in zip(five, ten, strict=True))
    changed = sum(a != b for a, b in zip(five, ten, strict=True))
    print(
        f"\n5% -> 10%: {five.count('aperture'):,} -> {ten.count('aperture'):,} aperture users, "
        f"{kept:,} kept, {changed:,} moved (all acme -> aperture)"
    )
    assert kept == five.count("aperture")
    assert all(a == b or (a, b) == ("acme", "aperture") for a, b in zip(five, ten, strict=True))
    assert abs(fraction(ten, "aperture") - 0.10) <= 0.005


def test_rebalancing_three_ways_moves_only_the_shrinking(
    payments: tuple[feats.App, Segments],
) -> None:
    app, segments = payments
    feature = rollout_of(app, segments, "Three", {"acme": 90, "premium": 5, "aperture": 5})
    before = assignments(feature)
    set_weights(app, feature, segments, {"acme": 80, "premium": 10, "aperture": 10})
    after = assignments(feature)
    changes = {(a, b) for a, b in zip(before, after, strict=True) if a != b}
    moved_users = sum(a != b for a, b in zip(before, after, strict=True))
    print(f"\n90/5/5 -> 80/10/10: {moved_users:,} of {USERS:,} users moved, all from acme")
    assert changes == {("acme", "premium"), ("acme", "aperture")}
    assert abs(moved_users / USERS - 0.10) <= 0.01


def test_snapshot_uses_the_pinned_hash(payments: tuple[feats.App, Segments]) -> None:
    app, segments = payments
    feature = rollout_of(app, segments, "Pinned", {"aperture": 5, "acme": 95})
    stored = app.admin.get_state(feature)
    assert stored is not None and isinstance(stored.fallthrough, feats.Rollout)
    salt = stored.fallthrough.salt
    assert salt is not None
    for i in range(200):
        evaluation = feature.explain(user(i))
        assert evaluation.bucket == feats.bucket(salt, str(i))
        expected = "aperture" if feats.bucket(salt, str(i)) < 5_000 else "acme"
        assert evaluation.implementation == feature.find_implementation(user(i)) == expected
