"""Nothing may assume base's shape: a random model shaped like large-v3 (128 mel bins,
51,866 tokens) must run the whole command, from language vote to written file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import torch
from whisper.model import Whisper

from tests.integration.conftest import DATA
from tests.unit.test_engines import LARGE_V3_SHAPE


def test_a_large_v3_shaped_model_runs_end_to_end(
        tmp_path: Path, cli: Callable[..., CompletedProcess[str]]) -> None:
    torch.manual_seed(3)
    model = Whisper(LARGE_V3_SHAPE)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
        # Make end-of-text the decoder's favourite so that random weights do not babble
        # 224 tokens at six temperatures: the shapes are exercised either way.
        direction = torch.randn(LARGE_V3_SHAPE.n_text_state)
        model.decoder.ln.weight.zero_()
        model.decoder.ln.bias.copy_(direction)
        model.decoder.token_embedding.weight[50257] = direction * 10
    checkpoint = tmp_path / "random-large-v3.pt"
    torch.save({"dims": vars(LARGE_V3_SHAPE), "model_state_dict": model.state_dict()},
               checkpoint)
    clip = tmp_path / "jfk.flac"
    clip.symlink_to(DATA / "en_jfk_inaugural.flac")

    result = cli("transcribe", "--model", str(checkpoint), "--device", "cpu", str(clip))

    assert result.returncode == 0, result.stderr
    # Random weights hear nothing, but the command must get all the way through.
    assert result.stdout.strip() == f"{clip}: no speech found, no subtitle written (11.0 s audio)"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
