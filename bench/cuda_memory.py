"""GPU memory of openai-whisper large-v3 in FP16, beside the prediction of
`subtitled.engines.sizing`: the peak while loading (halved on the CPU, then moved), the
resident weights, and the peak of a batch of 1, 2, 4 and 8 windows at beam 5 (word timing
included). Prints one markdown table. Needs a CUDA GPU.

    .venv/bin/python -m bench.cuda_memory [--model PATH] [--batches 1,2,4,8] [--beam-size 5]

PATH: a .pt checkpoint or a CTranslate2 folder of large-v3. Without it, a random model of
large-v3's shape: its decoder stops at once, but the first step builds the cross-attention
cache of every beam row all the same, and that is most of a batch's memory.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from subtitled.engines.sizing import Dimensions, MemoryEstimate, estimate

GIB = 2**30
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def speech(seconds: float) -> np.ndarray:
    """A window of looped speech; noise where ffmpeg is missing (the memory is the same)."""
    import whisper

    try:
        clip = whisper.load_audio(str(DATA / "en_jfk_inaugural.flac"))
    except (OSError, RuntimeError):
        clip = np.random.default_rng(0).standard_normal(11 * 16_000).astype(np.float32) / 20
    return np.resize(clip, int(seconds * 16_000)).astype(np.float32)


def load_on_cpu(path: Path | None) -> Any:
    import whisper

    from subtitled.engines.openai_whisper import model_from_ctranslate2

    if path is None:
        from tests.integration.large_v3 import LARGE_V3, random_model

        return random_model(LARGE_V3)
    if path.suffix == ".pt":
        return whisper.load_model(str(path), device="cpu")
    return model_from_ctranslate2(path)


def peaks() -> tuple[float, float]:
    import torch

    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / GIB, torch.cuda.max_memory_reserved() / GIB


def fresh_peak() -> None:
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def row(phase: str, batch: str, measured: tuple[float, float], predicted: int) -> str:
    allocated, reserved = measured
    return (f"| {phase} | {batch} | {allocated:.2f} | {reserved:.2f} | {predicted / GIB:.2f} "
            f"| {reserved * GIB / predicted:.2f}x |")


def measure(path: Path | None, batches: list[int], beam_size: int) -> list[str]:
    import torch

    from subtitled.engines.openai_whisper import OpenAIWhisperEngine, half_precision

    model = load_on_cpu(path)
    dims = Dimensions(**{f.name: int(getattr(model.dims, f.name)) for f in fields(Dimensions)})
    fresh_peak()
    half_precision(model)  # on the CPU: the GPU never holds the float32 weights
    model = model.to("cuda").eval()
    needs: MemoryEstimate = estimate(dims, engine="openai-whisper", device="cuda",
                                     compute_type="float16", beam_size=beam_size)
    rows = [row("load", "-", peaks(), needs.weights_bytes)]
    resident = torch.cuda.memory_allocated() / GIB, torch.cuda.memory_reserved() / GIB
    rows.append(row("resident", "-", resident, needs.weights_bytes))
    engine = OpenAIWhisperEngine(model, "cuda", path.name if path else "random large-v3",
                                 beam_size)
    audio = speech(29.0)
    for batch in batches:
        fresh_peak()
        with torch.no_grad():
            engine.transcribe_batch([audio] * batch, language="en", task="transcribe")
        rows.append(row(f"batch, beam {beam_size}", str(batch), peaks(),
                        needs.total_bytes(batch)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="a .pt or CTranslate2 folder")
    parser.add_argument("--batches", default="1,2,4,8")
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()
    import torch  # heavy: only once the arguments are known

    if not torch.cuda.is_available():
        raise SystemExit("bench.cuda_memory: no CUDA device here (torch.cuda.is_available() "
                         "is False); run it on a machine with an NVIDIA GPU")
    rows = measure(args.model, [int(n) for n in args.batches.split(",")], args.beam_size)
    print(f"openai-whisper FP16 on {torch.cuda.get_device_name()}, torch {torch.__version__}; "
          "predicted: weights for load and resident, total_bytes(batch) for a batch")
    print()
    print("| phase | batch | allocated peak GiB | reserved peak GiB | predicted GiB "
          "| reserved / predicted |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
