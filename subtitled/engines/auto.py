"""The `auto` settings: engine, device, compute type, beam and batch size chosen from the
hardware this process runs on, each with the reason `subtitled doctor` shows.

`choose` is pure (the hardware comes in as a value); `probe_hardware` is the one place
that asks torch and CTranslate2 what the machine has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from subtitled import models
from subtitled.config import EngineName, ModelSettings
from subtitled.engines.sizing import (
    Budget,
    Dimensions,
    MemoryEstimate,
    batch_size_for,
    dimensions_of,
    estimate,
    host_budget,
    known_dimensions,
)
from subtitled.errors import ConfigError, ModelError

logger = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]

# Fastest first. float16 needs a GPU with fast FP16 (compute capability 7.0+; Pascal cards,
# the classic Plex transcoders, do not have it and CTranslate2 refuses it there).
_CUDA_TYPES = ("float16", "int8_float16", "int8_float32", "int8", "float32")
_CPU_TYPES = ("int8", "int8_float32", "float32")
_GPU_BEAM, _CPU_BEAM = 5, 1
# Without dimensions (a model file we cannot read) or a memory figure: a batch that fits
# large-v3 on an 8 GB card and on a CPU with 8 GB.
_FALLBACK_BATCH = 2
BATCH_CEILING = 16
# On a CPU a batch of 16 decoded the benchmark programme no faster than 8 (12.9 against
# 13.0 s on 2 cores, BENCHMARKS.md) for 700 MiB more: the encoder is compute-bound there.
CPU_BATCH_CEILING = 8


@dataclass(frozen=True)
class Hardware:
    """What the machine offers this process."""

    torch_cuda: bool  # torch can use a CUDA GPU (openai-whisper)
    ctranslate2_cuda: bool  # CTranslate2 can (faster-whisper)
    gpu_free_bytes: int | None  # free memory on the GPU, when one is used and known
    gpu_name: str | None
    host: Budget
    # CTranslate2's compute types per device ("cpu", "cuda"); empty where not known.
    compute_types: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The settings the model runs with, each with why."""

    engine: EngineName
    device: Device
    compute_type: str  # "float16"/"float32" for openai-whisper
    beam_size: int
    batch_size: int
    reasons: dict[str, str]
    estimate: MemoryEstimate | None
    budget: Budget | None

    def needed_bytes(self) -> int | None:
        return None if self.estimate is None else self.estimate.total_bytes(self.batch_size)


def choose(settings: ModelSettings, hardware: Hardware, dims: Dimensions | None) -> Choice:
    """Resolve every `auto` in `settings`; explicit values are kept, and checked."""
    reasons: dict[str, str] = {}
    engine = _engine(settings, hardware, reasons)
    device = _device(settings, engine, hardware, reasons)
    compute = _compute_type(settings, engine, device, hardware, reasons)
    beam = _beam(settings, device, reasons)
    needs = None if dims is None else estimate(dims, engine=engine, device=device,
                                                 compute_type=compute, beam_size=beam)
    budget = _budget(device, hardware)
    batch = _batch(settings, device, needs, budget, reasons)
    return Choice(engine, device, compute, beam, batch, reasons, needs, budget)


def _engine(settings: ModelSettings, hardware: Hardware, reasons: dict[str, str]
            ) -> EngineName:
    if settings.engine != "auto":
        reasons["engine"] = "as configured"
        return settings.engine
    if hardware.torch_cuda and settings.device != "cpu":
        reasons["engine"] = "a CUDA GPU: openai-whisper in FP16, the resident reference model"
        return "openai-whisper"
    if hardware.ctranslate2_cuda and settings.device != "cpu":
        reasons["engine"] = "a CUDA GPU that this torch build cannot use: faster-whisper"
        return "faster-whisper"
    reasons["engine"] = "no CUDA GPU: faster-whisper (int8) is several times faster on a CPU"
    return "faster-whisper"


def _device(settings: ModelSettings, engine: EngineName, hardware: Hardware,
            reasons: dict[str, str]) -> Device:
    cuda = hardware.torch_cuda if engine == "openai-whisper" else hardware.ctranslate2_cuda
    if settings.device == "cuda" and not cuda:
        raise ConfigError(f"device 'cuda' was asked for but {engine} finds no usable CUDA GPU",
                          stage="model")
    if settings.device != "auto":
        reasons["device"] = "as configured"
        return settings.device
    reasons["device"] = f"CUDA GPU {hardware.gpu_name or ''}".strip() if cuda else "no CUDA GPU"
    return "cuda" if cuda else "cpu"


def _compute_type(settings: ModelSettings, engine: EngineName, device: Device,
                  hardware: Hardware, reasons: dict[str, str]) -> str:
    if engine == "openai-whisper":
        if settings.compute_type != "auto":
            logger.warning("model.compute_type %s applies to faster-whisper only; "
                           "openai-whisper runs in %s", settings.compute_type,
                           "FP16" if device == "cuda" else "FP32")
        reasons["compute_type"] = "openai-whisper: FP16 on CUDA, FP32 on a CPU"
        return "float16" if device == "cuda" else "float32"
    supported = hardware.compute_types.get(device, ())
    if settings.compute_type != "auto":
        if supported and settings.compute_type not in supported and \
                settings.compute_type != "int8":  # "int8" is accepted everywhere
            raise ConfigError(f"model.compute_type {settings.compute_type} is not supported on "
                              f"this {device} (supported: {', '.join(sorted(supported))})",
                              stage="model")
        reasons["compute_type"] = "as configured"
        return settings.compute_type
    preferred = _CUDA_TYPES if device == "cuda" else _CPU_TYPES
    chosen = next((t for t in preferred if t in supported), preferred[-1] if supported else
                  preferred[0])
    reasons["compute_type"] = f"the fastest this {device} supports" if supported else \
        "the usual for this device (support unknown)"
    return chosen


def _beam(settings: ModelSettings, device: Device, reasons: dict[str, str]) -> int:
    if settings.beam_size != "auto":
        reasons["beam_size"] = "as configured"
        return settings.beam_size
    if device == "cuda":
        reasons["beam_size"] = "a GPU: the beam search costs little there"
        return _GPU_BEAM
    reasons["beam_size"] = "a CPU: greedy decoding, as accurate here and far faster " \
                           "(BENCHMARKS.md)"
    return _CPU_BEAM


def _budget(device: Device, hardware: Hardware) -> Budget | None:
    if device == "cpu":
        return hardware.host
    if hardware.gpu_free_bytes is None:
        return None
    return Budget(hardware.gpu_free_bytes,
                  f"free GPU memory {hardware.gpu_free_bytes / 2**30:.1f} GiB")


def _batch(settings: ModelSettings, device: Device, needs: MemoryEstimate | None,
           budget: Budget | None, reasons: dict[str, str]) -> int:
    if settings.batch_size != "auto":
        reasons["batch_size"] = "as configured"
        if needs is not None and budget is not None and \
                needs.total_bytes(settings.batch_size) > budget.bytes:
            logger.warning("batch_size %d needs about %.1f GiB, more than the %s",
                           settings.batch_size, needs.total_bytes(settings.batch_size) / 2**30,
                           budget.limited_by)
        return settings.batch_size
    if needs is None or budget is None:
        reasons["batch_size"] = "the model's size or the memory is unknown: a small batch"
        return _FALLBACK_BATCH
    ceiling = CPU_BATCH_CEILING if device == "cpu" else BATCH_CEILING
    batch = batch_size_for(budget.bytes, needs, ceiling=ceiling)
    reasons["batch_size"] = f"{needs.total_bytes(batch) / 2**30:.1f} GiB needed, within the " \
                            f"{budget.limited_by}"
    if needs.total_bytes(1) > budget.bytes:
        reasons["batch_size"] = f"even one chunk needs {needs.total_bytes(1) / 2**30:.1f} GiB, " \
                                f"more than the {budget.limited_by}: choose a smaller model"
    return batch


def model_dimensions(settings: ModelSettings) -> Dimensions | None:
    """The model's dimensions from its name, or read from a local file; None if unknown."""
    try:
        source = models.resolve(settings)
    except ModelError:
        source = None
    if source is not None and source.path is not None:
        found = dimensions_of(source.path)
        if found is not None:
            return found
    return known_dimensions(Path(settings.name).name)


def probe_hardware(settings: ModelSettings) -> Hardware:
    """Ask torch and CTranslate2 what this machine has. Heavy imports, on purpose only here
    and in the engines: `subtitled --help` must not pay for them."""
    import ctranslate2

    ct2_cuda = settings.device != "cpu" and ctranslate2.get_cuda_device_count() > 0
    torch_cuda, free, name = False, None, None
    if settings.device != "cpu" and settings.engine != "faster-whisper" and \
            _torch_may_see_a_gpu():
        import torch

        torch_cuda = bool(torch.cuda.is_available())
        if torch_cuda:
            free = int(torch.cuda.mem_get_info()[0])
            name = str(torch.cuda.get_device_name())
    types = {"cpu": _supported(ctranslate2, "cpu")}
    if ct2_cuda:
        types["cuda"] = _supported(ctranslate2, "cuda")
    return Hardware(torch_cuda, ct2_cuda, free, name, host_budget(), types)


def _torch_may_see_a_gpu() -> bool:
    """False for a CPU build of torch ("2.13.0+cpu"), which cannot see one: importing it
    only to ask cost a second and 190 MiB of every run on a CPU machine (BENCHMARKS.md).
    A CUDA or ROCm build is asked."""
    from importlib import metadata, util

    try:
        return "+cpu" not in metadata.version("torch")
    except metadata.PackageNotFoundError:  # importable without its metadata: ask it
        return util.find_spec("torch") is not None


def _supported(ctranslate2: object, device: str) -> tuple[str, ...]:
    try:
        found = ctranslate2.get_supported_compute_types(device)  # type: ignore[attr-defined]
    except (RuntimeError, ValueError):
        return ()
    return tuple(sorted(str(t) for t in found))
