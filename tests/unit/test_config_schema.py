"""Whatever the schema accepts must work: edge values of every setting that shapes a
transcription (zeros, negatives, bounds and just past them, odd types, codes Whisper lacks),
each alone and drawn together by hypothesis, go through `config_file.parse`; each document
it accepts runs through the whole pipeline with a fake engine, and nothing may raise."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from subtitled.config import (
    CueLimits,
    FilterSettings,
    LanguageSettings,
    OutputSettings,
    QualitySettings,
    SkipSettings,
    SpeechSettings,
)
from subtitled.config_file import parse
from subtitled.errors import ConfigError
from subtitled.pipeline import process_media_file
from tests.unit.fakes import FakeMedia, FakeTranscriber, silence, tone

SECTIONS = {"language": LanguageSettings, "speech": SpeechSettings,
            "filters": FilterSettings, "cues": CueLimits, "output": OutputSettings,
            "skip": SkipSettings, "quality": QualitySettings}
NUMBERS = (0, -1, 1, 2, 0.5, 0.99, 1.5, 5, 7, 10, 29.9, 30, 31, 60, 100, 250, 10_000, 1e9)
SPECIAL: dict[str, tuple[Any, ...]] = {
    "language": ("auto", "en", "de", "ger", "zz", "", 5),
    "allowed": ((), ("en",), ("de", "ja"), ("zz",), ("eng", "ger")),
    "audio_languages": ((), ("en",), ("de",)),
    "template": ("{stem}.{lang}.srt", "{name}.{lang}.srt", "{stem}.srt", "{stem}.{language}",
                 "{lang}/{stem}.srt", "{stem}.{lang", "", "sub.{lang}.{stem}.srt"),
    "marker_file": ("", ".subtitled-skip", "a/b"),
}


def candidates(name: str, default: Any, hint: Any) -> tuple[Any, ...]:
    if name in SPECIAL:
        return SPECIAL[name]
    if isinstance(default, bool):
        return (True, False, "yes")
    if isinstance(default, int | float):
        return (default, *NUMBERS, "5")
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    words = tuple(a for a in typing.get_args(hint) if isinstance(a, str))
    return (default, *words, "something else")


def section(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    hints = typing.get_type_hints(cls, include_extras=True)
    options = {f.name: st.sampled_from(candidates(f.name, f.default, hints[f.name]))
               for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries({}, optional=options)


DOCUMENTS = st.fixed_dictionaries({}, optional={k: section(v) for k, v in SECTIONS.items()})
# Speech, pauses, a loud stretch (German to the fake's detector) and a long silence.
AUDIO = np.concatenate([*(part for _ in range(6) for part in (tone(6.0), silence(1.5))),
                        tone(9.0, level=0.9), silence(12.0), tone(2.0)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS, batch=st.sampled_from([1, 2, 8]))
def test_whatever_the_schema_accepts_runs_through_the_pipeline(
        document: dict[str, Any], batch: int, tmp_path_factory: Any) -> None:
    """Settings together (a low speech threshold with short chunks and tight cues...)."""
    run(document, tmp_path_factory.mktemp("library"), batch)

def run(document: dict[str, Any], folder: Path, batch: int = 2) -> None:
    """Parse; if accepted, transcribe with it: nothing may raise."""
    try:
        accepted = parse({"watch": [str(folder)], **document})
    except ConfigError:
        return
    media = FakeMedia(AUDIO)
    outcome = process_media_file(folder / "Movie.mkv", accepted.transcribe,
                                 media.tools(FakeTranscriber(batch_size=batch)))
    assert outcome.status in ("written", "no-speech", "skipped", "exists"), document


KEYS = [(name, f) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("section_name", "key"), KEYS, ids=[f"{s}.{f.name}" for s, f in KEYS])
def test_every_edge_value_of_each_setting_is_refused_or_works(
        section_name: str, key: dataclasses.Field[Any], tmp_path: Path) -> None:
    hints = typing.get_type_hints(SECTIONS[section_name], include_extras=True)
    for value in candidates(key.name, key.default, hints[key.name]):
        run({section_name: {key.name: value}}, tmp_path)
