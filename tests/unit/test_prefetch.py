from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from subtitled.prefetch import Prefetch


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: list[str] = []

    def numbers() -> Generator[int, None, None]:
        for n in range(50):
            threads.append(threading.current_thread().name)
            yield n

    with Prefetch(numbers(), 4) as ahead:
        assert list(ahead) == list(range(50))
    assert set(threads) == {"subtitled-prefetch"}


def test_an_error_in_the_producer_is_raised_in_the_consumer() -> None:
    def failing() -> Generator[int, None, None]:
        yield 1
        raise OSError("ffmpeg died")

    got = []
    with pytest.raises(OSError, match="ffmpeg died"), Prefetch(failing(), 2) as ahead:
        for item in ahead:
            got.append(item)
    assert got == [1]


def test_a_consumer_that_stops_early_closes_the_producer_and_joins_its_thread() -> None:
    closed = threading.Event()

    def endless() -> Generator[int, None, None]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()  # where a real producer ends its ffmpeg

    ahead = Prefetch(endless(), 3)
    items = iter(ahead)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    ahead.close()
    assert closed.is_set()
    assert not any(t.name == "subtitled-prefetch" for t in threading.enumerate())


def test_production_starts_before_anyone_asks_and_stops_unasked() -> None:
    started = threading.Event()
    closed = threading.Event()

    def counting() -> Generator[int, None, None]:
        started.set()
        try:
            yield from range(1000)
        finally:
            closed.set()

    with Prefetch(counting(), 2):
        assert started.wait(5)  # running while the consumer does something else
    assert closed.is_set()
    assert not any(t.name == "subtitled-prefetch" for t in threading.enumerate())


def test_a_consumer_waiting_for_a_slow_producer_is_called_back_and_may_give_up() -> None:
    calls: list[int] = []

    class GiveUp(Exception):
        pass

    def slow() -> Generator[int, None, None]:
        threading.Event().wait(3)
        yield 1

    def waiting() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise GiveUp

    with pytest.raises(GiveUp), Prefetch(slow(), 1, waiting=waiting) as items:
        list(items)
    assert len(calls) == 2  # left at the second call, before the first item came
