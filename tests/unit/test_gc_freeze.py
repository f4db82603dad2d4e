"""The App keeps long-lived objects out of full garbage collections (issue 13).

With ``freeze_gc=True`` (the default) an App's full load leaves what exists then in the
permanent generation (``gc.freeze()``: ``gc.get_freeze_count()`` grows, and the objects are
no longer among those a collection walks); with ``freeze_gc=False`` it freezes nothing.
``freeze_heap`` stops at MAX_FREEZES per process and, asked ``if_not_recent``, skips a
freeze within RECENT_FREEZE_SECONDS of the last one.

Frozen objects are left frozen: unfreezing would hand the permanent generation (what every
earlier App of the run froze, old garbage included) to the next full collection.
"""

from __future__ import annotations

import gc
import math
import time
import weakref
from collections.abc import Iterator

import pytest

import feats
import feats._tail as tail
from tests.unit._models import declare_payments, declare_segments

PREMIUM = feats.FeatureState(rules={None: feats.Static("premium")})

Calls = list[tuple[bool, bool]]
"""Every freeze_heap call during a test: (if_not_recent, whether it froze)."""


@pytest.fixture
def freezes(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """A fresh per-process budget (the cap is shared by every App of the run), and a record
    of every freeze the Apps ask for."""
    monkeypatch.setattr(tail, "_freezes", 0)
    monkeypatch.setattr(tail, "_last_freeze", -math.inf)
    real = tail.freeze_heap
    calls: Calls = []

    def spy(*, if_not_recent: bool = False, collect_young: bool = False) -> bool:
        done = real(if_not_recent=if_not_recent, collect_young=collect_young)
        calls.append((if_not_recent, done))
        return done

    monkeypatch.setattr(tail, "freeze_heap", spy)
    yield calls


def frozen(obj: object) -> bool:
    """In the permanent generation: tracked, yet not among the objects collections walk."""
    assert gc.is_tracked(obj)
    return not any(candidate is obj for candidate in gc.get_objects())


def run_app(*, freeze_gc: bool) -> feats.App:
    """Start an App on memory, and return once its tail is past its first full load (and
    the freezes that come with it): it has applied a change written after its start."""
    storage = feats.MemoryStorage()
    writer = feats.App(storage=storage)  # never started: only its admin writes
    declare_segments(writer)
    writer_payments = declare_payments(writer)
    # The writer thread's flush interval is beyond the test: it never freezes on its own.
    app = feats.App(storage=storage, freeze_gc=freeze_gc, flush_interval=3600)
    declare_segments(app)
    declare_payments(app)
    app.start()
    try:
        version = writer.admin.set_state(writer_payments, PREMIUM, author="t", reason="gc")
        app.wait_for_version(version, timeout=5)
    except BaseException:
        app.close()
        raise
    return app


def test_an_app_freezes_the_heap_around_its_load(freezes: Calls) -> None:
    before = gc.get_freeze_count()
    app = run_app(freeze_gc=True)
    try:
        # Before the load (nothing frozen recently) and after it.
        assert freezes == [(True, True), (False, True)]
        assert gc.get_freeze_count() > before
        assert frozen(app.registry)  # declared before start: long-lived
        assert frozen(app)
    finally:
        app.close()


def test_freeze_gc_false_freezes_nothing(freezes: Calls) -> None:
    before = gc.get_freeze_count()
    app = run_app(freeze_gc=False)
    try:
        assert freezes == []
        assert gc.get_freeze_count() <= before  # frozen objects freed meanwhile leave it
        assert not frozen(app.registry)
        assert not frozen(app)
    finally:
        app.close()


def test_an_app_freezes_nothing_once_the_process_cap_is_reached(
    freezes: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail, "_freezes", tail.MAX_FREEZES)
    before = gc.get_freeze_count()
    app = run_app(freeze_gc=True)
    try:
        assert freezes == [(True, False), (False, False)]  # asked for, refused
        assert gc.get_freeze_count() <= before  # frozen objects freed meanwhile leave it
        assert not frozen(app.registry)
        assert tail._freezes == tail.MAX_FREEZES
    finally:
        app.close()


def test_an_app_skips_the_freeze_before_its_load_after_a_recent_one(
    freezes: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail, "RECENT_FREEZE_SECONDS", 3600.0)
    monkeypatch.setattr(tail, "_last_freeze", time.monotonic())
    app = run_app(freeze_gc=True)
    try:
        # The freeze before the load is skipped; the one after it (not if_not_recent) is not.
        assert freezes == [(True, False), (False, True)]
        assert frozen(app.registry)
        assert tail._freezes == 1
    finally:
        app.close()


def test_freeze_heap_stops_at_the_cap(freezes: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tail, "_freezes", tail.MAX_FREEZES - 1)
    before = gc.get_freeze_count()
    kept = [object()]  # a list: tracked by the collector
    assert tail.freeze_heap() is True  # the last one allowed
    assert gc.get_freeze_count() > before
    assert frozen(kept)
    assert tail._freezes == tail.MAX_FREEZES
    after_last = gc.get_freeze_count()
    young = [object()]
    assert tail.freeze_heap() is False
    assert tail.freeze_heap(if_not_recent=True) is False
    assert gc.get_freeze_count() <= after_last  # frozen objects freed meanwhile leave it
    assert not frozen(young)
    assert tail._freezes == tail.MAX_FREEZES


def test_freeze_heap_if_not_recent_skips_within_the_recent_window(
    freezes: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tail, "RECENT_FREEZE_SECONDS", 3600.0)
    monkeypatch.setattr(tail, "_last_freeze", time.monotonic())  # a freeze just now
    before = gc.get_freeze_count()
    young = [object()]
    assert tail.freeze_heap(if_not_recent=True) is False
    assert gc.get_freeze_count() <= before  # frozen objects freed meanwhile leave it
    assert not frozen(young)
    assert tail._freezes == 0  # a skipped freeze costs none of the budget
    # Unconditional freezes are not held back by a recent one.
    assert tail.freeze_heap() is True
    assert frozen(young)
    # Once the last freeze is older than the window, if_not_recent freezes again, and
    # that freeze is then the recent one.
    monkeypatch.setattr(tail, "_last_freeze", time.monotonic() - 3601.0)
    later = [object()]
    assert tail.freeze_heap(if_not_recent=True) is True
    assert frozen(later)
    assert tail.freeze_heap(if_not_recent=True) is False
    assert tail._freezes == 2


class _Cycle:
    """Garbage only the cyclic collector can free."""

    def __init__(self) -> None:
        self.me = self


def test_freeze_heap_collects_young_garbage_first_only_when_asked(freezes: Calls) -> None:
    asked = weakref.ref(_Cycle())
    assert tail.freeze_heap(collect_young=True) is True
    assert asked() is None  # collected before the freeze
    kept = weakref.ref(_Cycle())
    assert tail.freeze_heap() is True
    garbage = kept()
    assert garbage is not None and frozen(garbage)  # frozen with the rest: never walked


def test_the_follower_collects_young_garbage_only_after_few_compiles(
    freezes: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []
    real = tail.freeze_heap

    def spy(*, if_not_recent: bool = False, collect_young: bool = False) -> bool:
        asked.append(collect_young)
        return real(if_not_recent=if_not_recent, collect_young=collect_young)

    monkeypatch.setattr(tail, "freeze_heap", spy)
    small = feats.App()
    declare_segments(small)
    declare_payments(small)
    with small:
        pass
    assert asked and all(asked)  # a few compiles: young generations small, collected
    asked.clear()
    monkeypatch.setattr(tail, "RECENT_FREEZE_SECONDS", 0.0)
    monkeypatch.setattr(tail, "FREEZE_AFTER_COMPILES", 0)  # as after thousands of compiles
    with feats.App():
        pass
    assert asked and not any(asked)
