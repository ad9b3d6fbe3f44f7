"""How much memory a Whisper model needs at a batch size, and how much this process may use.

The estimate follows what the engines allocate. T = n_audio_ctx (1500 encoder positions),
d = the model's width, L = n_text_layer, K = the beam, a = bytes per activation (4 for
float32, 2 for float16). Peak RSS = the larger of the loading peak and runtime + weights
+ load + batch x per chunk:

- weights: openai-whisper holds every parameter at its precision (4 bytes on the CPU, 2 on
  CUDA). CTranslate2 quantizes every matrix (linear, convolution, embedding) to the compute
  type, int8 with a float32 scale and an int32 compensation per output row, and keeps
  biases, norms and positions in float32 (float16 for the *_float16 types).
- loading: the engines hand back what loading freed (`allocator.release_freed_memory`
  right after the model is built), so a load costs twice, a peak while it runs and a
  residue after. The peak: openai-whisper converting a CTranslate2 folder holds the float16
  file (2 bytes a parameter), a float32 copy of it (4) and the model (4), 10 in all; from an
  openai checkpoint the float16 tensors (2) and the model (4). CTranslate2 holds the
  float16 file (2) beside the weights it makes. On CUDA that is host memory, not the GPU's.
  The residue ("load"), measured after the trim: none for openai-whisper; for CTranslate2
  about 75 MiB and 0.7 bytes a parameter (base 123 MiB, large-v3 1.1 GiB), pages its
  allocator keeps between the weights.
- per chunk, the larger of two phases (the encoder's blocks are free before the decoder):
  encoder: one layer's live activations, 12 tensors of T x d in CTranslate2 (fused QKV,
  heads split and merged, FFN hidden of 4d), 18 in torch (x, norm, q, k, v, attention out
  and its copy, projection, residual, FFN hidden and GELU of 4d); CTranslate2 also holds
  the score matrix n_audio_head x T x T (torch's fused attention never does).
  decoder: the cross-attention K and V of every layer, 2 x L x T x d, cached per beam row by
  openai-whisper (`_beam_task` repeats the audio features K times and its kv-cache hooks
  keep every row's projections), once per chunk by CTranslate2 (beams share the memory
  keys); per row the self-attention cache 2 x L x t x d for the longest text t
  (openai-whisper samples n_text_ctx / 2 + 4 tokens at most, CTranslate2 n_text_ctx) and
  the float32 logits with their log-softmax; openai-whisper's repeated audio features
  T x d per row, CTranslate2's encoder output T x d per chunk.
  Besides: the chunk's audio twice (prefetch queue and batch) and its log-mel frames.
- runtime: the process besides the model and the batch, measured on the CPU of two
  machines (the larger): 520 MiB with torch, 280 MiB with CTranslate2 alone.
  openai-whisper's word-timing pass adds one window with the fused attention switched off
  (timing needs the weights): two float32 score matrices of n_audio_head x T x T. On CUDA
  the budget is the free memory once torch made its context, so the cuBLAS workspace and
  that pass are all.

Calibrated with `tests/integration/test_memory_formula.py`'s measurement on two CPU cores
(tiny.en and base, both engines, beam 1 and 5, batch 2 to 16), before the trim after
loading: 0.97x to 1.25x the peak; the loading terms were measured again with the trim
(base and large-v3's shape). The longest text is counted, which errs high with random
weights (they stop at once): large-v3's shape, faster-whisper int8, batch 14, peaked at
10.4 GiB against 13.8 predicted (1.32x), before the trim.
"""

from __future__ import annotations

import os
import pickle
import re
import resource
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Literal

Engine = Literal["openai-whisper", "faster-whisper"]
Device = Literal["cpu", "cuda"]
Source = Literal["ctranslate2", "checkpoint"]
_MIB = 2**20
_GIB = 2**30
# What the process holds besides the model and the batch, on the CPU: importing torch and
# whisper alone is 290 MiB, CTranslate2 and faster-whisper 65 MiB; onnxruntime, the VAD
# session, tokenizers and the math libraries' per-thread buffers the rest. The buffers
# differ between machines of the same size: the CI machine measured 200 MiB (openai-whisper)
# and 150 MiB (faster-whisper) more than the development machine at 6976c97, and these are
# the larger figures.
_RUNTIME_CPU = {"openai-whisper": 520 * _MIB, "faster-whisper": 280 * _MIB}
_CUBLAS_WORKSPACE = 64 * _MIB
_CT2_RESIDUE = 75 * _MIB
# Live T x d activations in one encoder layer (see the module docstring).
_ENCODER_TENSORS = {"openai-whisper": 18, "faster-whisper": 12}
_AUDIO_BYTES = 30 * 16_000 * 4  # one 30 s chunk of float32 samples
_UNLIMITED = 2**60  # cgroup v1 writes "no limit" as the largest page-aligned long


@dataclass(frozen=True)
class Dimensions:
    """openai-whisper's ModelDimensions, as a plain value."""

    n_mels: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_vocab: int
    n_audio_ctx: int = 1500
    n_text_ctx: int = 448

    @property
    def parameter_count(self) -> int:
        """What whisper.model.Whisper's parameters() add up to (its encoder positions are
        a buffer, not a parameter)."""
        return self.matrix_parameters + self.vector_parameters

    @property
    def matrix_parameters(self) -> int:
        """Weights of linear layers, convolutions and the token embedding."""
        audio, text = self.n_audio_state, self.n_text_state
        convolutions = 3 * self.n_mels * audio + 3 * audio * audio
        return (convolutions + self.n_audio_layer * 12 * audio * audio
                + self.n_vocab * text + self.n_text_layer * 16 * text * text)

    @property
    def vector_parameters(self) -> int:
        """Biases, norms and the decoder's learned positions."""
        audio, text = self.n_audio_state, self.n_text_state
        return (2 * audio + self.n_audio_layer * 12 * audio + 2 * audio
                + self.n_text_ctx * text + self.n_text_layer * 17 * text + 2 * text)


def _sizes(mels: int, width: int, heads: int, layers: int, vocab: int,
           text_layers: int | None = None) -> Dimensions:
    return Dimensions(mels, width, heads, layers, width, heads,
                      layers if text_layers is None else text_layers, vocab)


# openai-whisper's published checkpoints (whisper/__init__.py _MODELS, their "dims").
_KNOWN = {
    "tiny.en": _sizes(80, 384, 6, 4, 51864), "tiny": _sizes(80, 384, 6, 4, 51865),
    "base.en": _sizes(80, 512, 8, 6, 51864), "base": _sizes(80, 512, 8, 6, 51865),
    "small.en": _sizes(80, 768, 12, 12, 51864), "small": _sizes(80, 768, 12, 12, 51865),
    "medium.en": _sizes(80, 1024, 16, 24, 51864), "medium": _sizes(80, 1024, 16, 24, 51865),
    "large-v1": _sizes(80, 1280, 20, 32, 51865), "large-v2": _sizes(80, 1280, 20, 32, 51865),
    "large-v3": _sizes(128, 1280, 20, 32, 51866), "large": _sizes(128, 1280, 20, 32, 51866),
    "large-v3-turbo": _sizes(128, 1280, 20, 32, 51866, text_layers=4),
    "turbo": _sizes(128, 1280, 20, 32, 51866, text_layers=4),
}


def known_dimensions(name: str) -> Dimensions | None:
    """The dimensions of an official model by name; also as the hub and converted folders
    spell it ("faster-whisper-large-v3", "base-ct2", "tiny.en.pt")."""
    key = name.strip().lower().removesuffix(".pt").removesuffix("-ct2")
    for prefix in ("faster-whisper-", "whisper-"):
        key = key.removeprefix(prefix)
    return _KNOWN.get(key)


# --- dimensions from a file ------------------------------------------------------------

# CTranslate2's DataType ids, as model.bin stores them, and their struct codes.
_CT2_SCALARS = {0: "f", 1: "b", 2: "h", 3: "i", 4: "e"}


def _read(stream: IO[bytes], fmt: str) -> tuple[int | float, ...]:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise ValueError("model.bin ends early")
    return struct.unpack(fmt, data)


def _string(stream: IO[bytes]) -> str:
    (length,) = _read(stream, "<H")
    return stream.read(int(length))[:-1].decode("utf-8")


def _ct2_tensors(path: Path) -> tuple[dict[str, tuple[int, ...]], dict[str, float]]:
    """Every variable's shape, and the values of the scalars, from model.bin's header: the
    data of the tensors is skipped with a seek (large-v3's file is 3 GB)."""
    shapes: dict[str, tuple[int, ...]] = {}
    scalars: dict[str, float] = {}
    with open(path, "rb") as stream:
        _read(stream, "<I")  # format version
        if _string(stream) != "WhisperSpec":
            raise ValueError("not Whisper weights")
        _read(stream, "<I")  # spec revision
        (count,) = _read(stream, "<I")
        for _ in range(int(count)):
            name = _string(stream)
            (rank,) = _read(stream, "<B")
            shapes[name] = tuple(int(n) for n in _read(stream, f"<{int(rank)}I"))
            (dtype, size) = _read(stream, "<BI")
            if not shapes[name] and int(dtype) in _CT2_SCALARS:
                scalars[name] = float(_read(stream, f"<{_CT2_SCALARS[int(dtype)]}")[0])
            else:
                stream.seek(int(size), os.SEEK_CUR)
    return shapes, scalars


def _layers(shapes: dict[str, tuple[int, ...]], side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")  # not "encoder/layer_norm"
    found = {int(m.group(1)) for name in shapes if (m := pattern.match(name))}
    return max(found) + 1 if found else 0


def _ct2_dimensions(path: Path) -> Dimensions:
    shapes, scalars = _ct2_tensors(path)
    conv1 = shapes["encoder/conv1/weight"]
    embeddings = shapes["decoder/embeddings/weight"]
    return Dimensions(
        n_mels=conv1[1], n_audio_state=conv1[0],
        n_audio_head=int(scalars["encoder/num_heads"]), n_audio_layer=_layers(shapes, "encoder"),
        n_text_state=embeddings[1], n_text_head=int(scalars["decoder/num_heads"]),
        n_text_layer=_layers(shapes, "decoder"), n_vocab=embeddings[0],
        n_audio_ctx=shapes["encoder/position_encodings/encodings"][0],
        n_text_ctx=shapes["decoder/position_encodings/encodings"][0])


def _checkpoint_dimensions(path: Path) -> Dimensions:
    # torch only here: a .pt is the one form that needs it, and mmap reads the pickled
    # header without the weights.
    import torch

    dims = torch.load(path, map_location="cpu", mmap=True, weights_only=True)["dims"]
    return Dimensions(**{f.name: int(dims[f.name]) for f in fields(Dimensions)})


def dimensions_of(path: Path) -> Dimensions | None:
    """The dimensions of a CTranslate2 folder (or its model.bin) or of an openai-whisper
    .pt checkpoint; None when the file is missing or says nothing we can read."""
    try:
        if path.is_dir():
            return _ct2_dimensions(path / "model.bin")
        if path.name == "model.bin":
            return _ct2_dimensions(path)
        if path.suffix == ".pt":
            return _checkpoint_dimensions(path)
    except (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError, struct.error,
            pickle.UnpicklingError):
        return None
    return None


# --- the estimate ----------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int  # the resident model
    per_item_bytes: int  # what one more chunk in a batch adds at its peak
    runtime_bytes: int  # the process before the model: interpreter, libraries, VAD, buffers
    load_bytes: int = 0  # what loading leaves in the heap beyond the weights (see above)
    loading_bytes: int = 0  # the process's peak while the model loads, all of it

    def decoding_bytes(self, batch_size: int) -> int:
        """The process's peak while it decodes batches of this size."""
        return (self.runtime_bytes + self.weights_bytes + self.load_bytes
                + batch_size * self.per_item_bytes)

    def total_bytes(self, batch_size: int) -> int:
        """The process's peak: while loading, or decoding a batch, whichever is higher."""
        return max(self.loading_bytes, self.decoding_bytes(batch_size))


# CTranslate2 compute type → (bytes per matrix weight, bytes per other float, activation).
_CT2_TYPES = {
    "int8": (1, 4, 4), "int8_float32": (1, 4, 4), "int8_float16": (1, 2, 2),
    "int8_bfloat16": (1, 2, 2), "int16": (2, 4, 4), "float16": (2, 2, 2),
    "bfloat16": (2, 2, 2), "float32": (4, 4, 4),
}
_TORCH_TYPES = {"float16": 2, "float32": 4}


def estimate(dims: Dimensions, *, engine: Engine, device: Device, compute_type: str,
             beam_size: int, source: Source = "ctranslate2") -> MemoryEstimate:
    """What `subtitled transcribe` holds at its peak with this model and settings. `source`
    is the form openai-whisper loads (a CTranslate2 folder, or an openai .pt checkpoint)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, not {beam_size}")
    if engine == "openai-whisper":
        return _torch_estimate(dims, device, _torch_bytes(compute_type), beam_size, source)
    return _ct2_estimate(dims, device, compute_type, beam_size)


def _torch_bytes(compute_type: str) -> int:
    if compute_type not in _TORCH_TYPES:
        raise ValueError(f"openai-whisper runs in float16 or float32, not {compute_type!r}")
    return _TORCH_TYPES[compute_type]


def _torch_estimate(dims: Dimensions, device: Device, act: int, beam: int,
                    source: Source) -> MemoryEstimate:
    weights = (dims.parameter_count + dims.n_audio_ctx * dims.n_audio_state) * act
    held = 10 if source == "ctranslate2" else 6  # bytes a parameter while loading
    rows = beam * (_cross_cache(dims, act) + dims.n_audio_ctx * dims.n_audio_state * act
                   + _self_cache(dims, act, dims.n_text_ctx // 2 + 4) + _logits(dims))
    per_item = max(_encoder(dims, act, "openai-whisper"), rows) + _chunk_inputs(dims)
    # The word-timing pass: one window with the fused attention switched off, holding its
    # score matrix and softmax at float32.
    timing = 2 * dims.n_audio_head * dims.n_audio_ctx**2 * 4
    runtime = timing + (_RUNTIME_CPU["openai-whisper"] if device == "cpu" else _CUBLAS_WORKSPACE)
    loading = runtime + (weights if device == "cuda" else held * dims.parameter_count)
    return MemoryEstimate(weights, per_item, runtime, 0, loading)


def _ct2_estimate(dims: Dimensions, device: Device, compute_type: str, beam: int
                  ) -> MemoryEstimate:
    if compute_type not in _CT2_TYPES:
        raise ValueError(f"unknown CTranslate2 compute type {compute_type!r} "
                         f"(known: {', '.join(_CT2_TYPES)})")
    matrix, other, act = _CT2_TYPES[compute_type]
    rows = _output_rows(dims)
    row_extras = 8 * rows if matrix == 1 else 0  # int8: float32 scale, int32 compensation
    encoder_positions = dims.n_audio_ctx * dims.n_audio_state
    weights = dims.matrix_parameters * matrix + row_extras + \
        (dims.vector_parameters + encoder_positions) * other
    decoder = (_cross_cache(dims, act) + encoder_positions * act
               + beam * (_self_cache(dims, act, dims.n_text_ctx) + _logits(dims)))
    per_item = max(_encoder(dims, act, "faster-whisper"), decoder) + _chunk_inputs(dims)
    runtime = _RUNTIME_CPU["faster-whisper"] if device == "cpu" else _CUBLAS_WORKSPACE
    host = device == "cpu"
    loading = runtime + weights + (2 * dims.parameter_count if host else 0)
    load = _CT2_RESIDUE + int(0.7 * dims.parameter_count) if host else 0
    return MemoryEstimate(weights, per_item, runtime, load, loading)


def _output_rows(dims: Dimensions) -> int:
    """Output rows of every quantized matrix: one scale each."""
    return (2 * dims.n_audio_state + 9 * dims.n_audio_layer * dims.n_audio_state
            + 13 * dims.n_text_layer * dims.n_text_state + dims.n_vocab)


def _encoder(dims: Dimensions, act: int, engine: Engine) -> int:
    """One window through the encoder's widest layer."""
    scores = dims.n_audio_head * dims.n_audio_ctx**2 * act if engine == "faster-whisper" else 0
    return scores + _ENCODER_TENSORS[engine] * dims.n_audio_ctx * dims.n_audio_state * act


def _cross_cache(dims: Dimensions, act: int) -> int:
    return 2 * dims.n_text_layer * dims.n_audio_ctx * dims.n_text_state * act


def _self_cache(dims: Dimensions, act: int, tokens: int) -> int:
    return 2 * dims.n_text_layer * tokens * dims.n_text_state * act


def _logits(dims: Dimensions) -> int:
    return 2 * dims.n_vocab * 4  # float32 logits and their log-softmax


def _chunk_inputs(dims: Dimensions) -> int:
    return 2 * _AUDIO_BYTES + dims.n_mels * 2 * dims.n_audio_ctx * 4


def batch_size_for(budget_bytes: int, estimate: MemoryEstimate, *, ceiling: int = 16,
                   headroom: float = 0.85) -> int:
    """The largest batch in 1..ceiling whose decoding fits in headroom x budget; 1 when
    none does (the caller warns). The loading peak is not sized here: it is measured, it
    passes before the first batch, and no batch size changes it."""
    allowed = headroom * budget_bytes
    fitting = [n for n in range(1, ceiling + 1) if estimate.decoding_bytes(n) <= allowed]
    return max(fitting, default=1)


# --- the budget ------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    bytes: int  # the total this process may hold (its current RSS plus the headroom)
    limited_by: str  # one line for `subtitled doctor`


def _gib(n: int) -> str:
    return f"{n / _GIB:.1f} GiB"


def _kib_field(text: str, key: str) -> int | None:
    """A "Key:   123 kB" line of /proc/meminfo or /proc/self/status, in bytes."""
    for line in text.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    if text is None or text.strip() in ("", "max"):
        return None
    try:
        return int(text.split()[0])
    except ValueError:
        return None


def _stat_field(folder: Path, key: str) -> int:
    for line in (_read_text(folder / "memory.stat") or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _cgroup_paths(proc: Path, cgroup_root: Path) -> list[tuple[str, Path, str]]:
    """(limit file, its usage file, stat key of the reclaimable page cache) candidates for
    this process's cgroup: v1 memory controller first, then v2."""
    found = []
    for line in (_read_text(proc / "self" / "cgroup") or "").splitlines():
        number, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            found.append(("v1", cgroup_root / "memory", path))
        elif number == "0" and controllers == "":
            found += [("v2", cgroup_root, path), ("v2", cgroup_root / "unified", path)]
    return [(kind, base, path) for kind, base, path in found if base.is_dir()]


def _ancestors(base: Path, path: str) -> list[Path]:
    """The cgroup's folder and every folder above it, up to the mount."""
    parts = [p for p in path.split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


_FILES = {"v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
          "v2": ("memory.max", "memory.current", "inactive_file")}


def _cgroup_headroom(proc: Path, cgroup_root: Path) -> tuple[int, str] | None:
    """The least room left under any memory limit over this process: limit - (usage -
    inactive page cache), which the kernel reclaims before it kills; with the limit."""
    best: tuple[int, str] | None = None
    for kind, base, path in _cgroup_paths(proc, cgroup_root):
        limit_file, usage_file, cache_key = _FILES[kind]
        for folder in _ancestors(base, path):
            limit = _read_int(folder / limit_file)
            if limit is None or limit >= _UNLIMITED:
                continue
            usage = _read_int(folder / usage_file) or 0
            room = max(0, limit - max(0, usage - _stat_field(folder, cache_key)))
            if best is None or room < best[0]:
                best = (room, f"cgroup memory limit {_gib(limit)} ({limit_file})")
    return best


def _rlimit_headroom(status: str) -> tuple[int, str] | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    size = _kib_field(status, "VmSize")
    if soft == resource.RLIM_INFINITY or soft < 0 or soft >= _UNLIMITED or size is None:
        return None
    return max(0, soft - size), f"RLIMIT_AS {_gib(soft)}"


def host_budget(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
                ) -> Budget:
    """The most this process may hold: its RSS plus the least headroom among MemAvailable,
    its cgroup's memory limits (and their ancestors') and RLIMIT_AS."""
    status = _read_text(proc / "self" / "status") or ""
    rss = _kib_field(status, "VmRSS") or 0
    candidates = []
    available = _kib_field(_read_text(proc / "meminfo") or "", "MemAvailable")
    if available is not None:
        candidates.append((available, f"MemAvailable {_gib(available)}"))
    for found in (_cgroup_headroom(proc, cgroup_root), _rlimit_headroom(status)):
        if found is not None:
            candidates.append(found)
    if not candidates:
        return _physical_memory()
    room, why = min(candidates)
    return Budget(rss + room, why)


def _physical_memory() -> Budget:
    """Where /proc says nothing (not Linux): the machine's memory, or nothing known."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return Budget(0, "memory size unknown")
    return Budget(total, f"physical memory {_gib(total)}")


