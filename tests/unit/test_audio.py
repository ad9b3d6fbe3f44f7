from __future__ import annotations

import os
from pathlib import Path

from subtitled.audio import build_extract_args
from subtitled.media import AudioStream

TRACK = AudioStream(index=3, language="en", title="", channels=6, default=True, avoided=False,
                    start_offset_seconds=0.0)


def test_extracts_the_chosen_track_as_16khz_mono_pcm_to_stdout() -> None:
    args = build_extract_args(Path("/media/-odd: name.mkv"), TRACK)
    assert args == [
        "ffmpeg", "-i", "file:/media/-odd: name.mkv", "-map", "0:3", "-f", "s16le",
        "-ac", "1", "-acodec", "pcm_s16le", "-ar", "16000", "pipe:",
        "-nostdin", "-hide_banner", "-loglevel", "error",
    ]


def test_a_window_seeks_on_the_input_side() -> None:
    args = build_extract_args(Path("/m/a.mkv"), TRACK, start_seconds=95.25, duration_seconds=30)
    assert args[:6] == ["ffmpeg", "-ss", "95.250", "-t", "30.000", "-i"]


def test_a_name_that_is_not_utf8_reaches_ffmpeg_as_its_own_bytes() -> None:
    path = Path(os.fsdecode(b"/media/caf\xe9.mkv"))
    args = build_extract_args(path, TRACK)
    assert os.fsencode(args[2]) == b"file:/media/caf\xe9.mkv"
