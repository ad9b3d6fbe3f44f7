"""Settings as frozen dataclasses; every value carries its unit in its name.

They are also the schema of the configuration: pydantic validates a YAML document or the
command line's options against these types (`config_file`), with the range of every number,
the languages Whisper knows and the fields an output template may use. A value these types
accept must work: a test feeds accepted documents through the pipeline."""

from __future__ import annotations

import ipaddress
import os
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, Strict, with_config

from subtitled import languages

# Scalars as YAML gives them: no "yes" for true, no "5" for 5 (an int is a number, though).
Bool = Annotated[bool, Strict()]
Text = Annotated[str, Strict(), Field(min_length=1)]


NonNegative = Annotated[float, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]
Share = Annotated[float, Strict(), Field(gt=0, lt=1)]  # a probability strictly inside
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
# Settings the file sets at its top level, typed once for the file and the settings alike.
StallSeconds = Annotated[float, Strict(), Field(ge=1)]
LogLevel = Literal["debug", "info", "warning", "error"]


def _language(code: str) -> str:
    """A language code as users write it (en, eng, ger, en-US) → ISO 639-1, one Whisper
    knows."""
    iso = languages.normalize(code)
    if iso is None or not languages.whisper_knows(iso):
        raise ValueError(f"unknown language code {code!r}")
    return iso


def _extension(text: str) -> str:
    if not text.startswith(".") or len(text) < 2 or "/" in text:
        raise ValueError(f"{text!r}: each extension starts with a dot (.mkv)")
    return text.lower()  # matched against the lowercased suffix


def _template(template: str) -> str:
    """An output name: only the fields {stem}, {lang} and {name}, giving a plain file name
    that differs by language."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise ValueError(f"{template!r} is not a template: {err}") from None
    unknown = fields - {"stem", "lang", "name"}
    if unknown:
        raise ValueError(f"{template!r} uses {', '.join(sorted(unknown))}; the fields are "
                         "{stem}, {lang} and {name}")
    sample = template.format(stem="Movie", lang="en", name="Movie.mkv")
    if "/" in sample or sample in ("", ".", "..") or "lang" not in fields:
        raise ValueError(f"{template!r} must give a file name beside the video that holds "
                         "{lang}")
    return template


def _compute_type(value: str) -> str:
    if value not in COMPUTE_TYPES:
        raise ValueError(f"{value!r} is not one of {', '.join(COMPUTE_TYPES)}")
    return value


LanguageCode = Annotated[str, Strict(), AfterValidator(_language)]
Extension = Annotated[str, Strict(), AfterValidator(_extension)]
Template = Annotated[str, Strict(), AfterValidator(_template)]
ComputeType = Annotated[str, Strict(), AfterValidator(_compute_type)]
# Unknown keys are refused: a typo must not pass for a default.
UNKNOWN_KEYS_REFUSED = ConfigDict(extra="forbid")

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
    unit's ~/.local/state/subtitled); outside systemd the system one for root and for the
    user who owns it (`sudo -u subtitled subtitled status` finds the service's), else the
    user's XDG state folder, which is where the user unit keeps it."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    try:
        services = SYSTEM_STATE_DIR.stat().st_uid == os.geteuid()
    except OSError:
        services = False
    if os.geteuid() == 0 or services:
        return SYSTEM_STATE_DIR
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "subtitled"


# CTranslate2's compute types, for faster-whisper.
COMPUTE_TYPES = ("auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16",
                 "float16", "bfloat16", "float32")


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class ModelSettings:
    """What the admin asked for; "auto" values are chosen from the hardware when the model
    loads (`engines.auto.choose`), each with its reason, shown by `subtitled doctor`."""

    name: Text = "large-v3"
    # auto: openai-whisper in FP16 on a CUDA GPU, faster-whisper int8 on a CPU.
    engine: EngineSetting = "auto"
    device: DeviceName = "auto"
    model_dir: Path = field(default_factory=default_model_dir)
    # Never reach for the network; fail with instructions instead of downloading.
    offline: Bool = False
    # auto: 5 on a GPU, 1 (greedy) on a CPU, where beam 5 costs time and no accuracy.
    beam_size: Annotated[int, Strict(), Field(ge=1, le=16)] | Auto = "auto"
    # Speech chunks decoded together in one batch: one encoder pass and one beam search
    # for all of them. auto: as many as the memory this process may use holds (free GPU
    # memory; on a CPU the smallest of MemAvailable, the cgroup limit and RLIMIT_AS).
    batch_size: Annotated[int, Strict(), Field(ge=1, le=64)] | Auto = "auto"
    # faster-whisper only. auto: the fastest type the device supports (float16 needs a GPU
    # with fast FP16; a Pascal card gets int8_float32).
    compute_type: ComputeType = "auto"
    cpu_threads: NonNegativeInt = 0  # 0: all cores
    # With the queue idle this long, cached GPU memory goes back to the driver for the
    # media server's transcoding (the model stays loaded). 0: never.
    gpu_idle_release_seconds: NonNegative = 60.0


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class LanguageSettings:
    language: Literal["auto"] | LanguageCode = "auto"  # or an ISO 639-1 code
    mode: LanguageMode = "vote"
    allowed: tuple[LanguageCode, ...] = ()  # empty: any language the model knows
    vote_windows: Annotated[int, Strict(), Field(ge=1, le=20)] = 5
    # Whisper hears 30 s at a time: a longer window would be cut.
    vote_window_seconds: Annotated[float, Strict(), Field(ge=1, le=30)] = 30.0
    task: Task = "transcribe"
    # Beside the transcript of a file in another language, an English translation from the
    # same run (Whisper's translate task on the same chunks): Movie.en.srt by Movie.ja.srt.
    also_translate: Bool = False
    # For a film in English, Movie.en.forced.srt: only the stretches in other languages,
    # translated to English (they are translated in Movie.en.srt too). Players show a
    # forced subtitle by themselves.
    forced_subtitles: Bool = False
    # One subtitle per audio language: a film with a Japanese track and an English dub gets
    # Movie.ja.srt from the one and Movie.en.srt from the other (each other track decoded
    # whole: about the main track's cost again per language).
    each_audio_language: Bool = False
    # Take the audio track's language tag, when it has one, instead of detecting: no vote,
    # no misdetection, but a wrong tag (many files say "eng" whatever they hold) is believed.
    trust_track_tags: Bool = False


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class SpeechSettings:
    threshold: Share = 0.5
    neg_threshold: Share = 0.35  # below threshold: where speech ends
    min_speech_ms: Annotated[int, Strict(), Field(ge=0, le=10_000)] = 250
    min_silence_ms: Annotated[int, Strict(), Field(ge=0, le=10_000)] = 500
    speech_pad_ms: Annotated[int, Strict(), Field(ge=0, le=2_000)] = 200
    # Whisper hears 30 s at a time: speech past that in a chunk would be lost.
    max_chunk_seconds: Annotated[float, Strict(), Field(ge=5, le=30)] = 30.0
    # Quiet dialogue (subtitled.levels): a file whose dialogue sits this far below its
    # loudest passages is quiet; detection misses lines spoken under its music and effects.
    quiet_margin_db: Annotated[float, Strict(), Field(ge=1, le=60)] = 15.0
    # ...and so is a file whose dialogue stands less than this above the sound under it
    # (a voice buried in music or effects as loud as the rest of the film); 0: never so.
    bed_margin_db: Annotated[float, Strict(), Field(ge=0, le=60)] = 15.0
    # In a quiet file, the decoder listens once more where detection heard no speech but
    # something covers it (pipeline.second_look); its own signs of non-speech decide.
    second_look: Bool = True
    # A chunk whose speech lies this far below the file's dialogue is raised to its level
    # before decoding (null: never).
    raise_below_db: Annotated[float, Strict(), Field(ge=1, le=60)] | None = 10.0


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class FilterSettings:
    """Whisper's own signals that a segment is not speech or is a decoding loop."""

    no_speech_threshold: Share = 0.6
    logprob_threshold: Annotated[float, Strict(), Field(lt=0)] = -1.0
    compression_ratio_threshold: Annotated[float, Strict(), Field(gt=1)] = 2.4
    min_loop_repeats: Annotated[int, Strict(), Field(ge=2, le=100)] = 4


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class CueLimits:
    max_line_chars: Annotated[int, Strict(), Field(ge=10, le=200)] = 42
    max_lines: Annotated[int, Strict(), Field(ge=1, le=4)] = 2
    min_duration_seconds: Annotated[float, Strict(), Field(gt=0, le=10)] = 1.0
    max_duration_seconds: Annotated[float, Strict(), Field(gt=0, le=30)] = 7.0
    min_gap_seconds: Annotated[float, Strict(), Field(ge=0, le=1)] = 0.08  # 2 frames, 25 fps
    max_chars_per_second: Annotated[float, Strict(), Field(ge=5, le=100)] = 20.0
    # A pause this long between words always starts a new cue.
    max_word_gap_seconds: Annotated[float, Strict(), Field(gt=0, le=30)] = 1.5


def _hotword(word: str) -> str:
    word = " ".join(word.split())
    if not word:
        raise ValueError("a hotword is a name or a word, not an empty string")
    return word


def _hotwords(words: tuple[str, ...]) -> tuple[str, ...]:
    if hotwords_too_long(words):
        raise ValueError(f"the hotwords come to more than {HOTWORDS_MAX_CHARS} characters: "
                         "Whisper reads at most 223 tokens of them; keep the names it misspells")
    return words


def merged_hotwords(library: tuple[str, ...], root: tuple[str, ...]) -> tuple[str, ...]:
    """A root's hotwords after the library's: the engines keep the end of a prompt that
    is too long, and a folder's own names matter most there."""
    return (*(word for word in library if word not in root), *root)


def hotwords_too_long(words: tuple[str, ...]) -> bool:
    return len(" ".join(words)) > HOTWORDS_MAX_CHARS


# About 100 to 200 tokens: within the 223 of Whisper's prompt, and leaving the decode of a
# window most of its 448.
HOTWORDS_MAX_CHARS = 400
Hotwords = Annotated[tuple[Annotated[str, Strict(), AfterValidator(_hotword)], ...],
                     AfterValidator(_hotwords)]


def _formats(formats: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(formats)) != len(formats):
        raise ValueError(f"{list(formats)} names a format twice")
    return formats


SubtitleFormat = Literal["srt", "vtt", "ass", "lrc"]
# The first is the subtitle the daemon tracks (skips, redoes, keeps when edited); the
# others are written beside it, from the same cues, just after it.
Formats = Annotated[tuple[SubtitleFormat, ...], Field(min_length=1), AfterValidator(_formats)]


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class OutputSettings:
    template: Template = "{stem}.{lang}.srt"
    overwrite: Bool = False
    # srt, vtt (WebVTT), ass (Advanced SubStation) each take the template's name with
    # their own extension in place of its own (the template names the SRT); lrc (synced
    # lyrics, for music and audiobooks) is `{stem}.lrc`, the one name players look for.
    formats: Formats = ("srt",)


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class SkipSettings:
    """Files that need no subtitle from us."""

    existing_sidecar: Bool = True
    embedded_text_subtitles: Bool = True
    marker_file: Annotated[str, Strict(), Field(pattern=r"^[^/]*$")] = ".subtitled-skip"
    min_duration_seconds: NonNegative = 0.0
    # Files whose audio is in one of these languages need no subtitle (the viewers speak
    # them): by the track's tag before any audio is read, else by the detected language.
    audio_languages: tuple[LanguageCode, ...] = ()


QualityGate = Literal["off", "flag", "review", "hold"]
QUALITY_GATES: tuple[QualityGate, ...] = ("off", "flag", "review", "hold")


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class QualitySettings:
    """When a file's subtitle is likely bad (subtitled.quality), and what then happens:
    flag (written, and flagged in `status`, the page and /metrics), review (written as
    `Movie.en.review.srt`, which the daemon and Bazarr do not take for the subtitle, and
    flagged), hold (not written, flagged), off (not judged)."""

    gate: QualityGate = "flag"
    # Whisper's own threshold for a window it would decode again, over the whole file.
    min_log_probability: Annotated[float, Strict(), Field(lt=0)] = -1.0
    # Speech detection heard speech where the decoder wrote (almost) nothing: singing,
    # music or noise.
    min_heard_share: Share = 0.25
    # A detected language this unsure (the share of the vote) may be the wrong one.
    min_language_confidence: Share = 0.5


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class TranscribeSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    language: LanguageSettings = field(default_factory=LanguageSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    cues: CueLimits = field(default_factory=CueLimits)
    output: OutputSettings = field(default_factory=OutputSettings)
    skip: SkipSettings = field(default_factory=SkipSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    # Container language tags to prefer when choosing the audio track, in order.
    preferred_audio_languages: tuple[LanguageCode, ...] = ()
    # Names and words the decoder should spell as given (characters, places): read by
    # Whisper as text that came before each window, its initial prompt.
    hotwords: Hotwords = ()
    # ffprobe, or ffmpeg while extracting, silent this long is stopped; the file is retried.
    stall_seconds: StallSeconds = 120.0


VIDEO_EXTENSIONS = (".mkv", ".mp4", ".m4v", ".avi", ".mov", ".wmv", ".webm", ".ts", ".m2ts",
                    ".mts", ".mpg", ".mpeg", ".vob", ".flv", ".ogv", ".3gp", ".divx")
def _on_off(value: object) -> object:
    """YAML 1.1 reads a bare on/off as a boolean: `polling: on` means "on"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


PollingMode = Annotated[Literal["auto", "on", "off"], BeforeValidator(_on_off)]
# The library found at start and by rescans: all of it in the order found, none of it (only
# files that arrive from then on), or all of it, the most recently modified first.
Backfill = Literal["all", "none", "newest-first"]


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class WatchRoot:
    path: Path
    recursive: Bool = True
    languages: tuple[LanguageCode, ...] = ()  # allow-list for language detection here
    # Files under a root with a higher priority are done first.
    priority: Annotated[int, Strict(), Field(ge=0, le=100)] = 0
    # The subtitle formats written here (output.formats when not given), e.g. [lrc] for
    # a music folder.
    formats: Formats | None = None
    # Names spelled as given here (a series' characters), with the global hotwords.
    hotwords: Hotwords = ()
    # What a likely bad subtitle here does (transcribe.quality.gate when not given), e.g.
    # off for a music folder, whose lyrics the gate would take for music.
    quality_gate: QualityGate | None = None
    # One subtitle per audio language here (transcribe.language.each_audio_language when
    # not given), e.g. true for an anime folder of dubbed releases.
    each_audio_language: Bool | None = None


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class ScanSettings:
    include_extensions: Annotated[tuple[Extension, ...], Field(min_length=1)] = \
        VIDEO_EXTENSIONS
    ignore_globs: tuple[str, ...] = ("*/@eaDir/*", "*/.Trash-*/*", "*/#recycle/*",
                                     "*-sample.*", "*.sample.*", "*/Sample/*")
    settle_seconds: NonNegative = 30.0
    polling: PollingMode = "auto"
    polling_interval_seconds: Annotated[float, Strict(), Field(ge=1)] = 60.0
    rescan_interval_seconds: Annotated[float, Strict(), Field(ge=60)] = 3600.0
    backfill: Backfill = "newest-first"


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class RetrySettings:
    """`max_attempts`: how many times a file may end the process (a crash, a kill) before
    it is dead-lettered. A transient failure (a hung probe, a busy file) retries with a
    doubling backoff for `transient_budget_hours` from its first failure. A fault of the
    environment (a share down, a full disk) never costs an attempt: the daemon pauses, and
    checks the cause again `fault_probe_seconds` later, doubling up to 5 minutes while it
    stays."""

    max_attempts: Annotated[int, Strict(), Field(ge=1, le=100)] = 3
    backoff_seconds: NonNegative = 60.0
    backoff_max_seconds: NonNegative = 3600.0
    transient_budget_hours: Positive = 24.0
    fault_probe_seconds: Annotated[float, Strict(), Field(ge=1, le=300)] = 15.0


def _network(text: str) -> str:
    """An address or a network in CIDR form (10.0.0.0/8, 172.17.0.1, ::1/128)."""
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or network (CIDR, like "
                         "172.17.0.0/16)") from None


def _absolute(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"{text!r}: a path map's folders are absolute paths")
    return text.rstrip("/") or "/"


Network = Annotated[str, Strict(), AfterValidator(_network)]
AbsoluteFolder = Annotated[str, Strict(), AfterValidator(_absolute)]


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class PathMapping:
    """A folder as another container or host names it (Sonarr's /data/media), and as this
    daemon sees it (/srv/media)."""

    remote: AbsoluteFolder
    local: AbsoluteFolder


def database_url(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise ValueError(f"{text!r} is not a PostgreSQL URL (postgresql://user@host/dbname)")
    return text


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class StateSettings:
    """Where the job store lives. Unset `database`: SQLite in the state directory, for one
    host. A PostgreSQL URL: a store that several hosts share, each claiming files under a
    lease it renews while it works; a host that stops renewing (killed, cut off) loses
    its file to another host after `lease_seconds`."""

    database: Annotated[str, Strict(), AfterValidator(database_url)] | None = None
    # This host's name in the store (claims, `status`): the machine's name by default.
    # Two daemons on one machine sharing a store need names of their own.
    host_name: Text | None = None
    lease_seconds: Annotated[float, Strict(), Field(ge=10, le=3600)] = 120.0
    # Where this host mounts the library (`local`), and the library's name for it in the
    # shared store (`remote`): hosts that mount it at different folders name files alike.
    path_map: tuple[PathMapping, ...] = ()


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class HttpSettings:
    """The daemon's HTTP server: /health and /metrics, and the webhooks that queue a file
    at once. Loopback only unless told otherwise."""

    enabled: Bool = False
    host: Text = "127.0.0.1"
    port: Annotated[int, Strict(), Field(ge=0, le=65535)] = 9797  # 0: any free port
    # Clients that may queue work without the API key (Bazarr sends none; a Docker bridge,
    # 172.17.0.0/16, is the usual addition).
    trusted_networks: tuple[Network, ...] = ("127.0.0.0/8", "::1/128")
    # A file holding the API key the others must send (header X-Api-Key, or ?apikey=).
    # Unset: systemd's $CREDENTIALS_DIRECTORY/subtitled-api-key (LoadCredential=), if any.
    api_key_file: Path | None = None
    # Paths that webhooks send, rewritten to this host's (longest `remote` first).
    path_map: tuple[PathMapping, ...] = ()


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")) or len(text.split("/")[2]) == 0:
        raise ValueError(f"{text!r} is not an http:// or https:// URL")
    return text.rstrip("/")


ServerUrl = Annotated[str, Strict(), AfterValidator(_url)]
MediaServerKind = Literal["jellyfin", "emby", "plex"]


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class MediaServer:
    """A Jellyfin, Emby or Plex server to tell when a subtitle is written, so that it shows
    without waiting for the next library scan."""

    kind: MediaServerKind
    url: ServerUrl  # as this host reaches it: http://127.0.0.1:8096
    # A file holding its API key (Jellyfin, Emby: Dashboard → API Keys) or X-Plex-Token.
    token_file: Path
    # How the server names our folders, when it runs in a container (local: ours).
    path_map: tuple[PathMapping, ...] = ()


NotifyEvent = Literal["failed", "paused", "resumed", "done", "flagged"]


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class NotificationSettings:
    """Messages through Apprise: a file given up on (`failed`: failed for good, or dead
    after its attempts), a pause for a fault of the environment (`paused`) and its end
    (`resumed`), and if asked each subtitle written (`done`) and each one likely bad
    (`flagged`: subtitled.quality, with the reason)."""

    # A file of Apprise URLs, one a line (ntfy://host/topic, discord://id/token,
    # tgram://token/chat, mailto://user:password@host, ...). They carry tokens, so they
    # live in a file, never here. Unset: systemd's $CREDENTIALS_DIRECTORY/
    # subtitled-notify-urls (LoadCredential=), if the unit passes one; else none.
    urls_file: Path | None = None
    events: tuple[NotifyEvent, ...] = ("failed", "paused", "resumed")


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class DaemonSettings:
    watch: tuple[WatchRoot, ...]
    state_dir: Path
    state: StateSettings = field(default_factory=StateSettings)
    scan: ScanSettings = field(default_factory=ScanSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    transcribe: TranscribeSettings = field(default_factory=TranscribeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    media_servers: tuple[MediaServer, ...] = ()
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    log_level: LogLevel = "info"

    def for_file(self, path: Path) -> TranscribeSettings:
        """The transcription settings of a file: with its root's own language allow-list,
        subtitle formats, hotwords, quality gate and audio languages, where the root has
        them (roots do not overlap)."""
        transcribe = self.transcribe
        root = next((root for root in self.watch
                     if root.path == path or root.path in path.parents), None)
        if root is None:
            return transcribe
        if root.languages:
            transcribe = replace(transcribe, language=replace(transcribe.language,
                                                              allowed=root.languages))
        if root.formats:
            transcribe = replace(transcribe, output=replace(transcribe.output,
                                                            formats=root.formats))
        if root.hotwords:
            transcribe = replace(transcribe, hotwords=merged_hotwords(transcribe.hotwords,
                                                                      root.hotwords))
        if root.quality_gate:
            transcribe = replace(transcribe, quality=replace(transcribe.quality,
                                                             gate=root.quality_gate))
        if root.each_audio_language is not None:
            transcribe = replace(transcribe, language=replace(
                transcribe.language, each_audio_language=root.each_audio_language))
        return transcribe
