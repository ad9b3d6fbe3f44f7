from __future__ import annotations

import html
from pathlib import Path

import pytest
import srt

from subtitled.cues import Cue
from subtitled.errors import ConfigError
from subtitled.subtitles import (
    OutputError,
    count_cues,
    output_path,
    output_paths,
    render,
    render_lrc,
    render_srt,
    write_atomic,
)


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


def test_each_format_takes_the_templates_name_and_lrc_the_songs() -> None:
    paths = output_paths(Path("/films/Movie (2020).mkv"), "en", "{stem}.{lang}.srt",
                         ("vtt", "srt", "ass", "lrc"))
    assert [p.name for p in paths] == ["Movie (2020).en.vtt", "Movie (2020).en.srt",
                                       "Movie (2020).en.ass", "Movie (2020).lrc"]
    forced = output_paths(Path("/films/a.mkv"), "en", "{stem}.{lang}.forced.srt", ("vtt",))
    assert forced == [Path("/films/a.en.forced.vtt")]
    # Templates written before formats existed keep naming their SRT as they did.
    assert output_paths(Path("/films/a.mkv"), "en", "{stem}.{lang}.SRT", ("srt", "vtt")) == \
        [Path("/films/a.en.SRT"), Path("/films/a.en.vtt")]
    assert output_paths(Path("/films/a.mkv"), "en", "{stem}.{lang}", ("srt", "ass")) == \
        [Path("/films/a.en"), Path("/films/a.en.ass")]


CUES = [Cue(0.5, 2.0, ("Hello,", "world.")), Cue(2.08, 4.0, ("Ünïcödé 字幕",)),
        Cue(62.25, 64.5, ("Tom & Jerry <3",))]


def _seconds(value: str) -> float:
    hours, minutes, seconds = value.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_webvtt_and_ass_hold_the_srts_cues() -> None:
    """Parsed by real parsers (webvtt-py, pysubs2): the same times and text as the SRT."""
    import pysubs2
    import webvtt

    expected = [(p.start.total_seconds(), p.end.total_seconds(), p.content)
                for p in srt.parse(render(Path("a.srt"), CUES))]
    vtt = render(Path("a.en.vtt"), CUES)
    assert vtt.startswith("WEBVTT")
    # webvtt-py leaves the character references (&amp;) as written; a player reads them.
    assert [(_seconds(c.start), _seconds(c.end), html.unescape(c.text))
            for c in webvtt.from_string(vtt).captions] == expected
    ass = pysubs2.SSAFile.from_string(render(Path("a.en.ass"), CUES), format_="ass")
    assert [(e.start / 1000, e.end / 1000, e.plaintext) for e in ass] == expected
    assert count_cues(Path("a.en.vtt"), vtt) == count_cues(Path("a.en.ass"), ass.to_string(
        "ass")) == 3
    # Braces would be ASS override blocks, and are dropped from WebVTT by its writer.
    braced = [Cue(1.0, 2.0, ("{laughs}",))]
    vtt_braced = webvtt.from_string(render(Path("a.vtt"), braced)).captions
    assert [c.text for c in vtt_braced] == ["(laughs)"]
    assert pysubs2.SSAFile.from_string(render(Path("a.ass"), braced))[0].plaintext == \
        "(laughs)"


def test_lrc_holds_each_cue_at_its_start_and_clears_it_in_a_pause() -> None:
    import pylrc

    text = render(Path("Song.lrc"), CUES)
    lines = [(line.time, line.text) for line in pylrc.parse(text)]
    assert lines == [(0.5, "Hello, world."), (2.08, "Ünïcödé 字幕"), (4.0, ""),
                     (62.25, "Tom & Jerry <3"), (64.5, "")]
    assert count_cues(Path("Song.lrc"), text) == 3
    # Past an hour the minutes count on, as LRC players read them.
    assert render_lrc([Cue(3725.5, 3727.0, ("late",))]).splitlines() == \
        ["[62:05.50]late", "[62:07.00]"]


def test_a_crashs_temp_files_of_every_format_are_removed_and_nothing_else(
        tmp_path: Path) -> None:
    from subtitled.service.daemon import remove_temp_subtitles

    names = ["Movie.en.srt.tmp", "Movie.en.vtt.tmp", "Movie.de.ass.tmp", "Movie.lrc.tmp",
             "Movie.mkv.tmp", "Other.en.srt.tmp", "Movie.en.srt"]
    for name in names:
        (tmp_path / name).write_text("x")
    remove_temp_subtitles(tmp_path / "Movie.mkv")
    assert sorted(p.name for p in tmp_path.iterdir()) == \
        ["Movie.en.srt", "Movie.mkv.tmp", "Other.en.srt.tmp"]
