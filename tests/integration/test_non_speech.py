"""Noise, silence and tones must give no subtitle at all, never "Thank you for watching"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import DATA, Transcribe, ffmpeg

GENERATED = {
    "silence and tones": ["-f", "lavfi", "-i",
                          "anullsrc=r=44100:cl=stereo:d=20,aformat=s16",
                          "-f", "lavfi", "-i", "sine=f=440:d=20",
                          "-f", "lavfi", "-i", "sine=f=660:d=20:beep_factor=4",
                          "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1"],
    "chord and noise": ["-f", "lavfi", "-i",
                        "aevalsrc='0.2*sin(2*PI*261*t)+0.2*sin(2*PI*329*t)+"
                        "0.2*sin(2*PI*392*t)*lt(mod(t,1),0.5)':d=40",
                        "-f", "lavfi", "-i", "anoisesrc=d=20:c=pink:a=0.2",
                        "-filter_complex", "[0][1]concat=n=2:v=0:a=1"],
}


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_the_noise_clip_yields_no_subtitle(engine: str, tmp_path: Path,
                                           transcribe: Transcribe) -> None:
    path = tmp_path / "noise.wav"
    path.symlink_to(DATA / "nospeech_noise_leopard.wav")
    outcome = transcribe(path, engine=engine)
    assert outcome.status == "no-speech" and outcome.cue_count == 0
    assert [p.name for p in tmp_path.iterdir()] == ["noise.wav"]


@pytest.mark.parametrize("kind", sorted(GENERATED))
def test_a_minute_without_speech_yields_no_subtitle(kind: str, tmp_path: Path,
                                                    transcribe: Transcribe) -> None:
    path = tmp_path / "quiet.mka"
    ffmpeg(*GENERATED[kind], "-c:a", "flac", str(path))
    outcome = transcribe(path)
    assert outcome.status == "no-speech"
    assert outcome.audio_seconds == pytest.approx(60.0, abs=0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["quiet.mka"]
