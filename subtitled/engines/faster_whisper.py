"""faster-whisper engine (CTranslate2): float16 on CUDA, int8 on the CPU."""

from __future__ import annotations

import copy
import inspect
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from subtitled import models
from subtitled.config import ModelSettings, Task
from subtitled.engines.base import (
    WINDOW_SAMPLES,
    Decodes,
    Heard,
    Segment,
    segment_from_dict,
    token_budget,
)
from subtitled.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from subtitled.engines.auto import Choice

logger = logging.getLogger(__name__)


class FasterWhisperEngine(Decodes):
    def __init__(self, model: Any, device: str, name: str, beam_size: int,
                 batch_size: int = 1) -> None:
        self.model = model
        self.device = device
        self.name = name
        self.beam_size = beam_size
        self.batch_size = batch_size
        self._unloaded = False

    @property
    def description(self) -> str:
        return f"faster-whisper {self.name} on {self.device} ({self.model.model.compute_type})"

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        return self.detect_languages([audio])[0]

    def detect_languages(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """One encoder pass over every clip's window, then the language step for all."""
        if not self.multilingual:
            return [{"en": 1.0} for _ in audios]
        self._ready()
        # A clip shorter than a window is followed by silence, as Whisper's own
        # detect_language hears it, not by empty frames (which faster-whisper's own pads
        # with): the model hears the two differently, and a borderline clip changes
        # language between them (espeak-ng Korean: Thai, as Whisper hears it, or Finnish).
        window = WINDOW_SAMPLES
        extractor = self.model.feature_extractor
        features = np.stack([
            extractor(np.pad(audio[:window], (0, max(0, window - len(audio)))))
            [..., :extractor.nb_max_frames] for audio in audios])
        return self._languages(self.model.encode(features))

    def _decode(self, audios: Sequence[np.ndarray], language: str, task: Task,
                temperature: float, prompt: str | None, *, hear: bool) -> Heard:
        """One encoder pass and one batched beam search over all of `audios` (one sample
        each above temperature 0), then the word alignment for the whole batch:
        BatchedInferencePipeline's inside, with our chunks and language. Unlike its
        default, the text keeps its timestamp tokens: without them Whisper skips whole
        sentences of a 30 s chunk (WER 0.25 instead of 0.11 on the benchmark programme, at
        the same speed)."""
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import BatchedInferencePipeline, pad_or_trim

        self._ready()
        tokenizer = Tokenizer(self.model.hf_tokenizer, self.multilingual, task=task,
                              language=language)
        features = np.stack([pad_or_trim(self.model.feature_extractor(audio)[..., :-1])
                             for audio in audios])
        metadata = [{"offset": 0.0, "duration": len(audio) / 16_000, "segments": []}
                    for audio in audios]
        model = copy.copy(self.model)
        if temperature > 0:
            # The pipeline passes the temperature but not the sampling that makes it
            # count (CTranslate2 stays greedy with its default top-k of 1).
            model.model = _Sampling(self.model.model, temperature)
        encoded: list[Any] = []  # the encoder's output, kept to hear the language in

        def encode(features: np.ndarray) -> Any:
            encoded.append(self.model.encode(features))
            return encoded[-1]

        model.encode = encode
        # The prompt is the start-of-transcript sequence, after the given text if any,
        # which starts with a space as openai-whisper's does (a word, not a fragment).
        prompt = " " + prompt.strip() if prompt else None
        # (as generate_segment_batched reads it: <|startofprev|> and at most 223 tokens)
        half = self.model.max_length // 2 - 1
        given = 1 + min(len(tokenizer.encode(prompt)), half) if prompt else 0
        budget = min(token_budget(audios),
                     self.model.max_length - len(tokenizer.sot_sequence) - given)
        outputs = BatchedInferencePipeline(model).forward(
            features, tokenizer, metadata,
            self._batch_options(tokenizer, temperature, budget, prompt))
        segments = [_first_word_after_silence([segment_from_dict(raw) for raw in output])
                    for output in outputs]
        if not hear:
            return segments, []
        if not self.multilingual:
            return segments, [{language: 1.0} for _ in audios]
        # The language step on the encoder's output the decode used: no second pass.
        return segments, self._languages(encoded[0])

    def _languages(self, encoded: Any) -> list[dict[str, float]]:
        """CTranslate2's language step for each window of an encoder output."""
        return [{str(token[2:-2]): float(p) for token, p in clip}
                for clip in self.model.model.detect_language(encoded)]

    def _batch_options(self, tokenizer: Any, temperature: float, max_new_tokens: int,
                       prompt: str | None) -> Any:
        from faster_whisper.transcribe import (
            BatchedInferencePipeline,
            TranscriptionOptions,
            get_suppressed_tokens,
        )

        # The punctuation that sticks to a word: faster-whisper's own defaults.
        defaults = inspect.signature(BatchedInferencePipeline.transcribe).parameters
        return TranscriptionOptions(
            beam_size=self.beam_size, best_of=self.beam_size, patience=1.0,
            length_penalty=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
            log_prob_threshold=None, no_speech_threshold=None,
            compression_ratio_threshold=None, condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5, temperatures=[temperature], initial_prompt=prompt,
            prefix=None, suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=False, max_initial_timestamp=0.0, word_timestamps=True,
            prepend_punctuations=defaults["prepend_punctuations"].default,
            append_punctuations=defaults["append_punctuations"].default, multilingual=False,
            max_new_tokens=max_new_tokens, clip_timestamps="0",
            hallucination_silence_threshold=None, hotwords=None)

    def release_memory(self) -> None:
        """CTranslate2 keeps no cache to hand back; the smaller retry is what helps."""

    def idle(self) -> None:
        """On a GPU the weights move to host memory while the queue is idle (a media
        server's GPU is shared with transcoding); `_ready` moves them back, without
        loading the model again."""
        if self.device == "cuda" and not self._unloaded:
            self.model.model.unload_model(to_cpu=True)
            self._unloaded = True

    def _ready(self) -> None:
        if self._unloaded:
            self.model.model.load_model()
            self._unloaded = False

    def gpu_bytes(self) -> int | None:
        """Not known: CTranslate2 does not say what it holds."""
        return None



class _Sampling:
    """A CTranslate2 Whisper model whose `generate` samples one hypothesis at a temperature,
    as faster-whisper's own fallback asks it to (`beam_size=1, sampling_topk=0`)."""

    def __init__(self, model: Any, temperature: float) -> None:
        self._model, self._temperature = model, temperature

    def generate(self, *args: Any, **options: Any) -> Any:
        options.update(beam_size=1, num_hypotheses=1, sampling_topk=0,
                       sampling_temperature=self._temperature)
        return self._model.generate(*args, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _first_word_after_silence(segments: list[Segment]) -> list[Segment]:
    """Whisper's own correction of a first word that the alignment stretched back over the
    silence before it (at most twice the median word length, 1.4 s), per chunk: the batched
    alignment carries the previous chunk's last word time into the next chunk, so its own
    correction never fires there."""
    words = [w for s in segments for w in s.words]
    durations = [w.end_seconds - w.start_seconds for w in words if w.end_seconds > w.start_seconds]
    if not segments or not segments[0].words or not durations:
        return segments
    longest = 2 * min(0.7, float(np.median(durations)))
    first = segments[0].words[0]
    if first.end_seconds - first.start_seconds <= longest:
        return segments
    moved = replace(first, start_seconds=max(0.0, first.end_seconds - longest))
    head = replace(segments[0], start_seconds=moved.start_seconds,
                   words=(moved, *segments[0].words[1:]))
    return [head, *segments[1:]]


def load(settings: ModelSettings, choice: Choice) -> FasterWhisperEngine:
    from ctranslate2 import set_random_seed as ctranslate2_seed
    from faster_whisper import WhisperModel
    from faster_whisper.feature_extractor import FeatureExtractor

    device, compute_type = choice.device, choice.compute_type
    settings = replace(settings, engine=choice.engine)  # a checkpoint or a folder to match
    source = models.resolve(settings)
    if source.kind == "openai-checkpoint":
        raise ConfigError(f"faster-whisper cannot load the .pt checkpoint {source.path}; give it "
                          "a CTranslate2 folder (ct2-transformers-converter makes one)",
                          stage="model")
    started = time.monotonic()
    # CTranslate2 samples (Whisper's fallback) from one generator per worker thread, seeded
    # at its first draw (src/random.cc) and never again, so a sample cannot be seeded from
    # its audio as openai-whisper's is (`sampling_seed`): a fixed seed here at least makes
    # a process repeat its draws, so `subtitled transcribe` gives one file one subtitle.
    ctranslate2_seed(0)
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
    return FasterWhisperEngine(model, device, source.name, choice.beam_size, choice.batch_size)


def _download(name: str, settings: ModelSettings) -> str:
    from faster_whisper.utils import download_model

    try:
        path: str = download_model(name, cache_dir=str(settings.model_dir))
    except Exception as err:
        raise ModelError(f"cannot download '{name}': {err}. "
                         f"{models.missing_model_message(settings)}", stage="model") from err
    return path
