"""Settings as frozen dataclasses; every value carries its unit in its name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

EngineName = Literal["openai-whisper", "faster-whisper"]
EngineSetting = Literal["auto", "openai-whisper", "faster-whisper"]
DeviceName = Literal["auto", "cpu", "cuda"]
Auto = Literal["auto"]
Task = Literal["transcribe", "translate"]
LanguageMode = Literal["vote", "per-chunk"]

ENGINES: tuple[EngineSetting, ...] = ("auto", "openai-whisper", "faster-whisper")
DEVICES: tuple[DeviceName, ...] = ("auto", "cpu", "cuda")
TASKS: tuple[Task, ...] = ("transcribe", "translate")
LANGUAGE_MODES: tuple[LanguageMode, ...] = ("vote", "per-chunk")


def default_model_dir() -> Path:
    """systemd's CacheDirectory= when set, else the XDG cache of the user."""
    cache = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if cache:
        return Path(cache) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "subtitled" / "models"


SYSTEM_STATE_DIR = Path("/var/lib/subtitled")


def default_state_dir() -> Path:
    """systemd's StateDirectory= when set (the system unit's /var/lib/subtitled, the user
    unit's ~/.local/state/subtitled); outside systemd the system one where it exists or for
    root (`sudo -u subtitled subtitled status` finds the service's), else the user's XDG
    state folder, which is where the user unit keeps it."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    if os.geteuid() == 0 or SYSTEM_STATE_DIR.is_dir():
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "subtitled"


# CTranslate2's compute types, for faster-whisper.
COMPUTE_TYPES = ("auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class ModelSettings:
    """What the admin asked for; "auto" values are chosen from the hardware when the model
    loads (`engines.auto.choose`), each with its reason, shown by `subtitled doctor`."""

    name: str = "large-v3"
    # auto: openai-whisper in FP16 on a CUDA GPU, faster-whisper int8 on a CPU.
    engine: EngineSetting = "auto"
    device: DeviceName = "auto"
    model_dir: Path = field(default_factory=default_model_dir)
    # Never reach for the network; fail with instructions instead of downloading.
    offline: bool = False
    # auto: 5 on a GPU, 1 (greedy) on a CPU, where beam 5 costs time and no accuracy.
    beam_size: int | Auto = "auto"
    # Speech chunks decoded together in one batch: one encoder pass and one beam search
    # for all of them. auto: as many as the memory this process may use holds (free GPU
    # memory; on a CPU the smallest of MemAvailable, the cgroup limit and RLIMIT_AS).
    batch_size: int | Auto = "auto"
    # faster-whisper only. auto: the fastest type the device supports (float16 needs a GPU
    # with fast FP16; a Pascal card gets int8_float32).
    compute_type: str = "auto"
    cpu_threads: int = 0  # 0: all cores
    # With the queue idle this long, cached GPU memory goes back to the driver for the
    # media server's transcoding (the model stays loaded). 0: never.
    gpu_idle_release_seconds: float = 60.0


@dataclass(frozen=True)
class LanguageSettings:
    language: str = "auto"  # "auto" or an ISO 639-1 code
    mode: LanguageMode = "vote"
    allowed: tuple[str, ...] = ()  # empty: any language the model knows
    vote_windows: int = 5
    vote_window_seconds: float = 30.0
    task: Task = "transcribe"
    # Take the audio track's language tag, when it has one, instead of detecting: no vote,
    # no misdetection, but a wrong tag (many files say "eng" whatever they hold) is believed.
    trust_track_tags: bool = False


@dataclass(frozen=True)
class SpeechSettings:
    threshold: float = 0.5
    neg_threshold: float = 0.35
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    max_chunk_seconds: float = 30.0


@dataclass(frozen=True)
class FilterSettings:
    """Whisper's own signals that a segment is not speech or is a decoding loop."""

    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    min_loop_repeats: int = 4


@dataclass(frozen=True)
class CueLimits:
    max_line_chars: int = 42
    max_lines: int = 2
    min_duration_seconds: float = 1.0
    max_duration_seconds: float = 7.0
    min_gap_seconds: float = 0.08  # two frames at 25 fps
    max_chars_per_second: float = 20.0
    # A pause this long between words always starts a new cue.
    max_word_gap_seconds: float = 1.5


@dataclass(frozen=True)
class OutputSettings:
    template: str = "{stem}.{lang}.srt"
    overwrite: bool = False


@dataclass(frozen=True)
class SkipSettings:
    """Files that need no subtitle from us."""

    existing_sidecar: bool = True
    embedded_text_subtitles: bool = True
    marker_file: str = ".subtitled-skip"
    min_duration_seconds: float = 0.0
    # Files whose audio is in one of these languages need no subtitle (the viewers speak
    # them): by the track's tag before any audio is read, else by the detected language.
    audio_languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class TranscribeSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    language: LanguageSettings = field(default_factory=LanguageSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    cues: CueLimits = field(default_factory=CueLimits)
    output: OutputSettings = field(default_factory=OutputSettings)
    skip: SkipSettings = field(default_factory=SkipSettings)
    # Container language tags to prefer when choosing the audio track, in order.
    preferred_audio_languages: tuple[str, ...] = ()
    # ffprobe, or ffmpeg while extracting, silent this long is stopped; the file is retried.
    stall_seconds: float = 120.0


VIDEO_EXTENSIONS = (".mkv", ".mp4", ".m4v", ".avi", ".mov", ".wmv", ".webm", ".ts", ".m2ts",
                    ".mts", ".mpg", ".mpeg", ".vob", ".flv", ".ogv", ".3gp", ".divx")
PollingMode = Literal["auto", "on", "off"]
# The library found at start and by rescans: all of it in the order found, none of it (only
# files that arrive from then on), or all of it, the most recently modified first.
Backfill = Literal["all", "none", "newest-first"]


@dataclass(frozen=True)
class WatchRoot:
    path: Path
    recursive: bool = True
    languages: tuple[str, ...] = ()  # allow-list for language detection in this folder
    priority: int = 0  # files under a root with a higher priority are done first


@dataclass(frozen=True)
class ScanSettings:
    include_extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    ignore_globs: tuple[str, ...] = ("*/@eaDir/*", "*/.Trash-*/*", "*/#recycle/*",
                                     "*-sample.*", "*.sample.*", "*/Sample/*")
    settle_seconds: float = 30.0
    polling: PollingMode = "auto"
    polling_interval_seconds: float = 10.0
    rescan_interval_seconds: float = 3600.0
    backfill: Backfill = "newest-first"


@dataclass(frozen=True)
class RetrySettings:
    """`max_attempts`: how many times a file may end the process (a crash, a kill) before
    it is dead-lettered. A transient failure (a hung probe, a busy file) retries with a
    doubling backoff for `transient_budget_hours` from its first failure. A fault of the
    environment (a share down, a full disk) never costs an attempt: the daemon pauses."""

    max_attempts: int = 3
    backoff_seconds: float = 60.0
    backoff_max_seconds: float = 3600.0
    transient_budget_hours: float = 24.0


@dataclass(frozen=True)
class HttpSettings:
    """The optional /health and /metrics listener; loopback only unless told otherwise."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9797


@dataclass(frozen=True)
class DaemonSettings:
    watch: tuple[WatchRoot, ...]
    state_dir: Path
    scan: ScanSettings = field(default_factory=ScanSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    transcribe: TranscribeSettings = field(default_factory=TranscribeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log_level: str = "info"
