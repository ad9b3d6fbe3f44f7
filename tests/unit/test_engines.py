"""Engine seams that need no real weights: device choice, FP16 layout, OOM recognition,
and the CTranslate2 → openai-whisper conversion on a random model of large-v3's shape."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from whisper.model import ModelDimensions, Whisper

from subtitled.engines import is_out_of_memory
from subtitled.engines.base import MIN_TOKENS, token_budget
from subtitled.engines.ct2_weights import dimensions, read_model_bin
from subtitled.engines.openai_whisper import (
    OpenAIWhisperEngine,
    half_precision,
    model_from_ctranslate2,
    split_at_timestamps,
    to_device,
)
from subtitled.errors import ModelError

# large-v3's vocabulary and mel bins, with a tiny width so the test runs in a second.
LARGE_V3_SHAPE = ModelDimensions(n_mels=128, n_audio_ctx=1500, n_audio_state=64,
                                 n_audio_head=4, n_audio_layer=2, n_vocab=51866,
                                 n_text_ctx=448, n_text_state=64, n_text_head=4,
                                 n_text_layer=2)


class OutOfMemoryError(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [(OutOfMemoryError("CUDA out of memory"), True),
     (RuntimeError("CUDA failed: out of memory"), True),
     (RuntimeError("CUDA error: device-side assert triggered"), False),
     (RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: not enough "
                   "memory: you tried to allocate 9437184000 bytes."), True),
     (RuntimeError("std::bad_alloc"), True),
     (RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"), True),
     (MemoryError(), True),
     (ValueError("out of memory"), False)],
)
def test_out_of_memory_is_recognised_by_type_or_message(error: Exception,
                                                        expected: bool) -> None:
    assert is_out_of_memory(error) is expected


class FakeCudaMove(torch.nn.Module):
    """A model on a fake CUDA device: `.to()` records the precision the weights had when
    they were moved (there is no GPU here), or fails like a full card."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.norm = torch.nn.LayerNorm(4)
        self.fail = fail
        self.moved: dict[str, torch.dtype] = {}

    def to(self, *args: object, **kwargs: object) -> FakeCudaMove:
        if self.fail:
            raise RuntimeError("CUDA out of memory. Tried to allocate 3.00 GiB")
        self.moved = {name: p.dtype for name, p in self.named_parameters()}
        return self


def test_the_model_is_halved_before_it_moves_to_the_gpu() -> None:
    model = FakeCudaMove()
    assert to_device(model, "cuda") is model
    assert model.moved["linear.weight"] == torch.float16
    assert model.moved["norm.weight"] == torch.float32  # openai-whisper's LayerNorm is FP32


def test_a_cpu_model_stays_in_fp32() -> None:
    model = FakeCudaMove()
    to_device(model, "cpu")
    assert model.moved["linear.weight"] == torch.float32


def test_a_gpu_too_small_for_the_model_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot move the model to cuda: CUDA out of memory"):
        to_device(FakeCudaMove(fail=True), "cuda")


def test_fp16_keeps_layernorm_in_fp32_and_still_runs() -> None:
    torch.manual_seed(0)
    model = Whisper(LARGE_V3_SHAPE)
    half_precision(model)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(p.dtype == torch.float32 for m in norms for p in m.parameters())
    assert model.encoder.conv1.weight.dtype == torch.float16
    assert model.decoder.token_embedding.weight.dtype == torch.float16
    assert model.encoder.positional_embedding.dtype == torch.float16
    if torch.cuda.is_available():  # pragma: no cover - no GPU on CI
        model = model.cuda()
    mel = torch.zeros(1, 128, 3000, dtype=torch.float16, device=model.device)
    try:
        audio_features = model.embed_audio(mel)
    except RuntimeError as err:  # some CPU builds lack half kernels; the layout is the point
        pytest.skip(f"this torch has no FP16 kernels on {model.device}: {err}")
    assert audio_features.dtype == torch.float16


def _write_ct2(path: Path, variables: dict[str, np.ndarray]) -> None:
    """The CTranslate2 model.bin layout, written independently of the reader under test."""
    def string(text: str) -> bytes:
        data = text.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    dtype_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2,
                 np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    with open(path, "wb") as out:
        out.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3))
        out.write(struct.pack("<I", len(variables)))
        for name, value in variables.items():
            out.write(string(name) + struct.pack("<B", value.ndim))
            out.write(struct.pack(f"<{value.ndim}I", *value.shape))
            out.write(struct.pack("<BI", dtype_ids[value.dtype], value.nbytes))
            out.write(value.tobytes())
        out.write(struct.pack("<I", 1) + string("decoder/projection/weight")
                  + string("decoder/embeddings/weight"))


def _ct2_variables(model: Whisper) -> dict[str, np.ndarray]:
    """What CTranslate2's converter stores for `model`: fused q/k/v with a zero key bias."""
    sd = {k: v.detach().numpy().astype(np.float16) for k, v in model.state_dict().items()}
    v: dict[str, np.ndarray] = {}

    def linear(dst: str, *srcs: str) -> None:
        v[f"{dst}/weight"] = np.concatenate([sd[f"{s}.weight"] for s in srcs])
        v[f"{dst}/bias"] = np.concatenate([
            sd.get(f"{s}.bias", np.zeros(sd[f"{s}.weight"].shape[0], np.float16))
            for s in srcs])

    def norm(dst: str, src: str) -> None:
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    dims = model.dims
    for side, layers, heads in (("encoder", dims.n_audio_layer, dims.n_audio_head),
                                ("decoder", dims.n_text_layer, dims.n_text_head)):
        v[f"{side}/num_heads"] = np.array(heads, dtype=np.int16)
        for i in range(layers):
            s, d = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            norm(f"{d}/self_attention/layer_norm", f"{s}.attn_ln")
            linear(f"{d}/self_attention/linear_0", f"{s}.attn.query", f"{s}.attn.key",
                   f"{s}.attn.value")
            linear(f"{d}/self_attention/linear_1", f"{s}.attn.out")
            if side == "decoder":
                norm(f"{d}/attention/layer_norm", f"{s}.cross_attn_ln")
                linear(f"{d}/attention/linear_0", f"{s}.cross_attn.query")
                linear(f"{d}/attention/linear_1", f"{s}.cross_attn.key",
                       f"{s}.cross_attn.value")
                linear(f"{d}/attention/linear_2", f"{s}.cross_attn.out")
            norm(f"{d}/ffn/layer_norm", f"{s}.mlp_ln")
            linear(f"{d}/ffn/linear_0", f"{s}.mlp.0")
            linear(f"{d}/ffn/linear_1", f"{s}.mlp.2")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"encoder.{conv}")
    v["encoder/position_encodings/encodings"] = sd["encoder.positional_embedding"]
    norm("encoder/layer_norm", "encoder.ln_post")
    v["decoder/embeddings/weight"] = sd["decoder.token_embedding.weight"]
    v["decoder/position_encodings/encodings"] = sd["decoder.positional_embedding"]
    norm("decoder/layer_norm", "decoder.ln")
    return v


def test_ctranslate2_weights_convert_exactly_for_a_large_v3_shaped_model(
        tmp_path: Path) -> None:
    torch.manual_seed(1)
    original = Whisper(LARGE_V3_SHAPE)
    with torch.no_grad():  # small values that survive float16 exactly, so equality is exact
        for parameter in original.parameters():
            parameter.copy_(torch.randn_like(parameter).mul(0.05).half().float())
    _write_ct2(tmp_path / "model.bin", _ct2_variables(original))
    (tmp_path / "config.json").write_text(json.dumps({"alignment_heads": [[1, 0], [1, 3]]}))

    assert dimensions(read_model_bin(tmp_path / "model.bin")) == vars(LARGE_V3_SHAPE)
    converted = model_from_ctranslate2(tmp_path)
    for name, tensor in original.state_dict().items():
        assert torch.equal(converted.state_dict()[name], tensor), name
    assert converted.alignment_heads.to_dense().nonzero().tolist() == [[1, 0], [1, 3]]
    mel = torch.randn(1, 128, 3000)
    tokens = torch.tensor([[50258, 50259, 50360]])
    assert torch.allclose(converted(mel, tokens), original(mel, tokens), atol=1e-5)
    assert converted.is_multilingual and converted.num_languages == 100


class _Tokenizer:
    eot = 100
    timestamp_begin = 200

    def decode(self, tokens: list[int]) -> str:
        return " ".join(f"w{t}" for t in tokens)


class _Result:
    def __init__(self, tokens: list[int]) -> None:
        self.tokens = tokens
        self.avg_logprob, self.no_speech_prob, self.compression_ratio = -0.2, 0.1, 1.3


def test_a_decoded_window_is_cut_where_two_timestamps_meet() -> None:
    # <|0.00|> 1 2 <|1.00|><|1.50|> 3 <|2.40|><|2.40|> 4 (unfinished, runs to the end)
    tokens = [200, 1, 2, 250, 275, 3, 320, 320, 4]
    segments = split_at_timestamps(_Result(tokens), _Tokenizer(), seconds=5.0)
    assert [(s["start"], s["end"], s["text"]) for s in segments] == [
        (0.0, 1.0, "w1 w2"), (1.5, 2.4, "w3"), (2.4, 5.0, "w4")]
    assert all(s["seek"] == 0 and s["avg_logprob"] == -0.2 for s in segments)


def test_a_window_without_timestamps_is_one_segment_and_an_empty_one_none() -> None:
    (segment,) = split_at_timestamps(_Result([5, 6]), _Tokenizer(), seconds=3.0)
    assert (segment["start"], segment["end"]) == (0.0, 3.0)
    assert split_at_timestamps(_Result([200, 250]), _Tokenizer(), seconds=3.0) == []


def test_the_fp16_batch_path_decodes_every_chunk_in_half_precision() -> None:
    """The GPU path (FP16, batched) on whatever device this machine has: a random model
    shaped like large-v3 decodes a batch of two chunks; the mels it sees are FP16."""
    torch.manual_seed(1)
    model = Whisper(LARGE_V3_SHAPE)
    half_precision(model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    engine = OpenAIWhisperEngine(model.to(device).eval(), device, "random", beam_size=2)
    engine.fp16 = True  # what load() sets on CUDA
    seen: list[tuple[int, ...]] = []

    def spy(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        assert inputs[0].dtype == torch.float16
        seen.append(tuple(inputs[0].shape))

    model.encoder.register_forward_pre_hook(spy)
    audios = [np.zeros(16_000 * 3, dtype=np.float32), np.zeros(16_000 * 5, dtype=np.float32)]
    try:
        batch = engine.transcribe_batch(audios, language="en", task="transcribe")
    except RuntimeError as err:  # some CPU builds lack half kernels
        pytest.skip(f"this torch has no FP16 kernels on {device}: {err}")
    assert seen[0] == (2, 128, 3000)  # one encoder pass for the whole batch
    assert len(batch) == 2
    assert all(w.end_seconds <= 5.5 for segments in batch for s in segments for w in s.words)


def test_a_batch_may_write_tokens_for_its_longest_chunk_at_twice_whispers_density() -> None:
    second = np.zeros(16_000, dtype=np.float32)
    assert token_budget([second]) == MIN_TOKENS  # a word or two still fits
    assert token_budget([second, np.zeros(15 * 16_000, dtype=np.float32)]) == 224
    assert token_budget([np.zeros(30 * 16_000, dtype=np.float32)]) == 448


class _Heard(Exception):
    pass


def test_the_windows_heard_are_the_ones_whisper_transcribe_makes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Language detection hears the audio then silence; decoding hears the audio then zeros,
    exactly as `whisper.transcribe` builds its windows (the model hears them differently:
    a short clip's first decode passes Whisper's checks more often the second way)."""
    import tqdm
    import whisper

    monkeypatch.setattr(tqdm.tqdm, "monitor_interval", 0)  # no monitor thread left behind
    model = Whisper(LARGE_V3_SHAPE)
    engine = OpenAIWhisperEngine(model, "cpu", "random", beam_size=1)
    audio = np.random.default_rng(1).normal(0, 0.1, 16_000 * 7).astype(np.float32)
    heard: dict[str, torch.Tensor] = {}

    def detect(mel: torch.Tensor) -> tuple[None, dict[str, float]]:
        heard["detect"] = mel
        return None, {"en": 1.0}

    def decode(mel: torch.Tensor, options: object) -> None:
        heard["decode"] = mel
        raise _Heard

    model.detect_language = detect
    model.decode = decode
    with pytest.raises(_Heard):
        whisper.transcribe(model, audio, fp16=False)
    assert torch.equal(engine._mel(audio), heard["detect"])
    assert torch.equal(engine._mel(audio, decoding=True), heard["decode"])
    assert not heard["decode"][:, 700:].any() and heard["detect"][:, 700:].any()
