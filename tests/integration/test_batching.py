"""Batched decoding on real weights: the same words as decoding chunk by chunk, and times
that stay on each chunk's own clock."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import numpy as np
import pytest

from subtitled.engines import Transcriber
from subtitled.evaluation import word_error_rate
from tests.integration.conftest import DATA

CLIPS = ("en_jfk_inaugural.flac", "en_librispeech_quilter_leopard.wav",
         "de_portal_leopard.wav")


def pcm(name: str) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(DATA / name), "-ac", "1",
                          "-ar", "16000", "-f", "f32le", "-"], capture_output=True,
                         check=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_a_batch_says_what_each_chunk_says_alone(
        engine: str, transcriber: Callable[[str, str], Transcriber]) -> None:
    model = transcriber(engine, "base")
    english = [pcm(CLIPS[0]), pcm(CLIPS[1])]
    # The second clip starts after 3 s of silence: its words must not start before it.
    english[1] = np.concatenate([np.zeros(3 * 16_000, dtype=np.float32), english[1]])
    batched = model.transcribe_batch(english, language="en", task="transcribe")
    alone = [model.transcribe_batch([audio], language="en", task="transcribe")[0]
             for audio in english]
    assert len(batched) == 2
    for together, single, audio in zip(batched, alone, english, strict=True):
        text = " ".join(s.text for s in together)
        assert word_error_rate(" ".join(s.text for s in single), text) <= 0.1, text
        words = [w for s in together for w in s.words]
        assert words and all(0 <= w.start_seconds <= w.end_seconds <= len(audio) / 16_000 + 0.5
                             for w in words)
    assert min(w.start_seconds for s in batched[1] for w in s.words) >= 2.5


def test_a_batch_in_german_is_decoded_in_german(
        transcriber: Callable[[str, str], Transcriber]) -> None:
    model = transcriber("faster-whisper", "base")
    first, second = model.transcribe_batch([pcm(CLIPS[2]), pcm(CLIPS[2])[16_000:]],
                                           language="de", task="transcribe")
    text = " ".join(s.text for s in first)
    assert second, "the second chunk of the batch was decoded too"
    assert word_error_rate("Der hinter diesem Portal liegenden Raum wurde als Leichenhalle "
                           "genutzt.", text) <= 0.3, text
