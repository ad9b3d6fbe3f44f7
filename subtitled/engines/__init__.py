"""Speech-recognition engines; `build_transcriber` is the one place torch & co. get imported."""

from __future__ import annotations

import logging

from subtitled.config import ModelSettings
from subtitled.engines.base import Segment, Transcriber, Word, is_out_of_memory

__all__ = ["Segment", "Transcriber", "Word", "build_transcriber", "is_out_of_memory"]

logger = logging.getLogger(__name__)


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

        transcriber: Transcriber = faster_whisper.load(settings, choice)
    else:
        from subtitled.engines import openai_whisper

        transcriber = openai_whisper.load(settings, choice)
    # Loading passed the weights through copies (a float16 file, a float32 step) that the
    # heap, which keeps what is freed, would otherwise hold for good: 1.8 GB for large-v3.
    allocator.release_freed_memory()
    return transcriber
