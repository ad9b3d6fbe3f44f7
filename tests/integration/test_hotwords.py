"""Hotwords with real weights: names the model misspells come out as given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import srt

from bench import voices
from bench.hotwords import LINE, NAMES
from subtitled.config import ModelSettings, OutputSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.pipeline import process_media_file
from subtitled.wiring import real_tools

pytestmark = pytest.mark.slow

@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_hotwords_change_the_spelling_of_names_the_model_gets_wrong(
        engine: str, tmp_path: Path, model_dir: Path) -> None:
    clip = voices.speak(voices.BY_LANGUAGE["en"], tmp_path / "names.wav", text=LINE)
    settings = TranscribeSettings(
        model=ModelSettings(name="base", engine=engine, model_dir=model_dir,  # type: ignore[arg-type]
                            offline=True),
        output=OutputSettings(overwrite=True))
    transcriber = build_transcriber(settings.model)

    def heard(hotwords: tuple[str, ...]) -> str:
        named = replace(settings, hotwords=hotwords)
        outcome = process_media_file(clip, named, real_tools(named, transcriber))
        assert outcome.output is not None
        return " ".join(c.content for c in srt.parse(outcome.output.read_text()))

    assert "Threnody" not in heard(())  # the model alone: "Freddy Keep"
    assert "Threnody Keep" in heard(NAMES)
