"""Nothing may assume base's shape: a random model shaped like large-v3 (128 mel bins,
51,866 tokens) must run the whole command, from language vote to the end, on both engines:
as an openai-whisper checkpoint, and as a CTranslate2 folder written by CTranslate2 itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import torch
from whisper.model import Whisper

from tests.integration.conftest import DATA
from tests.integration.large_v3 import ctranslate2_folder, random_model
from tests.unit.test_engines import LARGE_V3_SHAPE


@pytest.fixture(scope="module")
def random_large_v3() -> Whisper:
    """large-v3's vocabulary and mel bins at a tiny width: the shapes, in a second."""
    return random_model(LARGE_V3_SHAPE)


@pytest.mark.parametrize("form", ["openai checkpoint", "ctranslate2 for openai-whisper",
                                  "ctranslate2 for faster-whisper"])
def test_a_large_v3_shaped_model_runs_end_to_end(
        form: str, random_large_v3: Whisper, tmp_path: Path,
        cli: Callable[..., CompletedProcess[str]]) -> None:
    if form == "openai checkpoint":
        model_path = tmp_path / "random-large-v3.pt"
        torch.save({"dims": vars(LARGE_V3_SHAPE),
                    "model_state_dict": random_large_v3.state_dict()}, model_path)
    else:
        model_path = tmp_path / "random-large-v3"
        ctranslate2_folder(random_large_v3, model_path)
    engine = "faster-whisper" if form.endswith("faster-whisper") else "openai-whisper"
    clip = tmp_path / "jfk.flac"
    clip.symlink_to(DATA / "en_jfk_inaugural.flac")

    result = cli("transcribe", "--model", str(model_path), "--engine", engine,
                 "--device", "cpu", str(clip))

    assert result.returncode == 0, result.stderr
    # Random weights hear nothing, but the command must get all the way through.
    assert result.stdout.strip() == f"{clip}: no speech found, no subtitle written (11.0 s audio)"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
