"""faster-whisper engine (CTranslate2): float16 on CUDA, int8 on the CPU."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from subtitled import models
from subtitled.config import ModelSettings, Task
from subtitled.engines import resolve_device
from subtitled.engines.base import Segment, Word
from subtitled.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)


class FasterWhisperEngine:
    def __init__(self, model: Any, device: str, name: str, beam_size: int) -> None:
        self.model = model
        self.device = device
        self.name = name
        self.beam_size = beam_size

    @property
    def description(self) -> str:
        return f"faster-whisper {self.name} on {self.device} ({self.model.model.compute_type})"

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        if not self.multilingual:
            return {"en": 1.0}
        _, _, probabilities = self.model.detect_language(audio)
        return {str(code): float(p) for code, p in probabilities}

    def transcribe(self, audio: np.ndarray, *, language: str, task: Task) -> list[Segment]:
        segments, _ = self.model.transcribe(
            audio,
            language=language,
            task=task,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=False,  # our own VAD already cut the audio into speech
        )
        return [_segment(raw) for raw in segments]

    def release_memory(self) -> None:
        """CTranslate2 keeps no cache to hand back; the smaller retry is what helps."""


def _segment(raw: Any) -> Segment:
    words = tuple(
        Word(float(w.start), float(w.end), str(w.word), float(w.probability))
        for w in (raw.words or [])
    )
    return Segment(
        start_seconds=float(raw.start),
        end_seconds=float(raw.end),
        text=str(raw.text),
        words=words,
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
    )


def load(settings: ModelSettings) -> FasterWhisperEngine:
    import ctranslate2
    from faster_whisper import WhisperModel
    from faster_whisper.feature_extractor import FeatureExtractor

    device = resolve_device(settings.device, lambda: ctranslate2.get_cuda_device_count() > 0)
    compute_type = "float16" if device == "cuda" else "int8"
    source = models.resolve(settings)
    if source.kind == "openai-checkpoint":
        raise ConfigError(f"faster-whisper cannot load the .pt checkpoint {source.path}; give it "
                          "a CTranslate2 folder (ct2-transformers-converter makes one)",
                          stage="model")
    started = time.monotonic()
    try:
        path = str(source.path) if source.path else _download(source.name, settings)
        model = WhisperModel(path, device=device, compute_type=compute_type,
                             cpu_threads=settings.cpu_threads)
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelError(f"cannot load model '{source.name}': {err}", stage="model") from err
    if model.feature_extractor.mel_filters.shape[0] != model.model.n_mels:
        # A folder without preprocessor_config.json gets 80 mel bins by default; large-v3
        # needs 128, which the weights themselves tell us.
        model.feature_extractor = FeatureExtractor(feature_size=model.model.n_mels)
    logger.info("loaded faster-whisper %s on %s (%s) in %.1f s", source.name, device,
                compute_type, time.monotonic() - started)
    return FasterWhisperEngine(model, device, source.name, settings.beam_size)


def _download(name: str, settings: ModelSettings) -> str:
    from faster_whisper.utils import download_model

    try:
        path: str = download_model(name, cache_dir=str(settings.model_dir))
    except Exception as err:
        raise ModelError(f"cannot download '{name}': {err}. "
                         f"{models.missing_model_message(settings)}", stage="model") from err
    return path
