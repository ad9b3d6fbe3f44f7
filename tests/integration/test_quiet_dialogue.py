"""Quiet dialogue with real weights: a line spoken 25 dB under its recorded level, under a
music bed at -20 dBFS (the voice about 19 dB under the music, where silero hears nothing),
is transcribed about as well as the same line at full level over the same bed, and the
music around it gets no cues. The media is built with pydub, as the level work is done.

At full level the line stands a few dB above the bed: found by detection, and the file is
quiet by the bed's measure (a voice little above the sound under it), so the music around
it is looked at again there too, and must still get no cue."""

from __future__ import annotations

from pathlib import Path

import pytest
import srt

from bench.quiet import line_over_music
from subtitled.evaluation import word_error_rate
from tests.integration.conftest import DATA, JFK_TEXT, Transcribe

SPEECH_AT_SECONDS = 10.0


def over_a_bed(path: Path, gain_db: float) -> Path:
    """32 s of music at -20 dBFS with the JFK clip `gain_db` from its own level laid over
    it at 10 s (SPEECH_AT_SECONDS), as bench.quiet mixes it."""
    line_over_music(gain_db, clip=DATA / "en_jfk_inaugural.flac").export(path, format="wav")
    return path


# How far the quiet line's WER may lie above the full line's (0). `base` hears it with
# WER 0.09 to 0.18 ("is not like" for "ask not what"), by engine and by where the line
# is cut (BENCHMARKS.md): not within the 0.1 every time.
WITHIN = 0.2


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_a_line_under_a_music_bed_is_transcribed_and_the_music_gets_no_cues(
        engine: str, tmp_path: Path, transcribe: Transcribe) -> None:
    full = transcribe(over_a_bed(tmp_path / "full.wav", 0.0), engine=engine)
    quiet = transcribe(over_a_bed(tmp_path / "quiet.wav", -25.0), engine=engine)
    assert full.output is not None and "dB above the sound under it" in str(full.quiet)
    assert quiet.status == "written" and quiet.output is not None, quiet
    assert str(quiet.quiet).startswith("no dialogue found, its loudest passages at -")
    assert quiet.second_look_words >= 15
    heard = " ".join(c.content for c in srt.parse(quiet.output.read_text()))
    reference = " ".join(c.content for c in srt.parse(full.output.read_text()))
    assert word_error_rate(JFK_TEXT, heard) <= \
        word_error_rate(JFK_TEXT, reference) + WITHIN, (heard, reference)
    # Every cue over the voice (10.3 to 21 s); none over the music before or after it.
    for output in (full.output, quiet.output):
        cues = list(srt.parse(output.read_text()))
        assert all(c.start.total_seconds() >= SPEECH_AT_SECONDS - 0.5 and
                   c.end.total_seconds() <= 21.5 for c in cues), cues
