"""Builds the pipeline's real collaborators: ffprobe, ffmpeg, silero-vad and the writer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from subtitled import audio, media, subtitles
from subtitled.config import TranscribeSettings
from subtitled.cues import Cue
from subtitled.engines.base import Transcriber
from subtitled.pipeline import Role, Tools
from subtitled.speech import SileroSpeechProbabilities


def real_tools(settings: TranscribeSettings, transcriber: Transcriber) -> Tools:
    preferred = settings.preferred_audio_languages

    def probe(path: Path) -> media.MediaInfo:
        return media.probe(path, preferred, timeout_seconds=settings.stall_seconds)

    def open_audio(info: media.MediaInfo, start: float | None,
                   duration: float | None) -> Iterable[np.ndarray]:
        args = audio.build_extract_args(info.path, info.audio, start_seconds=start,
                                        duration_seconds=duration)
        if start is not None:  # a window: its length is what was asked for, or less at
            # the end of a track shorter than it says (nothing, past its end)
            return audio.stream_pcm(args, info.path, stall_seconds=settings.stall_seconds,
                                    empty_ok=True)
        expected = info.audio.duration_seconds or info.duration_seconds
        return audio.stream_pcm(args, info.path, expected_seconds=expected,
                                stall_seconds=settings.stall_seconds)

    def write(target: Path, cues: list[Cue], role: Role) -> None:
        del role  # (the worker's concern: which hash the store notes)
        subtitles.write_atomic(target, subtitles.render(target, cues))

    # One ONNX session for every pass, each pass with its own state: the language sample
    # and the extraction running ahead of it use the model at the same time.
    vad = SileroSpeechProbabilities()
    return Tools(probe, open_audio, transcriber, write, vad.fresh,
                 subtitles.check_output_folder)
