"""The App's hooks for integrations: listeners, evaluation by segment values, pins, closed."""

import json

import pytest

import feats
import feats.aio
from tests.unit._models import declare_payments, declare_segments, payments_state, user

EXPERIMENT = feats.FeatureState(
    rules={None: feats.Experiment("UserId", {"acme": 50, "premium": 50})}
)


@pytest.fixture
def app() -> feats.App:
    return feats.App(storage=feats.MemoryStorage())


def test_explain_values_reads_the_snapshot_by_segment_values(app: feats.App) -> None:
    segments = declare_segments(app)
    processor = declare_payments(app)
    with app:
        version = app.admin.set_state(processor, payments_state(segments), author="t", reason="")
        canada = app.explain_values(processor, {"Country": "CA"})
        assert (canada.implementation, canada.version) == ("premium", version)
        assert "rule Country=CA: static premium" in canada.reason
        us = app.explain_values("PaymentProcessor", {"Country": "US", "UserId": "42"})
        assert us.implementation == processor.find_implementation(user(42, "US"))
        assert us.bucket is not None
        with pytest.raises(feats.ConfigurationError, match="UserId"):
            app.explain_values(processor, {"Country": "US"})
        with pytest.raises(feats.NotFoundError):
            app.explain_values("Nope", {})


def test_record_exposure_counts_only_experiment_answers(app: feats.App) -> None:
    declare_segments(app)
    processor = declare_payments(app)
    with app:
        app.admin.set_state(processor, EXPERIMENT, author="t", reason="")
        evaluation = app.explain_values(processor, {"UserId": "7"})
        app.record_exposure(evaluation)
        app.admin.set_state(processor, None, author="t", reason="")
        app.record_exposure(app.explain_values(processor, {}))
    assert app.status.exposures_written == 1
    report = app.admin.exposures(processor)
    assert report.total == 1
    assert report.implementations[0].implementation == evaluation.implementation


def test_evaluation_listeners_see_every_answer_and_cost_nothing_once_removed(
    app: feats.App,
) -> None:
    segments = declare_segments(app)
    processor = declare_payments(app)
    seen: list[feats.Evaluation] = []
    with app:
        app.admin.set_state(processor, payments_state(segments), author="t", reason="")
        app.add_evaluation_listener(seen.append)
        processor.create(user(1, "CA"))
        processor.find_implementation(user(2, "GB"))
        assert [(e.implementation, e.segment_values.get("Country")) for e in seen] == [
            ("premium", "CA"),
            ("acme", "GB"),
        ]
        app.remove_evaluation_listener(seen.append)
        processor.create(user(3, "CA"))
    assert len(seen) == 2


def test_a_raising_evaluation_listener_does_not_break_evaluation(app: feats.App) -> None:
    declare_segments(app)
    processor = declare_payments(app)

    def broken(evaluation: feats.Evaluation) -> None:
        raise RuntimeError("listener bug")

    app.add_evaluation_listener(broken)
    with app:
        assert processor.find_implementation(user(1)) == "acme"


def test_status_listeners_hear_live_and_closed(app: feats.App) -> None:
    declare_segments(app)
    states: list[str] = []
    app.add_status_listener(lambda status: states.append(status.state))
    with app:
        assert app.status.live
    assert app.status.closed
    assert states == ["live", "closed"]


async def test_the_aio_app_says_closed_after_aclose() -> None:
    app = feats.aio.App(storage=feats.aio.MemoryStorage())
    async with app:
        assert app.status.live
    assert app.status.state == "closed"
    async with app:
        assert app.status.live


def test_a_pinned_state_answers_and_explain_says_so(app: feats.App) -> None:
    segments = declare_segments(app)
    processor = declare_payments(app)
    with app:
        app.admin.set_state(processor, payments_state(segments), author="t", reason="")
        app.override(processor, feats.FeatureState(rules={None: feats.Static("aperture")}))
        assert processor.find_implementation(user(1, "CA")) == "aperture"
        assert processor.explain(user(1, "CA")).reason.startswith("overridden in this process")
        # A change from storage does not undo the pin.
        app.admin.set_state(processor, None, author="t", reason="")
        assert processor.find_implementation(user(1, "CA")) == "aperture"
        app.override(processor, None)
        assert processor.find_implementation(user(1, "CA")) == "acme"


def test_explain_values_says_drift_where_the_snapshot_serves_the_default() -> None:
    storage = feats.MemoryStorage()
    app = feats.App(storage=storage)
    declare_segments(app)
    processor = declare_payments(app)
    record = {
        "schema": 1,
        "feature": "PaymentProcessor",
        "state": {
            "segments": ["Country"],
            "rules": [
                {"key": ["CA"], "selector": {"type": "static", "implementation": "stripe"}},
                {"key": None, "selector": {"type": "static", "implementation": "premium"}},
            ],
        },
        "author": "other code",
        "reason": "",
        "time": 0,
    }
    with app:
        ok, version = storage.write("PaymentProcessor", json.dumps(record), None)
        assert ok
        app.wait_for_version(version, timeout=5)
        canada = app.explain_values(processor, {"Country": "CA"})
        assert canada.implementation == processor.find_implementation(user(1, "CA")) == "acme"
        assert canada.reason.startswith("configuration drift") and "'stripe'" in canada.reason
        assert canada.default and canada.selector is None
        assert app.explain_values(processor, {"Country": "US"}).implementation == "premium"
