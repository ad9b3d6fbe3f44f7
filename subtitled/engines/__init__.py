"""Speech-recognition engines; `build_transcriber` is the one place torch & co. get imported."""

from __future__ import annotations

from collections.abc import Callable

from subtitled.config import ModelSettings
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory
from subtitled.errors import ConfigError

__all__ = ["Segment", "Transcriber", "Word", "build_transcriber", "is_out_of_memory",
           "resolve_device"]


def resolve_device(requested: str, cuda_available: Callable[[], bool]) -> str:
    """'auto' → cuda when a GPU is usable, else cpu; 'cuda' without a GPU is an error."""
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    if requested == "cuda" and not cuda_available():
        raise ConfigError("device 'cuda' was asked for but no usable CUDA GPU was found",
                          stage="model")
    return requested


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
    if settings.engine == "faster-whisper":
        from subtitled.engines import faster_whisper

        return faster_whisper.load(settings)
    from subtitled.engines import openai_whisper

    return openai_whisper.load(settings)
