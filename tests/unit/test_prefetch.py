from __future__ import annotations

import threading
from collections.abc import Generator

import pytest

from subtitled.prefetch import prefetched


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: list[str] = []

    def numbers() -> Generator[int, None, None]:
        for n in range(50):
            threads.append(threading.current_thread().name)
            yield n

    assert list(prefetched(numbers(), 4)) == list(range(50))
    assert set(threads) == {"subtitled-prefetch"}


def test_an_error_in_the_producer_is_raised_in_the_consumer() -> None:
    def failing() -> Generator[int, None, None]:
        yield 1
        raise OSError("ffmpeg died")

    got = []
    with pytest.raises(OSError, match="ffmpeg died"):
        for item in prefetched(failing(), 2):
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

    items = prefetched(endless(), 3)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.is_set()
    assert not any(t.name == "subtitled-prefetch" for t in threading.enumerate())
