"""The YAML configuration → DaemonSettings, through the schema the settings' own types
declare (`subtitled.config`, validated by pydantic), listing every problem with its key
path. The command line's options go through the same schema (`transcribe_settings`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import ErrorDetails

from subtitled.config import (
    HOTWORDS_MAX_CHARS,
    UNKNOWN_KEYS_REFUSED,
    CueLimits,
    DaemonSettings,
    FilterSettings,
    Hotwords,
    HttpSettings,
    LanguageCode,
    LanguageSettings,
    LogLevel,
    MediaServer,
    ModelSettings,
    NotificationSettings,
    OutputSettings,
    QualitySettings,
    RetrySettings,
    ScanSettings,
    SkipSettings,
    SpeechSettings,
    StallSeconds,
    StateSettings,
    TranscribeSettings,
    WatchRoot,
    default_state_dir,
    hotwords_too_long,
    merged_hotwords,
)
from subtitled.errors import ConfigError
from subtitled.notifications import Notifications
from subtitled.web.access import api_key_file, read_api_key, read_token

DEFAULT_PATH = Path("/etc/subtitled/config.yaml")


def _root(item: Any) -> Any:
    """A watched folder may be written as its path alone."""
    return {"path": item} if isinstance(item, str) else item


@with_config(UNKNOWN_KEYS_REFUSED)
@dataclass(frozen=True)
class _Document:
    """The file's shape: the transcription sections and a few keys sit at the top."""

    watch: Annotated[tuple[Annotated[WatchRoot, BeforeValidator(_root)], ...],
                     Field(min_length=1)]
    state_dir: Path | None = None
    state: StateSettings = field(default_factory=StateSettings)
    log_level: LogLevel = "info"
    audio_languages: tuple[LanguageCode, ...] = ()
    hotwords: Hotwords = ()
    stall_seconds: StallSeconds = TranscribeSettings.stall_seconds
    scan: ScanSettings = field(default_factory=ScanSettings)
    skip: SkipSettings = field(default_factory=SkipSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    language: LanguageSettings = field(default_factory=LanguageSettings)
    speech: SpeechSettings = field(default_factory=SpeechSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    cues: CueLimits = field(default_factory=CueLimits)
    output: OutputSettings = field(default_factory=OutputSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    media_servers: tuple[MediaServer, ...] = ()
    notifications: NotificationSettings = field(default_factory=NotificationSettings)


_DOCUMENT = TypeAdapter(_Document)
_TRANSCRIBE = TypeAdapter(TranscribeSettings)


# --- problems, worded for an admin ----------------------------------------------------


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _fields_at(loc: tuple[int | str, ...], root: type[Any]) -> list[str] | None:
    """The keys valid where `loc` points (a dataclass of the schema), for "unknown key"."""
    current: Any = root
    for part in loc:
        origin = typing.get_origin(current)
        if origin is Annotated:
            current = typing.get_args(current)[0]
            origin = typing.get_origin(current)
        if isinstance(part, int) and origin is tuple:
            current = typing.get_args(current)[0]
        elif isinstance(part, str) and dataclasses.is_dataclass(current):
            hints = typing.get_type_hints(current, include_extras=True)
            if part not in hints:
                break
            current = hints[part]
        else:
            return None
    while typing.get_origin(current) is Annotated:
        current = typing.get_args(current)[0]
    if not dataclasses.is_dataclass(current):
        return None
    return sorted(f.name for f in dataclasses.fields(current))


_UNION_MEMBERS = ("int", "float", "str", "bool", "literal[", "function-after[", "tuple[",
                  "constrained-")


def _member(part: int | str) -> bool:
    """A union member pydantic names in the location (`int`, `literal['auto']`)."""
    return isinstance(part, str) and part.startswith(_UNION_MEMBERS) and \
        (part in ("int", "float", "str", "bool") or part.endswith("]") or
         part.startswith("constrained-"))


def _wanted(error: ErrorDetails) -> str:
    """What the value must be, from one pydantic error."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        word = {"greater_than_equal": "at least", "greater_than": "more than",
                "less_than_equal": "at most", "less_than": "less than"}[kind]
        bound = next(iter(context.values()))
        return f"{word} {bound:g}" if isinstance(bound, float) else f"{word} {bound}"
    if kind == "literal_error":
        words = str(context.get("expected", "")).replace("' or '", "', '")
        return f"one of {words}" if "," in words else words
    if kind.startswith("int_"):
        return "an integer"
    if kind.startswith("float_"):
        return "a number"
    if kind.startswith("bool_"):
        return "true or false"
    if kind.startswith(("tuple_", "list_")):
        return "a list"
    if kind.startswith("string_too_short"):
        return "not empty"
    if kind.startswith("string_"):
        return "a string"
    if kind.startswith(("dataclass_", "dict_", "model_")):
        return "a mapping of keys to values"
    if kind == "too_short":
        return "a list of at least one entry"
    return str(error["msg"])


def problems_of(err: ValidationError, root: type[Any], name: Any = _where) -> list[str]:
    """One line per problem: `At 'model.beam_size': must be at least 1 or 'auto', not 0`.
    `name` turns a location into what the user wrote (a key path, or an option)."""
    grouped: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
    for error in err.errors():
        loc = tuple(part for part in error["loc"] if not _member(part))
        grouped.setdefault(loc, []).append(error)
    lines = []
    for loc, errors in grouped.items():
        first = errors[0]
        kind = first["type"]
        if kind == "unexpected_keyword_argument":
            valid = _fields_at(loc[:-1], root)
            known = f"; valid keys are {', '.join(valid)}" if valid else ""
            lines.append(f"At {name(loc)!r}: unknown key{known}")
        elif kind == "missing_argument" or kind == "missing":
            lines.append(f"At {name(loc)!r}: required")
        elif any(e["type"] == "value_error" for e in errors):  # our own words: the reason
            said = next(e for e in errors if e["type"] == "value_error")
            lines.append(f"At {name(loc)!r}: {str(said['msg']).removeprefix('Value error, ')}")
        else:
            wanted = " or ".join(dict.fromkeys(_wanted(e) for e in errors))
            lines.append(f"At {name(loc)!r}: must be {wanted}, not {first.get('input')!r}")
    return lines


# --- checks across fields --------------------------------------------------------------


def cross_checks(settings: TranscribeSettings, name: Any = _where) -> list[str]:
    """What no single field can say; `name` words a key path for the caller."""
    problems = []
    cues, speech, language = settings.cues, settings.speech, settings.language

    def add(loc: tuple[str, ...], what: str) -> None:
        problems.append(f"At {name(loc)!r}: {what}")

    if not cues.min_duration_seconds < cues.max_duration_seconds:
        add(("cues", "min_duration_seconds"),
            f"must be below {name(('cues', 'max_duration_seconds'))}")
    if not speech.neg_threshold < speech.threshold:
        add(("speech", "neg_threshold"), f"must be below {name(('speech', 'threshold'))}")
    model = settings.model.name
    if model.endswith(".en") and "/" not in model:
        wanted = {language.language, *language.allowed} - {"auto", "en"}
        if wanted or language.task == "translate" or language.also_translate or \
                language.forced_subtitles or language.each_audio_language:
            add(("model", "name"), f"{model} knows only English: language "
                f"{', '.join(sorted(wanted)) or 'translation'} needs a multilingual model")
    if language.forced_subtitles and language.task == "translate":
        add(("language", "forced_subtitles"), f"the whole subtitle is translated already "
            f"({name(('language', 'task'))} is translate)")
    if language.also_translate and language.task == "translate":
        add(("language", "also_translate"), f"the subtitle is the translation already "
            f"({name(('language', 'task'))} is translate)")
    if language.each_audio_language and (language.task == "translate" or
                                         language.language != "auto"):
        add(("language", "each_audio_language"), "every track would give the same "
            f"subtitle ({name(('language', 'task'))} is translate)"
            if language.task == "translate" else
            f"every track would be taken for {language.language} "
            f"({name(('language', 'language'))} is not auto)")
    return problems


def _daemon_checks(document: _Document, base: Path | None) -> tuple[list[str], Any]:
    problems: list[str] = []
    roots = []
    for index, root in enumerate(document.watch):
        root = dataclasses.replace(root, path=_anchored(root.path, base))
        if not root.path.is_absolute():
            problems.append(f"At 'watch[{index}].path': must be an absolute path, not "
                            f"{root.path}")
        elif not root.path.is_dir():
            problems.append(f"At 'watch[{index}].path': directory {root.path} does not exist")
        if hotwords_too_long(merged_hotwords(document.hotwords, root.hotwords)):
            problems.append(f"At 'watch[{index}].hotwords': with the global hotwords they "
                            f"come to more than {HOTWORDS_MAX_CHARS} characters; keep the "
                            "names Whisper misspells")
        roots.append(root)
    paths = [r.path.resolve() for r in roots]
    for i, first in enumerate(paths):
        for second in paths[i + 1:]:
            if first == second or first in second.parents or second in first.parents:
                problems.append(f"At 'watch': folders {first} and {second} overlap")
    state = _anchored(document.state_dir or default_state_dir(), base).resolve()
    for index, root in enumerate(roots):
        if root.path.resolve() == state or root.path.resolve() in state.parents:
            problems.append(f"At 'state_dir': {state} is inside watched folder "
                            f"watch[{index}]; the daemon's own files would be queued")
    if document.http.enabled:
        try:
            read_api_key(api_key_file(_http(document.http, base), os.environ))
        except ConfigError as err:
            problems.append(f"At 'http.api_key_file': {err.message}")
    for index, server in enumerate(_servers(document.media_servers, base)):
        try:
            read_token(server.token_file)
        except ConfigError as err:
            problems.append(f"At 'media_servers[{index}].token_file': {err.message}")
    notifications = _notifications(document.notifications, base)
    try:
        Notifications.of(notifications)  # the URLs read and understood, nothing sent
    except ConfigError as err:
        problems.append(f"At 'notifications.urls_file': {err.message}")
    if document.state.database is not None and importlib.util.find_spec("psycopg") is None:
        problems.append("At 'state.database': a PostgreSQL store needs psycopg: pip install "
                        "'subtitled[postgresql]'")
    if document.retry.backoff_max_seconds < document.retry.backoff_seconds:
        problems.append("At 'retry.backoff_max_seconds': must be at least "
                        "retry.backoff_seconds")
    return problems, tuple(roots)


def _anchored(path: Path, base: Path | None) -> Path:
    """Relative paths in a file are relative to the file's folder."""
    path = path.expanduser()
    return path if path.is_absolute() or base is None else (base / path).resolve()


def _http(http: HttpSettings, base: Path | None) -> HttpSettings:
    key = http.api_key_file
    return http if key is None else dataclasses.replace(http, api_key_file=_anchored(key, base))


def _notifications(settings: NotificationSettings, base: Path | None
                   ) -> NotificationSettings:
    found = settings.urls_file
    return settings if found is None else \
        dataclasses.replace(settings, urls_file=_anchored(found, base))


def _servers(servers: tuple[MediaServer, ...], base: Path | None) -> tuple[MediaServer, ...]:
    return tuple(dataclasses.replace(s, token_file=_anchored(s.token_file, base))
                 for s in servers)


def _model(model: ModelSettings, base: Path | None) -> ModelSettings:
    """model_dir, and a model named by a path (a .pt file or a folder), anchored."""
    name = model.name
    if "/" in name or name.endswith(".pt") or name.startswith("~"):
        name = str(_anchored(Path(name), base))
    return dataclasses.replace(model, name=name, model_dir=_anchored(model.model_dir, base))


# --- entry points ----------------------------------------------------------------------


def parse(document: Any, base: Path | None = None) -> DaemonSettings:
    """Validate a loaded YAML document; raise ConfigError listing every problem. Relative
    paths are taken from `base` (the config file's folder)."""
    if not isinstance(document, Mapping):
        raise ConfigError("the configuration must be a mapping of keys to values",
                          stage="config")
    try:
        valid = _DOCUMENT.validate_python(dict(document))
    except ValidationError as err:
        raise ConfigError("\n".join(problems_of(err, _Document)), stage="config") from None
    problems, roots = _daemon_checks(valid, base)
    transcribe = TranscribeSettings(
        model=_model(valid.model, base), language=valid.language, speech=valid.speech,
        filters=valid.filters, cues=valid.cues, output=valid.output, skip=valid.skip,
        quality=valid.quality, preferred_audio_languages=valid.audio_languages,
        hotwords=valid.hotwords, stall_seconds=valid.stall_seconds)
    problems += cross_checks(transcribe)
    if problems:
        raise ConfigError("\n".join(problems), stage="config")
    return DaemonSettings(
        watch=roots, state_dir=_anchored(valid.state_dir or default_state_dir(), base),
        state=valid.state, scan=valid.scan, retry=valid.retry, transcribe=transcribe,
        http=_http(valid.http, base),
        media_servers=_servers(valid.media_servers, base),
        notifications=_notifications(valid.notifications, base), log_level=valid.log_level)


def transcribe_settings(sections: Mapping[str, Any], name: Any) -> TranscribeSettings:
    """The command line's settings, as sections of the same schema; `name` turns a key path
    into the option that set it, for the problem lines."""
    try:
        settings = _TRANSCRIBE.validate_python(dict(sections))
    except ValidationError as err:
        raise ConfigError("; ".join(problems_of(err, TranscribeSettings, name)),
                          stage="options") from None
    problems = cross_checks(settings, name)
    if problems:
        raise ConfigError("; ".join(problems), stage="options")
    return settings


def load(path: Path) -> DaemonSettings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}", stage="config") from err
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}: "
                          f"{getattr(err, 'problem', None) or err}", stage="config") from err
    return parse(document, path.absolute().parent)
