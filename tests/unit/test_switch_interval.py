"""The interpreter's switch interval while an App runs: an asyncio App lowers Python's 5 ms
to 2 ms (a change then reaches a busy loop sooner), puts it back when the last one closes,
and leaves an interval somebody else chose alone; a sync App leaves it alone unless asked."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

import feats
import feats.aio
from feats._breath import PYTHON_SWITCH_INTERVAL, SWITCH_INTERVAL


@pytest.fixture(autouse=True)
def pythons_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(PYTHON_SWITCH_INTERVAL)
    yield
    sys.setswitchinterval(before)


async def test_an_asyncio_app_runs_at_two_milliseconds_and_puts_five_back() -> None:
    first, second = feats.aio.App(), feats.aio.App()
    await first.start()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)
    await second.start()
    await first.aclose()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL)  # the second runs on
    await second.aclose()
    assert sys.getswitchinterval() == pytest.approx(PYTHON_SWITCH_INTERVAL)


async def test_an_interval_somebody_chose_is_left_alone() -> None:
    sys.setswitchinterval(0.01)
    async with feats.aio.App():
        assert sys.getswitchinterval() == pytest.approx(0.01)
    assert sys.getswitchinterval() == pytest.approx(0.01)


async def test_one_changed_while_the_app_ran_is_not_put_back() -> None:
    async with feats.aio.App():
        sys.setswitchinterval(0.003)
    assert sys.getswitchinterval() == pytest.approx(0.003)


async def test_none_leaves_it_alone() -> None:
    async with feats.aio.App(switch_interval=None):
        assert sys.getswitchinterval() == pytest.approx(PYTHON_SWITCH_INTERVAL)


def test_a_sync_app_leaves_it_alone_unless_asked() -> None:
    with feats.App():
        assert sys.getswitchinterval() == pytest.approx(PYTHON_SWITCH_INTERVAL)
    with feats.App(switch_interval=0.001):
        assert sys.getswitchinterval() == pytest.approx(0.001)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_SWITCH_INTERVAL)


@pytest.mark.parametrize("interval", [0, -1, 2.0])
def test_an_interval_out_of_range_is_refused(interval: float) -> None:
    with pytest.raises(ValueError, match="switch_interval is in seconds"):
        feats.aio.App(switch_interval=interval)
