"""A full exposure queue: a sync App's evaluation waits for the writer, unless it is failing."""

from __future__ import annotations

import threading

from feats._exposures import ExposureBuffer
from feats._selectors import UnitQueue


class Owner:
    """What compiles an experiment: its queues live while it does (held weakly)."""


def _full_queue(buffer: ExposureBuffer) -> tuple[Owner, UnitQueue, int]:
    owner = Owner()
    queues, limits = buffer.queues("F", "1-0", ["a"], owner, {"a": 1.0})
    for index in range(limits[0]):
        queues[0].append(f"u{index}")
    return owner, queues[0], limits[0]


def test_a_full_queue_waits_for_the_writer_it_wakes() -> None:
    buffer = ExposureBuffer(capacity=10)
    buffer.wait_for_room = 30.0  # bounded by the writer below, which the wait wakes
    _, queue, limit = _full_queue(buffer)
    taken: list[int] = []

    def writer() -> None:
        assert buffer.wanted.wait(10)
        taken.append(sum(len(units) for _, _, _, units in buffer.take(100)))

    thread = threading.Thread(target=writer)
    thread.start()
    buffer.overflow(queue, "late", limit)
    thread.join(10)
    assert taken == [10]
    assert buffer.dropped == 0 and len(queue) == 1


def test_a_failing_writer_means_drop_at_once() -> None:
    buffer = ExposureBuffer(capacity=10)
    buffer.wait_for_room = 30.0  # would hang the test if it waited
    buffer.writer_ready = False
    _, queue, limit = _full_queue(buffer)
    buffer.overflow(queue, "late", limit)
    assert buffer.dropped == 1 and buffer.wanted.is_set()


def test_an_event_loop_never_waits() -> None:
    buffer = ExposureBuffer(capacity=10)  # wait_for_room 0: feats.aio.App
    _, queue, limit = _full_queue(buffer)
    buffer.overflow(queue, "late", limit)
    assert buffer.dropped == 1 and buffer.writer_ready
