"""Runs an iterator in a thread of its own, a few items ahead of its consumer, so that audio
extraction and speech detection overlap with the language detection and the model's work
instead of waiting for them."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Generic, TypeVar, cast

T = TypeVar("T")

_END = object()
_WAIT_SECONDS = 0.5


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Starts producing `items` at once, up to `depth` ahead. Iterate it (once) for the
    items; an error in the producer is raised there. `close()` (or leaving the `with`
    block) stops the producer, closes `items` (ending any ffmpeg behind it) and joins the
    thread, whether or not anything was consumed."""

    def __init__(self, items: Generator[T, None, None], depth: int,
                 waiting: Callable[[], None] | None = None) -> None:
        # Called every half second while the consumer waits for the next item (a long
        # silence being read): it may beat a heartbeat, or raise to stop waiting.
        self._waiting = waiting
        self._items = items
        self._handoff: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name="subtitled-prefetch",
                                        daemon=True)
        self._thread.start()

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._handoff.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._put(_END)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(_Failed(err))
        finally:
            self._items.close()

    def __iter__(self) -> Iterator[T]:
        while True:
            value = self._next()
            if value is _END:
                return
            if isinstance(value, _Failed):
                raise value.error
            yield cast(T, value)

    def _next(self) -> object:
        while True:
            try:
                return self._handoff.get(timeout=_WAIT_SECONDS)
            except queue.Empty:
                if self._waiting is not None:
                    self._waiting()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
