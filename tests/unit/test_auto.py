"""`auto` settings from the hardware: a table of machines and what each gets, and why."""

from __future__ import annotations

import sys
from dataclasses import replace
from importlib import metadata

import pytest

from subtitled.config import ModelSettings
from subtitled.engines.auto import (
    BATCH_CEILING,
    CPU_BATCH_CEILING,
    Hardware,
    choose,
    probe_hardware,
)
from subtitled.engines.sizing import Budget, known_dimensions
from subtitled.errors import ConfigError

GIB = 2**30
LARGE_V3 = known_dimensions("large-v3")
Types = dict[str, tuple[str, ...]]
CPU_TYPES: Types = {"cpu": ("float32", "int8", "int8_float32")}
AMPERE: Types = {**CPU_TYPES,
                 "cuda": ("float16", "float32", "int8", "int8_float16", "int8_float32")}
PASCAL: Types = {**CPU_TYPES, "cuda": ("float32", "int8", "int8_float32")}


def cpu_box(gib: float) -> Hardware:
    return Hardware(False, False, None, None, Budget(int(gib * GIB), f"MemAvailable {gib} GiB"),
                    CPU_TYPES)


def gpu_box(free_gib: float, types: Types = AMPERE,
            torch_cuda: bool = True) -> Hardware:
    return Hardware(torch_cuda, True, int(free_gib * GIB), "NVIDIA GeForce",
                    Budget(32 * GIB, "MemAvailable 32 GiB"), types)


@pytest.mark.parametrize(
    ("hardware", "engine", "device", "compute_type", "beam"),
    [(cpu_box(16), "faster-whisper", "cpu", "int8", 1),
     (gpu_box(11), "openai-whisper", "cuda", "float16", 5),
     (gpu_box(11, PASCAL, torch_cuda=False), "faster-whisper", "cuda", "int8_float32", 5),
     (gpu_box(11, AMPERE, torch_cuda=False), "faster-whisper", "cuda", "float16", 5)],
    ids=["cpu only", "cuda gpu", "pascal card, cpu-only torch", "gpu, cpu-only torch"])
def test_each_machine_gets_the_engine_precision_and_beam_that_suit_it(
        hardware: Hardware, engine: str, device: str, compute_type: str, beam: int) -> None:
    choice = choose(ModelSettings(), hardware, LARGE_V3)
    assert (choice.engine, choice.device, choice.compute_type, choice.beam_size) == \
        (engine, device, compute_type, beam)
    assert set(choice.reasons) == {"engine", "device", "compute_type", "beam_size",
                                   "batch_size"}


def test_a_pascal_card_gets_int8_not_the_float16_it_cannot_run() -> None:
    settings = ModelSettings(engine="faster-whisper")
    assert choose(settings, gpu_box(5, PASCAL), LARGE_V3).compute_type == "int8_float32"
    with pytest.raises(ConfigError, match="float16 is not supported on this cuda"):
        choose(replace(settings, compute_type="float16"), gpu_box(5, PASCAL), LARGE_V3)


@pytest.mark.parametrize("gib", [4, 8, 16, 24, 64])
def test_the_batch_fits_the_memory_and_grows_with_it(gib: float) -> None:
    choice = choose(ModelSettings(), cpu_box(gib), LARGE_V3)
    assert choice.estimate is not None
    needed = choice.needed_bytes()
    assert needed is not None
    if choice.batch_size > 1:
        assert needed <= gib * GIB
    bigger = choose(ModelSettings(), cpu_box(gib * 2), LARGE_V3)
    assert bigger.batch_size >= choice.batch_size
    assert 1 <= choice.batch_size <= CPU_BATCH_CEILING


def test_a_gpu_with_room_gets_bigger_batches_than_a_cpu_ever_does() -> None:
    small = known_dimensions("base")
    assert choose(ModelSettings(), gpu_box(40), small).batch_size == BATCH_CEILING
    assert choose(ModelSettings(), cpu_box(64), small).batch_size == CPU_BATCH_CEILING


def test_the_old_defaults_would_not_fit_a_16_gib_cpu_box_and_auto_does() -> None:
    old = ModelSettings(engine="openai-whisper", beam_size=5, batch_size=8)
    old_choice = choose(old, cpu_box(16), LARGE_V3)
    assert (old_choice.needed_bytes() or 0) > 16 * GIB
    assert (choose(ModelSettings(), cpu_box(16), LARGE_V3).needed_bytes() or 0) < 16 * GIB


def test_a_12_gib_card_gets_a_batch_that_fits_in_fp16() -> None:
    choice = choose(ModelSettings(), gpu_box(11.5), LARGE_V3)
    assert choice.batch_size >= 1
    assert (choice.needed_bytes() or 0) <= 11.5 * GIB
    assert "free GPU memory" in choice.reasons["batch_size"]


def test_explicit_values_are_kept_and_said_to_be_configured() -> None:
    settings = ModelSettings(engine="openai-whisper", device="cpu", beam_size=3, batch_size=5)
    choice = choose(settings, gpu_box(11), LARGE_V3)
    assert (choice.engine, choice.device, choice.beam_size, choice.batch_size) == \
        ("openai-whisper", "cpu", 3, 5)
    assert choice.reasons["batch_size"] == "as configured"


def test_a_model_of_unknown_size_gets_a_small_batch_and_says_why() -> None:
    choice = choose(ModelSettings(), cpu_box(16), None)
    assert choice.batch_size == 2 and "unknown" in choice.reasons["batch_size"]


def test_even_one_chunk_too_big_for_the_memory_says_to_choose_a_smaller_model() -> None:
    choice = choose(ModelSettings(), cpu_box(0.5), LARGE_V3)
    assert choice.batch_size == 1 and "smaller model" in choice.reasons["batch_size"]


def test_cuda_asked_for_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no usable CUDA GPU"):
        choose(ModelSettings(device="cuda"), cpu_box(16), LARGE_V3)


def test_a_cpu_build_of_torch_is_not_imported_to_look_for_a_gpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cpu")
    monkeypatch.setitem(sys.modules, "torch", None)  # importing it now raises
    assert probe_hardware(ModelSettings(name="base")).torch_cuda is False


@pytest.mark.parametrize("build", ["2.13.0", "2.13.0+cu126", "2.13.0+rocm6.4"])
def test_a_gpu_build_of_torch_is_asked(build: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "version", lambda name: build)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError):
        probe_hardware(ModelSettings(name="base"))
