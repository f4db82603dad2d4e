"""Drift is repaired one rule at a time, and error messages speak of the feature at hand."""

import pytest

import feats
from feats._cli._parsing import parse_weights
from tests.unit._models import User, declare_segments, payment_processor_class


def without_aperture() -> type:
    class PaymentProcessor:
        @feats.App.default
        def acme(self, user: User) -> str:
            return "acme"

        def premium(self, user: User) -> str:
            return "premium"

    return PaymentProcessor


def test_rules_can_be_fixed_one_by_one_after_a_deploy_dropped_an_implementation() -> None:
    storage = feats.MemoryStorage()
    before = feats.App(storage=storage)
    declare_segments(before)
    old = before.feature(payment_processor_class())
    before.admin.rollout(
        old, "UserId", {"aperture": 5, "acme": 95}, where={"Country": "GB"}, author="t", reason=""
    )
    before.admin.route(old, "aperture", where={"Country": "US"}, author="t", reason="")

    after = feats.App(storage=storage)
    declare_segments(after)
    new = after.feature(without_aperture())
    # A new rule must be sound: naming the dropped implementation is refused...
    with pytest.raises(feats.ConfigurationError, match=r"rule Country=FR: unknown implementation"):
        after.admin.set_state(
            new,
            after.admin.get_state(new).with_rule(("FR",), feats.Static("aperture")),  # type: ignore[union-attr]
            author="t",
            reason="",
        )
    # ...but removing one broken rule, and replacing the other, are accepted.
    after.admin.remove_rule(new, where={"Country": "US"}, author="t", reason="")
    after.admin.route(new, "premium", where={"Country": "GB"}, author="t", reason="")
    state = after.admin.get_state(new)
    assert state is not None and dict(state.rules) == {("GB",): feats.Static("premium")}


def test_a_weight_error_suggests_the_implementations_given() -> None:
    with pytest.raises(feats.ConfigurationError, match=r"e\.g\. no_priority=50 two=50$"):
        parse_weights(["no_priority=50", "two=40"])
    with pytest.raises(feats.ConfigurationError, match=r"e\.g\. a=50 b=50$"):
        parse_weights(["a=100", "b=100"])
