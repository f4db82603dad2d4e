"""feats.testing: override() in both shells, the exposure recorder, and the pytest plugin
(its fixtures, tested with pytester in a pytest run of their own)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import pytest
import redis

import feats
import feats.aio
import feats.testing
from feats.testing import override


@dataclass(frozen=True)
class User:
    id: int
    country: str = "US"


def closed_port_storage() -> feats.RedisStorage:
    """A RedisStorage that could never answer: override must not need it."""
    return feats.RedisStorage(redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.1), "t")


def declare_sync(
    app: feats.App,
) -> tuple[type[feats.FeatureClass[[User], str]], feats.Boolean[User]]:
    class PaymentProcessor(feats.FeatureClass[[User], str], app=app):
        @app.default
        def acme(self, user: User) -> str:
            return "acme"

        def premium(self, user: User) -> str:
            return "premium"

        def aperture(self, user: User) -> str:
            return "aperture"

    @app.boolean
    def ImageProcessing(user: User) -> bool:
        return True

    return PaymentProcessor, ImageProcessing


def test_override_pins_by_name_and_restores_without_storage() -> None:
    app = feats.App(storage=closed_port_storage())  # never started, nothing to reach
    processor, images = declare_sync(app)
    with override(app, PaymentProcessor="premium", ImageProcessing=False):
        assert processor.create(User(1)) == "premium"
        assert images.is_enabled(User(1)) is False
        reason = processor.explain(User(1)).reason
        assert reason == "overridden in this process: the only rule: static premium"
    assert processor.create(User(1)) == "acme"
    assert images.is_enabled(User(1)) is True
    assert processor.explain(User(1)).reason.startswith("this App was never started")


def test_overrides_nest_and_restore_the_outer_pin() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    processor, _ = declare_sync(app)
    with override(app, PaymentProcessor="premium"):
        with override(app, PaymentProcessor="aperture"):
            assert processor.create(User(1)) == "aperture"
        assert processor.create(User(1)) == "premium"
    assert processor.create(User(1)) == "acme"


def test_override_takes_a_state_and_beats_storage() -> None:
    app = feats.App(storage=feats.MemoryStorage())
    processor, _ = declare_sync(app)

    @app.segment
    class Country:
        def user(self, user: User) -> str:
            return user.country

    with app:
        app.admin.set_state(
            processor,
            feats.FeatureState(rules={None: feats.Static("aperture")}),
            author="t",
            reason="",
        )
        state = feats.FeatureState(segments=[Country], rules={("CA",): feats.Static("premium")})
        with override(app, PaymentProcessor=state):
            assert processor.create(User(1, "CA")) == "premium"
            assert processor.create(User(1, "US")) == "acme"  # no fallthrough in the pin
            # A change from storage does not undo the pin.
            app.admin.set_state(processor, None, author="t", reason="")
            assert processor.create(User(1, "CA")) == "premium"
        assert processor.create(User(1, "CA")) == "acme"


def test_override_as_a_decorator_of_sync_functions() -> None:
    app = feats.App()
    processor, _ = declare_sync(app)

    @override(app, PaymentProcessor="aperture")
    def charge(user: User) -> str:
        return processor.create(user)

    assert charge(User(1)) == "aperture"
    assert charge.__name__ == "charge"
    assert processor.create(User(1)) == "acme"


async def test_override_on_the_aio_app_as_decorator_and_context_manager() -> None:
    app = feats.aio.App()

    class PaymentProcessor(feats.aio.FeatureClass[[User], str], app=app):
        @app.default
        def acme(self, user: User) -> str:
            return "acme"

        async def premium(self, user: User) -> str:
            return "premium"

    @app.boolean
    async def Slow(user: User) -> bool:
        return True

    @override(app, PaymentProcessor="premium", Slow=False)
    async def checkout(user: User) -> tuple[str, bool]:
        return await PaymentProcessor.create(user), await Slow.is_enabled(user)

    assert await checkout(User(1)) == ("premium", False)
    assert await PaymentProcessor.create(User(1)) == "acme"
    with override(app, PaymentProcessor="premium"):
        assert await PaymentProcessor.create(User(1)) == "premium"
        assert "overridden in this process" in PaymentProcessor.explain(User(1)).reason


def test_mistakes_are_clear_errors_at_the_call() -> None:
    app = feats.App()
    declare_sync(app)
    with pytest.raises(
        feats.NotFoundError,
        match=r"unknown feature 'PaymentProcesor'.*did you mean 'PaymentProcessor'",
    ):
        override(app, PaymentProcesor="premium")
    with pytest.raises(
        feats.NotFoundError, match=r"no implementation 'premum'; did you mean 'premium'"
    ):
        override(app, PaymentProcessor="premum")
    with pytest.raises(TypeError, match="not a boolean feature"):
        override(app, PaymentProcessor=True)
    with pytest.raises(feats.ConfigurationError):
        override(app, PaymentProcessor=feats.FeatureState(rules={None: feats.Static("bitcoin")}))
    with pytest.raises(TypeError, match=r"feats\.App or feats\.aio\.App"):
        override("app", PaymentProcessor="premium")  # type: ignore[arg-type]  # the mistake tested


def test_the_recorder_sees_exposures_as_they_are_recorded() -> None:
    app = feats.App()
    processor, _ = declare_sync(app)

    @app.segment
    class UserId:
        def user(self, user: User) -> str:
            return str(user.id)

    experiment = feats.FeatureState(
        rules={None: feats.Experiment(UserId, {"acme": 50, "premium": 50})}
    )
    with (
        feats.testing.ExposureRecorder().watch(app) as recorder,
        override(app, PaymentProcessor=experiment),
    ):
        chosen = {user_id: processor.create(User(user_id)) for user_id in range(20)}
        processor.find_implementation(User(99))  # preselection records nothing
        processor.used_implementation("premium", User(100))
    counts = recorder.implementations("PaymentProcessor")
    assert sum(counts.values()) == 21
    assert set(counts) == {"acme", "premium"}
    assert {unit: chosen[int(unit)] for unit in list(recorder.units("PaymentProcessor"))[:20]} == {
        str(user_id): implementation for user_id, implementation in chosen.items()
    }
    assert recorder.units("PaymentProcessor")["100"] == "premium"
    processor.create(User(1))
    assert len(recorder) == 21  # closed: no longer watching


def test_the_plugin_imports_no_redis_client() -> None:
    probe = (
        "import sys, feats_pytest; print(sorted(m for m in ('redis', 'feats') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


PLUGIN_TESTS = """
import pytest
import feats
import feats.aio
from dataclasses import dataclass

@dataclass(frozen=True)
class User:
    id: int

app = feats.App()
aio_app = feats.aio.App()

@app.segment
class UserId:
    def user(self, user: User) -> str:
        return str(user.id)

class Priorities(feats.FeatureClass[[User], int], app=app):
    @app.default
    def none(self, user: User) -> int:
        return 0

    def two(self, user: User) -> int:
        return 2

class Processor(feats.aio.FeatureClass[[User], str], app=aio_app):
    @aio_app.default
    def acme(self, user: User) -> str:
        return "acme"

    def premium(self, user: User) -> str:
        return "premium"

def test_pinned(feats_override):
    feats_override(app, Priorities="two")
    assert Priorities.create(User(1)) == 2

def test_undone_at_teardown():
    assert Priorities.create(User(1)) == 0

async def test_async_pin(feats_override):
    feats_override(aio_app, Processor="premium")
    assert await Processor.create(User(1)) == "premium"

def test_async_pin_undone():
    assert Processor.find_implementation(User(1)) == "acme"

def test_unknown_feature_fails_at_the_call(feats_override):
    with pytest.raises(feats.NotFoundError, match="Prioritys"):
        feats_override(app, Prioritys="two")

def test_exposures(feats_override, feats_exposures):
    feats_exposures.watch(app)
    feats_override(app, Priorities=feats.FeatureState(
        rules={None: feats.Experiment("UserId", {"none": 50, "two": 50})}))
    answers = [Priorities.create(User(i)) for i in range(10)]
    counts = feats_exposures.implementations("Priorities")
    assert counts["two"] == answers.count(2) and counts["none"] == answers.count(0)

def test_exposures_stop_at_teardown():
    Priorities.create(User(1))

def test_deliberately_failing(feats_override):
    feats_override(app, Priorities="two")
    assert Priorities.create(User(1)) == 0
"""


def test_the_plugin_fixtures_in_a_pytest_run_of_their_own(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makepyfile(test_plugin_fixtures=PLUGIN_TESTS)
    # A subprocess: the plugin is found through its pytest11 entry point, as users get it.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*test_deliberately_failing FAILED*", "*assert 2 == 0*"])
