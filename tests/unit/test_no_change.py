"""A change that changes nothing writes nothing: the admin's rule and the CLI's "Nothing to
change" are one (Plan.changed)."""

from __future__ import annotations

import feats
from tests.unit._models import declare_payments, declare_segments, user

PREMIUM_IN_CANADA = feats.FeatureState(
    segments=["Country"], rules={("CA",): feats.Static("premium")}
)


def _shop() -> tuple[feats.App, feats.Feature, feats.MemoryStorage]:
    storage = feats.MemoryStorage()
    app = feats.App(storage=storage)
    declare_segments(app)
    return app, declare_payments(app), storage


def test_the_same_state_again_writes_no_new_version() -> None:
    app, processor, _ = _shop()
    admin = app.admin
    first = admin.set_state(processor, PREMIUM_IN_CANADA, author="a", reason="CA down")
    assert admin.set_state(processor, PREMIUM_IN_CANADA, author="b", reason="again") == first
    assert admin.route(processor, "premium", where={"Country": "CA"}, author="c", reason="") == (
        first
    )
    assert admin.rollback(processor, first, author="d", reason="same") == first
    assert admin.set_state(
        processor, PREMIUM_IN_CANADA, author="e", reason="", expected_version=first
    ) == (first)
    [change] = admin.history(processor)
    assert (change.version, change.author) == (first, "a")
    assert admin.get_version(processor) == first


def test_a_reset_of_a_never_configured_feature_writes_nothing() -> None:
    app, processor, _ = _shop()
    assert app.admin.set_state(processor, None, author="a", reason="reset") == ""
    assert app.admin.reset(processor, author="a", reason="reset") == ""
    assert app.admin.history(processor) == []
    # An empty state is a configuration (drift sees it configured), not "no change".
    written = app.admin.set_state(processor, feats.FeatureState(), author="a", reason="empty")
    assert written and app.admin.get_version(processor) == written
    plan = app.admin.preview(processor, feats.Replace(None))
    assert plan.changed and [str(line) for line in plan.diff] == [
        "- configuration: 0 rules (reset: the default answers)"
    ]


def test_a_changed_state_still_writes() -> None:
    app, processor, _ = _shop()
    first = app.admin.set_state(processor, PREMIUM_IN_CANADA, author="a", reason="")
    second = app.admin.route(processor, "aperture", where={"Country": "CA"}, author="a", reason="")
    assert second != first
    assert len(app.admin.history(processor)) == 2


def test_an_unreadable_record_is_replaced_even_by_no_configuration() -> None:
    app, processor, storage = _shop()
    first = app.admin.set_state(processor, PREMIUM_IN_CANADA, author="a", reason="")
    ok, poisoned = storage.write("PaymentProcessor", "[" * 5000 + "]" * 5000, first)
    assert ok
    plan = app.admin.preview(processor, feats.Reset())
    assert plan.unreadable and plan.before is None and plan.after is None
    assert plan.changed and plan.diff == ()
    repaired = app.admin.reset(processor, author="ops", reason="repair")
    assert repaired not in ("", poisoned)
    assert app.admin.get_state(processor) is None
    assert app.admin.get_version(processor) == repaired
    with app:
        assert processor.find_implementation(user(1, "CA")) == "acme"
