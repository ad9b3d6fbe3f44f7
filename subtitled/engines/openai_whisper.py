"""openai-whisper engine: the model stays resident; FP16 on CUDA, FP32 on the CPU."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from subtitled import models
from subtitled.config import ModelSettings, Task
from subtitled.engines.base import (
    Decodes,
    Heard,
    sampling_seed,
    segment_from_dict,
    token_budget,
)
from subtitled.engines.ct2_weights import alignment_heads, read_model_bin, state_dict
from subtitled.engines.ct2_weights import dimensions as ct2_dimensions
from subtitled.errors import ModelError

if TYPE_CHECKING:
    import torch

    from subtitled.engines.auto import Choice

logger = logging.getLogger(__name__)

_SECONDS_PER_TIMESTAMP = 0.02


class OpenAIWhisperEngine(Decodes):
    def __init__(self, model: Any, device: str, name: str, beam_size: int,
                 batch_size: int = 1) -> None:
        self.model = model
        self.device = device
        self.name = name
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.fp16 = device == "cuda"

    @property
    def description(self) -> str:
        precision = "fp16" if self.fp16 else "fp32"
        return f"openai-whisper {self.name} on {self.device} ({precision})"

    @property
    def multilingual(self) -> bool:
        return bool(self.model.is_multilingual)

    def detect_language(self, audio: np.ndarray) -> dict[str, float]:
        return self.detect_languages([audio])[0]

    def detect_languages(self, audios: Sequence[np.ndarray]) -> list[dict[str, float]]:
        """One encoder pass over every clip's window, then the language step for all."""
        import torch

        return self._heard(torch.stack([self._mel(a) for a in audios]), "en")

    def _mel(self, audio: np.ndarray, *, decoding: bool = False) -> torch.Tensor:
        """One 30 s window of log-mel frames on the model's device, in its precision, as
        Whisper's own `transcribe` makes it: to detect the language, the audio's frames
        and then those of silence; to decode, the audio's frames and then zeros. The model
        hears the two differently. On hard audio shorter than a window (a language it
        barely knows, noise), the first decode of the silence-padded window failed
        Whisper's checks on 10 of 12 clips and the zero-padded one on 6 (BENCHMARKS.md),
        and each failure costs a hotter decode."""
        import whisper

        mel = whisper.log_mel_spectrogram(
            audio, self.model.dims.n_mels, padding=whisper.audio.N_SAMPLES
        )
        if decoding:
            mel = mel[:, :mel.shape[-1] - whisper.audio.N_FRAMES]  # the audio's own frames
        window: torch.Tensor = whisper.pad_or_trim(mel, whisper.audio.N_FRAMES).to(self.device)
        return window.half() if self.fp16 else window

    def _decode(self, audios: Sequence[np.ndarray], language: str, task: Task,
                temperature: float, prompt: str | None, *, hear: bool) -> Heard:
        """One batched decode (one encoder pass, one beam search for all chunks, FP16 on a
        GPU; one sample each above temperature 0), split into segments at the timestamp
        tokens, then each chunk's words aligned: what whisper.transcribe does per window at
        one temperature, for a batch."""
        import torch
        from whisper.decoding import DecodingOptions
        from whisper.timing import add_word_timestamps
        from whisper.tokenizer import get_tokenizer

        tokenizer = get_tokenizer(self.multilingual, num_languages=self.model.num_languages,
                                  language=language, task=task)
        mels = [self._mel(audio, decoding=True) for audio in audios]
        beam = self.beam_size if self.beam_size > 1 and temperature == 0 else None
        options = DecodingOptions(task=task, language=language, temperature=temperature,
                                  beam_size=beam, fp16=self.fp16, prompt=prompt or None,
                                  sample_len=min(self.model.dims.n_text_ctx // 2,
                                                 token_budget(audios)))
        decoding = _beam_task(self.model, options)
        with torch.no_grad(), _seeded(sampling_seed(audios, temperature) if temperature > 0
                                      else None, self.device):
            results = decoding.run(torch.stack(mels))
            heard = self._heard(decoding.encoded, language) if hear else []
        batch = []
        for audio, mel, result in zip(audios, mels, results, strict=True):
            seconds = len(audio) / 16_000
            raw = split_at_timestamps(result, tokenizer, seconds)
            if raw:
                add_word_timestamps(segments=raw, model=self.model, tokenizer=tokenizer,
                                    mel=mel, num_frames=min(3000, round(seconds * 100)),
                                    last_speech_timestamp=0.0)
            batch.append([segment_from_dict(segment) for segment in raw])
        return batch, heard

    def _heard(self, windows: torch.Tensor, language: str) -> list[dict[str, float]]:
        """The language of each window: of its log-mel frames, or of the encoder's output
        a decode used (given that, Whisper's detect_language skips the encoder); `language`
        for a model that knows no other."""
        if not self.multilingual:
            return [{language: 1.0} for _ in windows]
        _, found = self.model.detect_language(windows)
        return [{str(code): float(p) for code, p in clip.items()} for clip in found]

    def release_memory(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()

    def idle(self) -> None:
        """The batch peak torch keeps cached goes back to the driver (a media server's GPU
        is shared with transcoding); the weights stay, so the next file starts at once."""
        self.release_memory()

    def gpu_bytes(self) -> int | None:
        """GPU memory this process holds, as nvidia-smi counts it (reserved, not only
        allocated)."""
        if self.device != "cuda":
            return None
        import torch

        return int(torch.cuda.memory_reserved())


@contextmanager
def _seeded(seed: int | None, device: str) -> Iterator[None]:
    """torch's random numbers (Whisper samples with them) from `seed` for the block, and
    as they were after it: nothing else in the process sees its draws changed."""
    import torch

    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[torch.cuda.current_device()]
                               if device == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _beam_task(model: Any, options: Any) -> Any:
    """openai-whisper's DecodingTask with the audio features repeated once per beam, as it
    did before its PR #1483: released, a batch of several windows with beam search fails
    with a shape mismatch in cross-attention (openai/whisper#2197, #2389). The language is
    always given here; the language step and the task's own results take every n_group-th
    row back."""
    from whisper.decoding import DecodingTask

    class BeamPerWindow(DecodingTask):  # type: ignore[misc]
        encoded: torch.Tensor  # one row per window, to hear its language in

        def _get_audio_features(self, mel: torch.Tensor) -> torch.Tensor:
            features: torch.Tensor = super()._get_audio_features(mel)
            self.encoded = features
            return features.repeat_interleave(self.n_group, dim=0)

        def _detect_language(self, audio_features: torch.Tensor, tokens: torch.Tensor
                             ) -> Any:
            return super()._detect_language(audio_features[:: self.n_group], tokens)

    assert options.language is not None
    return BeamPerWindow(model, options)


def split_at_timestamps(result: Any, tokenizer: Any, seconds: float) -> list[dict[str, Any]]:
    """A decoded window's tokens → segment dicts, cut where two timestamp tokens meet (as
    whisper.transcribe cuts them); text after the last timestamp runs to the window's end."""
    tokens = [int(t) for t in result.tokens]
    begin = tokenizer.timestamp_begin
    cuts = [i + 1 for i in range(len(tokens) - 1) if tokens[i] >= begin <= tokens[i + 1]]
    segments = []
    for first, end in zip([0, *cuts], [*cuts, len(tokens)], strict=True):
        span = tokens[first:end]
        text = [t for t in span if t < tokenizer.eot]
        if not text:
            continue
        stamps = [(t - begin) * _SECONDS_PER_TIMESTAMP for t in span if t >= begin]
        start = stamps[0] if span[0] >= begin else 0.0
        stop = stamps[-1] if span[-1] >= begin and len(stamps) > 1 else seconds
        segments.append({
            "seek": 0, "start": min(start, seconds), "end": min(max(stop, start), seconds),
            "text": tokenizer.decode(text), "tokens": span,
            "avg_logprob": result.avg_logprob, "no_speech_prob": result.no_speech_prob,
            "compression_ratio": result.compression_ratio,
        })
    return segments


def load(settings: ModelSettings, choice: Choice) -> OpenAIWhisperEngine:
    import torch

    if settings.cpu_threads > 0:
        torch.set_num_threads(settings.cpu_threads)
    settings = replace(settings, engine=choice.engine)  # a checkpoint or a folder to match
    source = models.resolve(settings)
    started = time.monotonic()
    model = to_device(_load_model(source, settings), choice.device)
    logger.info("loaded openai-whisper %s on %s in %.1f s", source.name, choice.device,
                time.monotonic() - started)
    return OpenAIWhisperEngine(model, choice.device, source.name, choice.beam_size,
                               choice.batch_size)


def to_device(model: Any, device: str) -> Any:
    """The model on its device, in FP16 on CUDA. Halved on the CPU first: moved in FP32
    and halved there, large-v3 would need twice its resident size on the GPU at load (a
    6 GB card could not load it) and leave the FP32 blocks in torch's cache."""
    if device == "cuda":
        half_precision(model)
    try:
        model = model.to(device)
    except RuntimeError as err:  # torch.cuda.OutOfMemoryError is a RuntimeError
        raise ModelError(f"cannot move the model to {device}: {err}", stage="model") from err
    return model.eval()


def _load_model(source: models.ModelSource, settings: ModelSettings) -> Any:
    import whisper

    try:
        if source.kind == "ctranslate2":
            assert source.path is not None
            return model_from_ctranslate2(source.path)
        if source.kind == "openai-checkpoint":
            assert source.path is not None
            model = whisper.load_model(str(source.path), device="cpu")
            if source.name in whisper._ALIGNMENT_HEADS:
                model.set_alignment_heads(whisper._ALIGNMENT_HEADS[source.name])
            return model
        if source.name not in whisper.available_models():
            raise ModelError(f"unknown model name '{source.name}' (known: "
                             f"{', '.join(whisper.available_models())})", stage="model")
        settings.model_dir.mkdir(parents=True, exist_ok=True)
        # openai-whisper downloads into model_dir and verifies the file's SHA-256.
        return whisper.load_model(source.name, device="cpu", download_root=str(settings.model_dir))
    except ModelError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as err:
        hint = models.missing_model_message(settings) if source.kind == "download" else ""
        raise ModelError(f"cannot load model '{source.name}': {err}. {hint}".strip(),
                         stage="model") from err


def model_from_ctranslate2(folder: Any) -> Any:
    """Build an openai-whisper model from a CTranslate2 folder, converting in memory."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    variables = read_model_bin(folder / "model.bin")
    model = Whisper(ModelDimensions(**ct2_dimensions(variables)))
    weights = {k: torch.from_numpy(np.array(v, dtype=np.float32))
               for k, v in state_dict(variables).items()}
    # The encoder's positions are fixed sinusoids; the model's own are exact, the stored
    # copy is rounded to float16.
    weights["encoder.positional_embedding"] = model.encoder.positional_embedding
    model.load_state_dict(weights, strict=True)
    heads = alignment_heads(folder)
    if heads:
        mask = torch.zeros(model.dims.n_text_layer, model.dims.n_text_head, dtype=torch.bool)
        for layer, head in heads:
            mask[layer, head] = True
        model.register_buffer("alignment_heads", mask.to_sparse(), persistent=False)
    return model


def half_precision(model: torch.nn.Module) -> None:
    """FP16 weights everywhere but LayerNorm, which openai-whisper runs in FP32 on purpose
    (its LayerNorm casts input to float32, so FP16 weights there would not match)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            continue
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.is_floating_point():
                setattr(module, name, torch.nn.Parameter(parameter.data.half(),
                                                         requires_grad=False))
        for name, buffer in module.named_buffers(recurse=False):
            if buffer.is_floating_point():
                module.register_buffer(name, buffer.half(),
                                       persistent=name in module.state_dict())
