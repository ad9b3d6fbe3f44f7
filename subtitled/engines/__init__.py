"""Speech-recognition engines; `build_transcriber` is the one place torch & co. get imported."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from subtitled.config import ModelSettings
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory

__all__ = ["Segment", "Transcriber", "Word", "build_transcriber", "is_out_of_memory",
           "on_a_thread_that_ends"]

logger = logging.getLogger(__name__)


_T = TypeVar("_T")


def on_a_thread_that_ends(load: Callable[[], _T]) -> _T:
    """`load()` on a thread of its own, its exception raised here. A thread that has run
    torch's parallel (OpenMP) work keeps a team of workers for as long as it lives, and
    while the main thread keeps one, the engine threads' decoding ran 45 % slower on two
    CPU cores (3.4 s against 4.9 s for the same window; BENCHMARKS.md). Loading runs such
    work; done on the main thread, it would tax every engine call after it. bench runs the
    engines' own calls the same way."""
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(load())
        except BaseException as err:  # noqa: BLE001 - raised again in the caller
            failure.append(err)

    # A daemon thread: Ctrl-C during a long load (a download) ends the process at once.
    thread = threading.Thread(target=run, name="subtitled-load", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def build_transcriber(settings: ModelSettings) -> Transcriber:
    """Resolve, load and keep the model resident. Raises ModelError/ConfigError."""
    # torch, whisper and faster_whisper are imported only here (and in the engine
    # modules this calls), so `subtitled --help` and config checks start instantly.
    import tqdm

    from subtitled import allocator

    # Before the engine starts its threads: they then share one heap that keeps what an
    # encoder pass frees for the next one.
    allocator.keep_freed_memory()

    # Both engines make (disabled) tqdm bars, and tqdm would start a monitor thread that
    # outlives them; a daemon should own all of its threads.
    tqdm.tqdm.monitor_interval = 0
    from subtitled.engines.auto import choose, model_dimensions, probe_hardware

    choice = choose(settings, probe_hardware(settings), model_dimensions(settings))
    logger.info("engine %s on %s (%s), beam %d, batch %d%s", choice.engine, choice.device,
                choice.compute_type, choice.beam_size, choice.batch_size,
                "".join(f"; {key}: {why}" for key, why in choice.reasons.items()
                        if why != "as configured"))
    if choice.engine == "faster-whisper":
        from subtitled.engines import faster_whisper

        transcriber: Transcriber = on_a_thread_that_ends(
            lambda: faster_whisper.load(settings, choice))
    else:
        from subtitled.engines import openai_whisper

        transcriber = on_a_thread_that_ends(lambda: openai_whisper.load(settings, choice))
    # Loading passed the weights through copies (a float16 file, a float32 step) that the
    # heap, which keeps what is freed, would otherwise hold for good: 1.8 GB for large-v3.
    allocator.release_freed_memory()
    return transcriber
