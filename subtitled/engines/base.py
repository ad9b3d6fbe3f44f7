"""The one seam every speech-recognition engine sits behind, with typed results."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from subtitled.config import Task


@dataclass(frozen=True)
class Word:
    start_seconds: float
    end_seconds: float
    text: str  # as the model wrote it, usually with its leading space
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    start_seconds: float
    end_seconds: float
    text: str
    words: tuple[Word, ...]
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 1.0


def segment_from_dict(raw: Mapping[str, Any]) -> Segment:
    """A segment as openai-whisper returns it, and as faster-whisper's own dicts and
    dataclasses (through dataclasses.asdict) hold it: the same keys in both engines."""
    words = tuple(
        Word(float(w["start"]), float(w["end"]), str(w["word"]), float(w.get("probability", 1)))
        for w in raw.get("words") or []
    )
    return Segment(
        start_seconds=float(raw["start"]),
        end_seconds=float(raw["end"]),
        text=str(raw["text"]),
        words=words,
        avg_logprob=float(raw.get("avg_logprob", 0.0)),
        no_speech_prob=float(raw.get("no_speech_prob", 0.0)),
        compression_ratio=float(raw.get("compression_ratio", 1.0)),
    )


# Whisper gives a 30 s window 224 tokens (openai-whisper's sample_len; faster-whisper's
# 448 less its prompt). A decode may write twice that density for its audio, and no more:
# a chunk of 5 s has no use for 224 tokens, and a sampled retry on noise or a beam that
# loops runs to the limit, each token a decoder step and then a step of word alignment.
# Full windows keep the engine's own limit; short chunks (short files, the tails of long
# ones, the fallback's hotter tries) stop where real speech could not go on.
TOKENS_PER_SECOND = 448 / 30
MIN_TOKENS = 32


def token_budget(audios: Sequence[np.ndarray], sample_rate: int = 16_000) -> int:
    """The most tokens a batch's decode may write: for its longest chunk, at twice the
    density Whisper allows a full window."""
    seconds = max((len(audio) for audio in audios), default=0) / sample_rate
    return max(MIN_TOKENS, math.ceil(seconds * TOKENS_PER_SECOND))


# A batch's segments, chunk by chunk, and the language each chunk was heard in.
Heard = tuple[list[list[Segment]], list[dict[str, float]]]


class Transcriber(Protocol):
    """A loaded model. Audio is 16 kHz mono float32 of at most 30 s."""

    # Chunks decoded together; halved for the life of the process after a batch runs out
    # of memory (the pipeline does that), so the next batch does not fail the same way.
    batch_size: int

    @property
    def description(self) -> str:
        """Engine, model and device in a few words, for logs."""
        ...

    @property
    def multilingual(self) -> bool: ...

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        """Probability per Whisper language code."""
        ...

    def detect_languages(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """The same for several clips, each heard alone, in one batch: one encoder pass
        over all of their windows."""
        ...

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        """Segments with word timings, in seconds from the start of each chunk; one list
        per chunk, in order. One decode of one window per chunk, all at once (faster on
        any device), at one temperature: beam search (or greedy) at 0, one sample above.
        Whisper's temperature fallback is the caller's (`pipeline.decoder`), which
        decodes a chunk whose text looks wrong again, hotter, within a budget. A `prompt`
        is text the decoder reads as what came before (Whisper's initial prompt): the
        spelling of names it would otherwise guess."""
        ...

    def transcribe_and_hear(self, audios: Sequence[np.ndarray], *, language: str,
                            task: Task, prompt: str | None = None) -> Heard:
        """`transcribe_batch` at temperature 0, and the language each chunk is heard in,
        from the same encoder pass (one more step of the decoder: nearly free)."""
        ...

    def release_memory(self) -> None:
        """Give cached accelerator memory back (after an out-of-memory error)."""
        ...

    def idle(self) -> None:
        """The queue has been idle a while: give the accelerator memory back that the next
        call can take again without loading the model anew."""
        ...

    def gpu_bytes(self) -> int | None:
        """GPU memory held by the model and its cache; None on a CPU or when unknown."""
        ...


# What torch (CUDA and CPU allocators), cuBLAS and CTranslate2 say when memory runs out.
_OUT_OF_MEMORY = ("out of memory", "not enough memory", "can't allocate memory",
                  "cannot allocate memory", "bad_alloc", "cublas_status_alloc_failed")


def is_out_of_memory(error: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError, MemoryError, or the RuntimeError that torch's CPU
    allocator (under RLIMIT_AS, say), cuBLAS and CTranslate2 raise instead."""
    if type(error).__name__ == "OutOfMemoryError" or isinstance(error, MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(sign in text for sign in _OUT_OF_MEMORY)


def sampling_seed(audios: Sequence[np.ndarray], temperature: float) -> int:
    """The seed of a sampled decode (Whisper's fallback above temperature 0), from the
    audio itself: with openai-whisper, the same file gives the same subtitle on every run
    (CTranslate2 cannot be seeded per call: faster_whisper.load)."""
    seed = zlib.crc32(np.float32(temperature).tobytes())
    for audio in audios:
        seed = zlib.crc32(np.ascontiguousarray(audio, dtype=np.float32).tobytes(), seed)
    return seed


# One Whisper window of 16 kHz samples: the most a chunk may hold.
WINDOW_SAMPLES = 30 * 16_000


def one_window(audios: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each chunk cut to one window, to the sample. CTranslate2's word alignment reads
    past the encoder's output for a chunk of more than 3000 frames and corrupts the heap
    (a window that ffmpeg gave 3 samples over 30 s killed the process in glibc);
    openai-whisper hears the samples over a little differently."""
    return [audio[:WINDOW_SAMPLES] for audio in audios]


class Decodes:
    """`transcribe_batch` and `transcribe_and_hear` from one `_decode`, which an engine
    writes once: the language of each window is heard only where it is asked for. A
    sampled decode is seeded from its audio (`sampling_seed`). No chunk reaches `_decode`
    longer than a window (`one_window`)."""

    def _decode(self, audios: Sequence[np.ndarray], language: str, task: Task,
                temperature: float, prompt: str | None, *, hear: bool) -> Heard:
        raise NotImplementedError

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, language: str, task: Task,
                         temperature: float = 0.0, prompt: str | None = None
                         ) -> list[list[Segment]]:
        return self._decode(one_window(audios), language, task, temperature, prompt,
                            hear=False)[0]

    def transcribe_and_hear(self, audios: Sequence[np.ndarray], *, language: str,
                            task: Task, prompt: str | None = None) -> Heard:
        return self._decode(one_window(audios), language, task, 0.0, prompt, hear=True)
