"""CTranslate2 Whisper weights → an openai-whisper checkpoint, in memory.

The model.bin format: version, spec name, revision, then named tensors (rank, shape,
dtype, bytes) and aliases. Tensor names map one-to-one onto openai-whisper's, except that
the fused self-attention q/k/v and cross-attention k/v matrices are split (openai-whisper's
key projections have no bias; CTranslate2 stores zeros there).
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import IO, Any

import numpy as np

from subtitled.errors import ModelError

_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # None: bfloat16
_LAYER = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


def _read(stream: IO[bytes], fmt: str) -> tuple[Any, ...]:
    return struct.unpack(fmt, stream.read(struct.calcsize(fmt)))


def _read_string(stream: IO[bytes]) -> str:
    (length,) = _read(stream, "<H")
    return stream.read(length)[:-1].decode("utf-8")


def read_model_bin(path: Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 model.bin as a numpy array (aliases resolved)."""
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as stream:
        (version,) = _read(stream, "<I")
        spec = _read_string(stream)
        if version < 5 or spec != "WhisperSpec":
            raise ModelError(f"{path} holds a {spec!r} (format {version}), not Whisper weights",
                             stage="model")
        _read(stream, "<I")  # spec revision
        (count,) = _read(stream, "<I")
        for _ in range(count):
            name = _read_string(stream)
            (rank,) = _read(stream, "<B")
            shape = _read(stream, f"<{rank}I")
            (dtype_id,) = _read(stream, "<B")
            (size,) = _read(stream, "<I")
            data = stream.read(size)
            dtype = _DTYPES[dtype_id]
            if dtype is None:  # bfloat16: the high half of a float32
                raw = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
                variables[name] = raw.view(np.float32).reshape(shape)
            else:
                variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        (aliases,) = _read(stream, "<I")
        for _ in range(aliases):
            alias, target = _read_string(stream), _read_string(stream)
            variables[alias] = variables[target]
    return variables


def _layer_count(variables: dict[str, np.ndarray], side: str) -> int:
    found = {int(m.group(2)) for k in variables if (m := _LAYER.match(k)) and m.group(1) == side}
    return max(found) + 1 if found else 0


def dimensions(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """openai-whisper's ModelDimensions, read off the tensor shapes (never assumed)."""
    conv1 = variables["encoder/conv1/weight"]
    embeddings = variables["decoder/embeddings/weight"]
    return {
        "n_mels": int(conv1.shape[1]),
        "n_audio_ctx": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": int(conv1.shape[0]),
        "n_audio_head": int(variables["encoder/num_heads"].reshape(-1)[0]),
        "n_audio_layer": _layer_count(variables, "encoder"),
        "n_vocab": int(embeddings.shape[0]),
        "n_text_ctx": int(variables["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": int(embeddings.shape[1]),
        "n_text_head": int(variables["decoder/num_heads"].reshape(-1)[0]),
        "n_text_layer": _layer_count(variables, "decoder"),
    }


def _linear(out: dict[str, np.ndarray], name: str, variables: dict[str, np.ndarray],
            source: str, parts: tuple[str, ...] = ()) -> None:
    """Copy one linear layer, splitting a fused one into `parts` (equal row blocks)."""
    weight, bias = variables[f"{source}/weight"], variables[f"{source}/bias"]
    if not parts:
        out[f"{name}.weight"], out[f"{name}.bias"] = weight, bias
        return
    weights = np.split(weight, len(parts))
    biases = np.split(bias, len(parts))
    for part, part_weight, part_bias in zip(parts, weights, biases, strict=True):
        out[f"{name}.{part}.weight"] = part_weight
        if part != "key":  # openai-whisper's key projection has no bias
            out[f"{name}.{part}.bias"] = part_bias


def _norm(out: dict[str, np.ndarray], name: str, variables: dict[str, np.ndarray],
          source: str) -> None:
    out[f"{name}.weight"] = variables[f"{source}/gamma"]
    out[f"{name}.bias"] = variables[f"{source}/beta"]


def _block(out: dict[str, np.ndarray], v: dict[str, np.ndarray], side: str, i: int) -> None:
    src, dst = f"{side}/layer_{i}", f"{side}.blocks.{i}"
    _norm(out, f"{dst}.attn_ln", v, f"{src}/self_attention/layer_norm")
    _linear(out, f"{dst}.attn", v, f"{src}/self_attention/linear_0", ("query", "key", "value"))
    _linear(out, f"{dst}.attn.out", v, f"{src}/self_attention/linear_1")
    if side == "decoder":
        _norm(out, f"{dst}.cross_attn_ln", v, f"{src}/attention/layer_norm")
        _linear(out, f"{dst}.cross_attn.query", v, f"{src}/attention/linear_0")
        _linear(out, f"{dst}.cross_attn", v, f"{src}/attention/linear_1", ("key", "value"))
        _linear(out, f"{dst}.cross_attn.out", v, f"{src}/attention/linear_2")
    _norm(out, f"{dst}.mlp_ln", v, f"{src}/ffn/layer_norm")
    _linear(out, f"{dst}.mlp.0", v, f"{src}/ffn/linear_0")
    _linear(out, f"{dst}.mlp.2", v, f"{src}/ffn/linear_1")


def state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """openai-whisper's state dict (numpy arrays) from CTranslate2 variables."""
    dims = dimensions(variables)
    out: dict[str, np.ndarray] = {}
    for conv in ("conv1", "conv2"):
        _linear(out, f"encoder.{conv}", variables, f"encoder/{conv}")
    out["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    for i in range(dims["n_audio_layer"]):
        _block(out, variables, "encoder", i)
    _norm(out, "encoder.ln_post", variables, "encoder/layer_norm")
    out["decoder.token_embedding.weight"] = variables["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    for i in range(dims["n_text_layer"]):
        _block(out, variables, "decoder", i)
    _norm(out, "decoder.ln", variables, "decoder/layer_norm")
    return out


def alignment_heads(folder: Path) -> list[tuple[int, int]]:
    """The (layer, head) pairs config.json names for word timing; empty if it names none."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [(int(layer), int(head)) for layer, head in config.get("alignment_heads", [])]
