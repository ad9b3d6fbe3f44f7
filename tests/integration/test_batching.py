"""Batched decoding on real weights: the same words as decoding chunk by chunk, and times
that stay on each chunk's own clock."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from subtitled.engines import Transcriber
from subtitled.engines.base import WINDOW_SAMPLES, token_budget
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
def test_a_chunk_a_few_samples_over_a_window_is_heard_as_the_window(
        engine: str, transcriber: Callable[[str, str], Transcriber]) -> None:
    """ffmpeg's -t can give 3 samples more than 30 s; CTranslate2's alignment of such a
    chunk read past its encoder output (a heap corruption that killed the process)."""
    model = transcriber(engine, "base")
    window = np.resize(pcm(CLIPS[0]), WINDOW_SAMPLES)  # JFK, looped to fill the window
    over = np.concatenate([window, window[:3]])
    heard = [[(w.text, w.start_seconds, w.end_seconds) for s in found for w in s.words]
             for found in model.transcribe_batch([over, window], language="en",
                                                 task="transcribe")]
    assert heard[0] == heard[1] and heard[0]  # (the two rows of a batch: the same words)
    assert max(end for _, _, end in heard[0]) <= 30.0


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


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_a_short_chunk_writes_no_more_tokens_than_its_length_allows(
        engine: str, transcriber: Callable[[str, str], Transcriber],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sampled try on noise is what runs to the engine's limit: a 5 s chunk stops at
    its budget, and a full window keeps the engine's own limit."""
    model = transcriber(engine, "base")
    limits: list[int] = []  # new tokens the engine was allowed, per decode
    written: list[int] = []  # the longest text it wrote, per decode
    inner: Any = getattr(model, "model")  # noqa: B009 - both engines have one
    if engine == "faster-whisper":
        ct2 = inner.model

        class Watched:
            def generate(self, features: Any, prompts: Any, **options: Any) -> Any:
                limits.append(options["max_length"] - len(prompts[0]))
                results = ct2.generate(features, prompts, **options)
                written.append(max(len(r.sequences_ids[0]) for r in results))
                return results

            def __getattr__(self, name: str) -> Any:
                return getattr(ct2, name)

        monkeypatch.setattr(inner, "model", Watched())
    else:
        from whisper.decoding import DecodingTask

        run = DecodingTask.run

        def watched(task: Any, mel: Any) -> Any:
            limits.append(task.sample_len)
            results = run(task, mel)
            written.append(max(len(r.tokens) for r in results))
            return results

        monkeypatch.setattr(DecodingTask, "run", watched)
    noise = np.random.default_rng(1).normal(0, 0.3, 5 * 16_000).astype(np.float32)
    model.transcribe_batch([noise], language="te", task="transcribe", temperature=1.0)
    assert limits == [token_budget([noise])] == [75]
    assert written[0] <= 75
    window = np.zeros(30 * 16_000, dtype=np.float32)
    model.transcribe_batch([window[:16_000], window], language="en", task="transcribe")
    assert limits[1] == (224 if engine == "openai-whisper" else 448 - 3)


def test_a_sampled_decode_is_the_same_on_every_run(
        transcriber: Callable[[str, str], Transcriber]) -> None:
    """Whisper's fallback samples; seeded from the audio, one file gives one subtitle
    however often openai-whisper decodes it (CTranslate2 keeps a generator per thread
    that cannot be seeded again: faster_whisper.load), and the process's own random
    numbers are left as they were."""
    import torch

    model = transcriber("openai-whisper", "base")
    noise = np.random.default_rng(2).normal(0, 0.3, 8 * 16_000).astype(np.float32)

    def sampled() -> list[tuple[str, float]]:
        segments = model.transcribe_batch([noise], language="te", task="transcribe",
                                          temperature=1.0)[0]
        return [(w.text, w.start_seconds) for s in segments for w in s.words]

    torch.manual_seed(7)
    first = sampled()
    after = torch.rand(1)
    assert first and sampled() == sampled() == first
    torch.manual_seed(7)
    assert torch.equal(torch.rand(1), after)


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_clips_heard_in_one_batch_are_heard_as_each_alone(
        engine: str, transcriber: Callable[[str, str], Transcriber]) -> None:
    model = transcriber(engine, "base")
    clips = [pcm(name) for name in (
        "de_portal_leopard.wav", "en_jfk_inaugural.flac", "fr_consulat_leopard.wav")]
    together = model.detect_languages(clips)
    for clip, heard in zip(clips, together, strict=True):
        alone = model.detect_language(clip)
        assert max(alone, key=alone.__getitem__) == max(heard, key=heard.__getitem__)
        assert all(abs(alone[code] - heard[code]) < 0.02 for code in alone)


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_a_decode_hears_each_chunk_s_language_in_its_own_encoder_pass(
        engine: str, transcriber: Callable[[str, str], Transcriber]) -> None:
    """The language the decode hears is the one detection hears, and the words are the
    decode's own."""
    model = transcriber(engine, "base")
    clips = [pcm("de_portal_leopard.wav"), pcm("fr_consulat_leopard.wav")]
    segments, heard = model.transcribe_and_hear(clips, language="en", task="transcribe")
    assert segments == model.transcribe_batch(clips, language="en", task="transcribe")
    assert [max(h, key=h.__getitem__) for h in heard] == ["de", "fr"]
