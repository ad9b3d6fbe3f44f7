"""Runs an iterator in a thread of its own, a few items ahead of its consumer, so that audio
extraction and speech detection overlap with the model's work instead of waiting for it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator
from typing import TypeVar, cast

T = TypeVar("T")

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(items: Generator[T, None, None], depth: int) -> Generator[T, None, None]:
    """The items of `items`, produced up to `depth` ahead in a thread. An error in the
    producer is raised in the consumer; when the consumer stops early, the producer is
    stopped, `items` closed (ending any ffmpeg behind it) and the thread joined."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put(_Failed(err))
        finally:
            items.close()

    thread = threading.Thread(target=produce, name="subtitled-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = handoff.get()
            if value is _END:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield cast(T, value)
    finally:
        stop.set()
        thread.join()
