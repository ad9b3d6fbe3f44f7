"""Audio extraction with the real ffmpeg: bounded blocks, errors in ffmpeg's own words,
no process left behind, and memory that does not grow with the length of the film."""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from subtitled.audio import SAMPLE_RATE_HZ, build_extract_args, stream_pcm
from subtitled.config import SpeechSettings
from subtitled.errors import MediaError
from subtitled.media import AudioStream, probe
from subtitled.speech import SileroSpeechProbabilities, SpeechChunker
from tests.integration.conftest import DATA, Transcribe, ffmpeg


def pcm_blocks(path: Path, **options: object) -> list[np.ndarray]:
    info = probe(path)
    return list(stream_pcm(build_extract_args(path, info.audio), path, **options))  # type: ignore[arg-type]


def test_audio_arrives_as_16khz_mono_blocks_of_bounded_size() -> None:
    path = DATA / "en_jfk_inaugural.flac"
    blocks = pcm_blocks(path, block_samples=SAMPLE_RATE_HZ)
    assert all(len(b) <= SAMPLE_RATE_HZ and b.dtype == np.float32 for b in blocks)
    total = sum(len(b) for b in blocks) / SAMPLE_RATE_HZ
    assert total == pytest.approx(11.0, abs=0.05)
    assert 0.05 < max(float(np.abs(b).max()) for b in blocks) <= 1.0


def test_ffmpeg_failure_carries_its_own_words(tmp_path: Path) -> None:
    path = tmp_path / "a.flac"
    path.symlink_to(DATA / "en_jfk_inaugural.flac")
    missing_track = AudioStream(7, None, "", 1, False, False, 0.0)
    with pytest.raises(MediaError, match=r"ffmpeg exited with \d+: .*(matches no streams|"
                                         r"Stream map)") as raised:
        list(stream_pcm(build_extract_args(path, missing_track), path))
    assert raised.value.stage == "extract" and raised.value.path == path


def test_an_empty_audio_track_is_an_error_even_when_ffmpeg_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "empty-audio.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:d=2", "-f", "lavfi", "-i", "anullsrc",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "flac", "-frames:a", "0", "-t", "2", str(path))
    with pytest.raises(MediaError, match="the audio track decodes to no samples"):
        pcm_blocks(path)


def ffmpeg_children() -> list[int]:
    """Live (not zombie) ffmpeg processes whose parent is this test process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.read_text().split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError):
            continue
        state, parent = fields[0], int(fields[1])
        if parent == os.getpid() and name == "ffmpeg" and state != "Z":
            found.append(int(stat.parent.name))
    return found


def test_stopping_early_leaves_no_ffmpeg_running() -> None:
    path = DATA / "en_jfk_inaugural.flac"
    info = probe(path)
    blocks = stream_pcm(build_extract_args(path, info.audio), path, block_samples=1600)
    next(blocks)
    assert len(ffmpeg_children()) == 1
    blocks.close()
    assert ffmpeg_children() == []


def _peak_bytes_streaming(path: Path) -> tuple[int, float]:
    """Peak Python-side memory while extracting, detecting speech and chunking a file."""
    info = probe(path)
    chunker = SpeechChunker(SileroSpeechProbabilities(), SpeechSettings())
    seconds = 0.0
    tracemalloc.start()
    try:
        for block in stream_pcm(build_extract_args(path, info.audio), path):
            seconds += len(block) / SAMPLE_RATE_HZ
            chunker.feed(block)
        chunker.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, seconds


def test_memory_does_not_grow_with_the_length_of_the_film(tmp_path: Path) -> None:
    speech = str(DATA / "mul_en-de_mit_license.mp3")
    short, long = tmp_path / "short.mka", tmp_path / "long.mka"
    ffmpeg("-stream_loop", "1", "-i", speech, "-ac", "1", "-c:a", "libopus", "-b:a", "16k",
           str(short))
    ffmpeg("-stream_loop", "14", "-i", speech, "-ac", "1", "-c:a", "libopus", "-b:a", "16k",
           str(long))
    short_peak, short_seconds = _peak_bytes_streaming(short)
    long_peak, long_seconds = _peak_bytes_streaming(long)
    assert long_seconds > 7 * short_seconds  # 15 minutes against 2
    assert long_peak <= 1.2 * short_peak, (short_peak, long_peak)


def test_a_vbr_mp3_whose_header_claims_twice_its_length_gets_a_subtitle_and_a_warning(
        tmp_path: Path, transcribe: Transcribe, caplog: pytest.LogCaptureFixture) -> None:
    # 3 s of silence, then speech, as VBR MP3 without the Xing header that states the
    # length: ffprobe estimates it from the first (silent, low-bitrate) frame's bitrate.
    mixed = tmp_path / "mixed.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo", "-i",
           str(DATA / "en_jfk_inaugural.flac"), "-filter_complex",
           "[0:a]atrim=0:3[s];[1:a]aresample=44100,aformat=channel_layouts=stereo[v];"
           "[s][v]concat=n=2:v=0:a=1", str(mixed))
    song = tmp_path / "speech.mp3"
    ffmpeg("-i", str(mixed), "-c:a", "libmp3lame", "-q:a", "2", "-write_xing", "0", str(song))
    stated = probe(song).duration_seconds
    assert stated is not None and stated > 2 * 14.0  # the premise: the header overstates

    with caplog.at_level(logging.WARNING, logger="subtitled.audio"):
        outcome = transcribe(song, engine="faster-whisper", model="tiny.en")
    assert outcome.status == "written" and outcome.output is not None
    assert "fellow" in outcome.output.read_text().lower()
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "subtitled.audio"]
    assert "stated length is wrong" in warning and str(song) in warning


def test_a_window_past_the_end_of_the_audio_is_empty_when_asked_as_a_window() -> None:
    """A language window placed by a stated length longer than the track holds nothing;
    only a whole extraction with nothing in it is an error."""
    path = DATA / "en_jfk_inaugural.flac"  # 11 s
    args = build_extract_args(path, probe(path).audio, start_seconds=30.0,
                              duration_seconds=30.0)
    assert list(stream_pcm(args, path, empty_ok=True)) == []
    with pytest.raises(MediaError, match="decodes to no samples"):
        list(stream_pcm(args, path))
