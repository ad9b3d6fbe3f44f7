"""Language identification on real speech."""

from __future__ import annotations

from pathlib import Path

import pytest

from subtitled.evaluation import normalize_text
from tests.integration.conftest import DATA, Transcribe
from tests.integration.test_accuracy import cues_in


@pytest.mark.parametrize("clip", ["de_portal_leopard.wav", "de_werbung_cheetah.wav"])
@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_whole_file_vote_detects_german(clip: str, engine: str, tmp_path: Path,
                                        transcribe: Transcribe) -> None:
    path = tmp_path / clip
    path.symlink_to(DATA / clip)
    outcome = transcribe(path, engine=engine)
    assert outcome.language == "de"
    assert outcome.output == tmp_path / f"{path.stem}.de.srt"


def test_per_chunk_mode_follows_a_switch_from_english_to_german(
        tmp_path: Path, transcribe: Transcribe) -> None:
    path = tmp_path / "license.mp3"
    path.symlink_to(DATA / "mul_en-de_mit_license.mp3")
    outcome = transcribe(path, mode="per-chunk")
    assert outcome.output is not None
    cues = cues_in(outcome.output)
    english = [c for c in cues if c.end_seconds < 30.5]
    german = [c for c in cues if c.start_seconds >= 30.5]
    assert len(english) + len(german) == len(cues)  # nothing straddles the switch
    english_words = set(normalize_text(" ".join(c.text for c in english)))
    german_words = set(normalize_text(" ".join(c.text for c in german)))
    assert {"permission", "hereby", "granted", "software", "copies"} <= english_words
    assert {"software", "die", "genehmigung", "recht", "zu", "verkaufen"} <= german_words
    assert not english_words & {"die", "der", "und", "zu"}
    assert not german_words & {"the", "and", "of", "permission"}


def test_an_allow_list_keeps_detection_inside_it(tmp_path: Path,
                                                 transcribe: Transcribe) -> None:
    path = tmp_path / "portal.wav"
    path.symlink_to(DATA / "de_portal_leopard.wav")
    outcome = transcribe(path, allowed=("en", "fr"))
    assert outcome.language in ("en", "fr")
