from __future__ import annotations

from pathlib import Path

import pytest
import srt

from subtitled.cues import Cue
from subtitled.errors import ConfigError
from subtitled.subtitles import OutputError, output_path, render_srt, write_atomic


@pytest.mark.parametrize(
    ("template", "expected"),
    [("{stem}.{lang}.srt", "Movie (2020).en.srt"),
     ("{stem}.{lang}.forced.srt", "Movie (2020).en.forced.srt"),
     ("{name}.{lang}.srt", "Movie (2020).mkv.en.srt")],
)
def test_names_follow_plex_and_jellyfin(template: str, expected: str) -> None:
    assert output_path(Path("/films/Movie (2020).mkv"), "en", template) == \
        Path("/films") / expected


@pytest.mark.parametrize("template", ["{stem}/{lang}.srt", "{nope}.srt", "", "{0}.srt"])
def test_bad_templates_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError):
        output_path(Path("/films/a.mkv"), "en", template)


def test_srt_round_trips() -> None:
    cues = [Cue(0.5, 2.0, ("Hello,", "world.")), Cue(62.25, 64.0, ("Ünïcödé 字幕",))]
    parsed = list(srt.parse(render_srt(cues)))
    assert [(p.index, p.start.total_seconds(), p.end.total_seconds(), p.content)
            for p in parsed] == [(1, 0.5, 2.0, "Hello,\nworld."), (2, 62.25, 64.0, "Ünïcödé 字幕")]


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.en.srt"
    target.write_text("old")
    write_atomic(target, "new text ✓")
    assert target.read_text(encoding="utf-8") == "new text ✓"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.en.srt"]


def test_a_folder_that_cannot_be_written_is_an_output_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(OutputError, match=r"cannot write a\.en\.srt"):
        write_atomic(not_a_folder / "a.en.srt", "text")
