"""The sans-IO decisions behind the fault scenarios, without a server: silence means stale,
a load never moves a feature backwards, an empty store is re-seeded (or kept as diverged),
states this code cannot serve are skipped, and backups validate."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import feats
import feats.aio
from feats._backup import parse_backup, restore_items, write_plan
from feats._codec import Record, encode_record
from feats._core import MAX_ENTRY_CHARS, AppCore
from feats._memory import MemoryLog
from feats._stored import Loaded, RawEntry
from feats._tail import MAX_RESEED_ATTEMPTS, CheckEpoch, Load, Read, Reseed, Tail, Wait

from ._model import CANADIAN, SyncModel, apoll, canada_gets, declare, poll

V1, V2, V3 = "1000-0", "2000-0", "3000-0"


def model() -> SyncModel:
    app = feats.App(storage=feats.MemoryStorage())
    return SyncModel(app, *declare(app))


def raw(state: feats.FeatureState | None, feature: str = "Checkout") -> str:
    return encode_record(Record(feature, state, "t", "r", time.time()))


def loaded(records: dict[str, tuple[str, str]], head: str, epoch: str | None) -> Loaded:
    return Loaded(records=records, head=head, epoch=epoch)


def started(core: AppCore, *, silence: float | None = None, reseed: bool = True) -> Tail:
    tail = Tail(core, block_ms=100, silence=silence, reseed=reseed)
    tail.on_loaded(loaded({"Checkout": (V2, raw(canada_gets("express")))}, V2, "e1"))
    assert core.state == "live"
    return tail


def test_a_silent_live_app_reports_itself_stale() -> None:
    m = model()
    core = m.app._core
    tail = started(core, silence=0.5)
    assert m.app.status.live and not m.Checkout.explain(CANADIAN).stale
    core.confirmed_at = time.time() - 2
    status = m.app.status
    assert status.state == "stale" and "no answer" in (status.error or "")
    assert status.lag is not None and status.lag >= 2
    assert m.Checkout.explain(CANADIAN).stale
    tail.on_entries([])  # the next idle BLOCK answers: live again
    assert m.app.status.live and m.app.status.lag == 0.0


def test_a_load_never_moves_a_feature_backwards() -> None:
    m = model()
    core = m.app._core
    started(core)
    for store in (
        loaded({}, "0-0", None),  # empty
        loaded({"Checkout": (V1, raw(canada_gets("oneclick")))}, V1, "e2"),  # rolled back
    ):
        core.apply_loaded(store)
        assert core.diverged == {"Checkout"}
        evaluation = m.Checkout.explain(CANADIAN)
        assert (evaluation.implementation, evaluation.version) == ("express", V2)
    core.apply_loaded(loaded({"Checkout": (V3, raw(canada_gets("oneclick")))}, V3, "e2"))
    assert core.diverged == set()
    assert m.Checkout.explain(CANADIAN).version == V3


def test_an_empty_store_is_reseeded_then_reloaded() -> None:
    m = model()
    core = m.app._core
    tail = started(core)
    tail.on_error(feats.StorageError("connection refused"))
    assert core.state == "stale" and isinstance(tail.next_action(), Wait)
    tail.on_waited()
    assert isinstance(tail.next_action(), CheckEpoch)
    tail.on_epoch(None)
    assert isinstance(tail.next_action(), Load)
    tail.on_loaded(loaded({}, "0-0", None))
    action = tail.next_action()
    assert isinstance(action, Reseed) and action.epoch is None
    assert [(f, v) for f, v, _ in action.items] == [("Checkout", V2)]
    assert core.state == "stale" and m.Checkout.explain(CANADIAN).version == V2
    tail.on_reseeded(1)
    assert isinstance(tail.next_action(), Load)
    tail.on_loaded(loaded({"Checkout": (V2, action.items[0][2])}, V2, "e2"))
    assert isinstance(tail.next_action(), Read)
    status = m.app.status
    assert status.live and status.reseeds == 1 and status.diverged == ()


def test_an_app_that_may_not_reseed_keeps_its_snapshot_as_diverged() -> None:
    m = model()
    core = m.app._core
    tail = started(core)
    empty = loaded({}, "0-0", None)
    for _ in range(MAX_RESEED_ATTEMPTS):
        tail.on_loaded(empty)
        assert isinstance(tail.next_action(), Reseed)
        tail.on_error(feats.StorageError("NOPERM this user has no permissions"))
        tail.on_waited()
        assert isinstance(tail.next_action(), Load)
    tail.on_loaded(empty)
    assert isinstance(tail.next_action(), Read)
    status = m.app.status
    assert status.state == "stale" and status.diverged == ("Checkout",)
    assert any("NOPERM" in problem.message for problem in status.problems)
    assert m.Checkout.find_implementation(CANADIAN) == "express"
    # A write that reaches the store heals it.
    entry = RawEntry(
        V3, {"feature": "Checkout", "record": raw(canada_gets("oneclick")), "prev": "0-0"}
    )
    tail.on_entries([entry])
    assert m.app.status.live and m.Checkout.find_implementation(CANADIAN) == "oneclick"


def test_reseed_false_never_writes() -> None:
    m = model()
    core = m.app._core
    tail = started(core, reseed=False)
    tail.on_loaded(loaded({}, "0-0", None))
    assert isinstance(tail.next_action(), Read)
    assert m.app.status.diverged == ("Checkout",)


def test_states_this_code_cannot_serve_are_skipped_while_a_good_one_is_held() -> None:
    m = model()
    core = m.app._core
    started(core)
    bad = feats.FeatureState(segments=["Country"], rules={("CA",): feats.Static("teleport")})
    core.apply_entries([RawEntry(V3, {"feature": "Checkout", "record": raw(bad), "prev": V2})])
    assert m.Checkout.explain(CANADIAN).version == V2
    assert "teleport" in m.app.status.problems[-1].message
    oversized = {"feature": "Checkout", "record": raw(None), "prev": V3, "x": "y" * MAX_ENTRY_CHARS}
    core.apply_entries([RawEntry("4000-0", oversized)])
    assert core.head == "4000-0" and m.Checkout.explain(CANADIAN).version == V2
    # With nothing good held the drift is compiled: the default answers and says why.
    fresh = model()
    fresh.app._core.apply_loaded(loaded({"Checkout": (V1, raw(bad))}, V1, "e"))
    evaluation = fresh.Checkout.explain(CANADIAN)
    assert evaluation.implementation == "classic" and "drift" in evaluation.reason


def test_memory_log_reseed_semantics() -> None:
    log = MemoryLog()
    assert log.reseed([("A", V2, raw(None, "A"))], "someone-else") is None
    assert log.reseed([("A", V2, raw(None, "A")), ("B", V3, raw(None, "B"))], None) == 2
    assert log.versions == {"A": V2, "B": V3} and log.epoch is not None
    assert log.reseed([("A", V1, raw(None, "A"))], None) is None  # epoch now set
    assert log.reseed([("A", V1, raw(None, "A"))], log.epoch) == 0  # not older: kept
    written, version = log.write("A", raw(None, "A"), V2)
    assert written and version not in (V1, V2, V3)


@pytest.mark.parametrize("shell", ["sync", "aio"])
async def test_memory_storage_wiped_under_running_apps_is_reseeded(shell: str) -> None:
    if shell == "sync":
        storage = feats.MemoryStorage()
        app = feats.App(storage=storage, block_ms=100)
        checkout, _, _ = declare(app)
        version = app.admin.set_state(checkout, canada_gets("express"), author="a", reason="r")
        with app:
            storage.log.clear()  # the store lost everything
            storage.interrupt()
            poll(lambda: app.status.reseeds == 1 and app.status.live, timeout=10, what="reseed")
            assert storage.log.versions == {"Checkout": version}
            assert checkout.find_implementation(CANADIAN) == "express"
        return
    aio_storage = feats.aio.MemoryStorage()
    aio = feats.aio.App(storage=aio_storage, block_ms=100)
    aio_checkout, _, _ = declare(aio)
    version = await aio.admin.set_state(
        aio_checkout, canada_gets("express"), author="a", reason="r"
    )
    async with aio:
        aio_storage.log.clear()
        await aio_storage.interrupt()
        await apoll(lambda: aio.status.reseeds == 1 and aio.status.live, timeout=10, what="reseed")
        assert aio_storage.log.versions == {"Checkout": version}


def test_backup_documents_validate_and_plan() -> None:
    good: dict[str, Any] = {
        "format": "feats-backup",
        "format_version": 1,
        "features": [
            {
                "feature": "Checkout",
                "version": V2,
                "record": json.loads(raw(canada_gets("express"))),
                "history": [{"version": V1, "record": json.loads(raw(None))}],
            }
        ],
    }
    backup = parse_backup(good)
    items, histories = restore_items(backup)
    assert [(f, v) for f, v, _ in items] == [("Checkout", V2)]
    assert [v for v, _ in histories["Checkout"]] == [V1]
    same = loaded({"Checkout": (V3, raw(canada_gets("express")))}, V3, "e")
    writes, unchanged = write_plan(backup, same, author="a", reason="r")
    assert writes == [] and unchanged == ["Checkout"]
    other = loaded({"Checkout": (V3, "not json")}, V3, "e")
    writes, unchanged = write_plan(backup, other, author="a", reason="r")
    assert [(w.feature, w.expected) for w in writes] == [("Checkout", V3)]
    for broken in (
        {**good, "format_version": 2},
        {**good, "features": [{**good["features"][0], "version": "later"}]},
        {**good, "features": [good["features"][0], good["features"][0]]},
        {**good, "features": [{**good["features"][0], "feature": "Other"}]},
    ):
        with pytest.raises(feats.CodecError):
            parse_backup(broken)


def test_after_an_error_a_store_behind_this_app_is_reloaded() -> None:
    m = model()
    tail = started(m.app._core)
    tail.on_entries([])  # idle: only the epoch is asked for
    idle = tail.next_action()
    assert isinstance(idle, CheckEpoch) and not idle.head
    tail.on_error(feats.StorageError("connection reset"))
    tail.on_waited()
    after_error = tail.next_action()
    assert isinstance(after_error, CheckEpoch) and after_error.head
    tail.on_epoch("e1", V2)  # same epoch, same head: resume reading
    assert isinstance(tail.next_action(), Read)
    tail.on_epoch("e1", V1)  # same epoch, an older head: it lost writes
    assert isinstance(tail.next_action(), Load)


def test_a_version_is_reached_only_once_it_is_served() -> None:
    """Whoever waits for a version (wait_for_version reads the head) finds it compiled and
    swapped in: a full load and a read move the head only after the swap, though both
    breathe on the way (other threads run, a waiter among them)."""
    m = model()
    core = m.app._core
    started(core)  # V2 served
    seen: list[tuple[str, str | None]] = []

    def breathe() -> None:
        seen.append((core.head, m.Checkout.explain(CANADIAN).version))

    core.apply_loaded(loaded({"Checkout": (V3, raw(canada_gets("oneclick")))}, V3, "e1"), breathe)
    assert seen and all(version == V3 for head, version in seen if head == V3), seen
    assert core.head == V3 and m.Checkout.explain(CANADIAN).version == V3
    seen.clear()
    entries = [
        RawEntry(v, {"prev": prev, "feature": "Checkout", "record": raw(canada_gets(impl))})
        for prev, v, impl in (
            (V3, "4000-0", "express"),
            ("4000-0", "5000-0", "oneclick"),
        )
    ]
    assert core.apply_entries(entries, breathe) is False
    assert [head for head, _ in seen] == [V3, V3]  # not moved while the batch was taken
    assert core.head == "5000-0" and m.Checkout.explain(CANADIAN).version == "5000-0"
