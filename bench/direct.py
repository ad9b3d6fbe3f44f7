"""The tools a user would otherwise run, called the way their documentation shows, writing
one SRT per file for the comparison to score. Run in its own process by bench.compare.

    python -m bench.direct faster-whisper|faster-whisper-batched MODEL_DIR OUT_DIR FILES...
    python -m bench.direct convert MODEL_DIR CHECKPOINT.pt   (weights for the whisper CLI)
"""

from __future__ import annotations

import datetime
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import srt


def has_cuda() -> bool:
    import ctranslate2

    return bool(ctranslate2.get_cuda_device_count() > 0)


def faster_whisper(kind: str, model_dir: Path, out_dir: Path, files: list[Path]) -> None:
    """Sequential: WhisperModel.transcribe(vad_filter=True), beam 5 (its defaults otherwise).
    Batched: BatchedInferencePipeline.transcribe(batch_size=8), its defaults otherwise."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    cuda = has_cuda()
    model = WhisperModel(str(model_dir), device="cuda" if cuda else "cpu",
                         compute_type="float16" if cuda else "int8")
    for file in files:
        if kind == "faster-whisper-batched":
            segments, info = BatchedInferencePipeline(model).transcribe(str(file), batch_size=8)
        else:
            segments, info = model.transcribe(str(file), vad_filter=True, beam_size=5)
        write(out_dir / file.stem, list(segments), info.language)


def write(stem: Path, segments: list[Any], language: str) -> None:
    subtitles = [srt.Subtitle(i, datetime.timedelta(seconds=s.start),
                              datetime.timedelta(seconds=s.end), s.text.strip())
                 for i, s in enumerate(segments, start=1)]
    stem.with_suffix(".srt").write_text(srt.compose(subtitles), encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps({"language": language}))


def convert(model_dir: Path, checkpoint: Path) -> None:
    """The CTranslate2 weights as an openai-whisper checkpoint, so that the whisper CLI runs
    the very same model (converted the way our openai-whisper engine does it)."""
    import torch

    from subtitled.engines.openai_whisper import model_from_ctranslate2

    model = model_from_ctranslate2(model_dir)
    state = {k: v for k, v in model.state_dict().items() if k != "alignment_heads"}
    partial = checkpoint.with_suffix(".part")
    torch.save({"dims": asdict(model.dims), "model_state_dict": state}, partial)
    partial.replace(checkpoint)


def main(argv: list[str]) -> None:
    kind, model_dir = argv[0], Path(argv[1])
    if kind == "convert":
        convert(model_dir, Path(argv[2]))
    else:
        faster_whisper(kind, model_dir, Path(argv[2]), [Path(a) for a in argv[3:]])


if __name__ == "__main__":
    main(sys.argv[1:])
