"""JFK, as audio and muxed into a video, on both engines and both offline models."""

from __future__ import annotations

from pathlib import Path

import pytest
import srt

from subtitled.config import CueLimits
from subtitled.cues import Cue
from subtitled.evaluation import readability_problems, reading_speed_share, word_error_rate
from tests.integration.conftest import DATA, JFK_TEXT, Transcribe


def cues_in(path: Path) -> list[Cue]:
    return [Cue(s.start.total_seconds(), s.end.total_seconds(), tuple(s.content.split("\n")))
            for s in srt.parse(path.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
@pytest.mark.parametrize("model", ["base", "tiny.en"])
@pytest.mark.parametrize("source", ["flac", "mkv"])
def test_jfk_is_transcribed_word_for_word_in_readable_cues(
    engine: str, model: str, source: str, media: Path, tmp_path: Path, transcribe: Transcribe
) -> None:
    original = DATA / "en_jfk_inaugural.flac" if source == "flac" else media / "jfk.mkv"
    path = tmp_path / original.name
    path.symlink_to(original)
    outcome = transcribe(path, engine=engine, model=model)
    assert outcome.status == "written"
    assert outcome.output == tmp_path / f"{path.stem}.en.srt"
    assert outcome.language == "en"
    assert outcome.audio_seconds == pytest.approx(11.0, abs=0.1)
    cues = cues_in(outcome.output)
    text = " ".join(" ".join(c.lines) for c in cues)
    assert word_error_rate(JFK_TEXT, text) <= 0.10, text
    limits = CueLimits()
    assert readability_problems(cues, limits) == []
    assert reading_speed_share(cues, limits) == 1.0
    # The first words are spoken at about 0.3 s; the cue must not start late.
    assert cues[0].start_seconds < 0.8
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, outcome.output.name])
