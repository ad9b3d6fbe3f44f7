"""The YAML configuration → DaemonSettings, listing every problem with its key path."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from subtitled import languages
from subtitled.config import (
    COMPUTE_TYPES,
    CueLimits,
    DaemonSettings,
    FilterSettings,
    HttpSettings,
    LanguageSettings,
    ModelSettings,
    OutputSettings,
    RetrySettings,
    ScanSettings,
    SkipSettings,
    SpeechSettings,
    TranscribeSettings,
    WatchRoot,
    default_state_dir,
)
from subtitled.errors import ConfigError

DEFAULT_PATH = Path("/etc/subtitled/config.yaml")
_SECTIONS: dict[str, type[Any]] = {
    "scan": ScanSettings, "skip": SkipSettings, "retry": RetrySettings, "model": ModelSettings,
    "language": LanguageSettings, "speech": SpeechSettings, "filters": FilterSettings,
    "cues": CueLimits, "output": OutputSettings, "http": HttpSettings,
}
_TOP_KEYS = ("watch", "state_dir", "log_level", "audio_languages", "stall_seconds", *_SECTIONS)
_LOG_LEVELS = ("debug", "info", "warning", "error")
_LANGUAGE_LISTS = {"allowed", "languages", "audio_languages"}


class _Problems(list[str]):
    def add(self, where: str, what: str) -> None:
        self.append(f"At '{where}': {what}")


def _value(raw: Any, hint: Any, where: str, problems: _Problems, *,
           allow_negative: bool = False) -> Any:
    """One YAML value checked against a dataclass field's type; None when it is invalid."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # `int | Literal["auto"]`
        words = [a for a in args if typing.get_origin(a) is typing.Literal]
        if any(raw in typing.get_args(word) for word in words):
            return raw
        other = next(a for a in args if a not in words)
        value = _value(raw, other, where, problems, allow_negative=allow_negative)
        if value is None and problems and problems[-1].startswith(f"At '{where}': must be"):
            named = " or ".join(repr(w) for a in words for w in typing.get_args(a))
            problems[-1] = f"{problems[-1].rsplit(', not ', 1)[0]} or {named}, not {raw!r}"
        return value
    if origin is typing.Literal:
        if raw in args:
            return raw
        problems.add(where, f"{raw!r} is not one of {', '.join(map(str, args))}")
        return None
    if origin is tuple:
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            problems.add(where, "must be a list of strings")
            return None
        return tuple(raw)
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        problems.add(where, f"must be true or false, not {raw!r}")
        return None
    if hint in (int, float):
        if isinstance(raw, bool) or not isinstance(raw, int | float) or (
                hint is int and not isinstance(raw, int)):
            problems.add(where, f"must be a{'n integer' if hint is int else ' number'}, "
                                f"not {raw!r}")
            return None
        if raw < 0 and not allow_negative:
            problems.add(where, f"must not be negative, not {raw}")
            return None
        return raw
    if hint is Path:
        if isinstance(raw, str) and raw:
            return Path(raw).expanduser()
        problems.add(where, "must be a path")
        return None
    if isinstance(raw, str):
        return raw
    problems.add(where, f"must be a string, not {raw!r}")
    return None


def _section(cls: type[Any], raw: Any, where: str, problems: _Problems) -> Any:
    """A dataclass from a mapping: unknown keys refused, every field type-checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.add(where, "must be a mapping of keys to values")
        return cls()
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    known = set(defaults)
    values: dict[str, Any] = {}
    for key, item in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            problems.add(path, f"unknown key; valid keys are {', '.join(sorted(known))}")
            continue
        default = defaults[key]
        negative_default = isinstance(default, int | float) and default < 0
        value = _value(item, hints[key], path, problems, allow_negative=negative_default)
        if value is not None and key in _LANGUAGE_LISTS:
            value = _codes(value, path, problems)
        if value is not None:
            values[key] = value
    return cls(**values)


def _codes(codes: tuple[str, ...], where: str, problems: _Problems) -> tuple[str, ...]:
    normal = []
    for code in codes:
        iso = languages.normalize(code)
        if iso is None:
            problems.add(where, f"unknown language code {code!r}")
        else:
            normal.append(iso)
    return tuple(normal)


def _anchored(path: Path, base: Path | None) -> Path:
    """Relative paths in a file are relative to the file's folder."""
    return path if path.is_absolute() or base is None else (base / path).resolve()


def _watch(raw: Any, problems: _Problems, base: Path | None) -> tuple[WatchRoot, ...]:
    if not isinstance(raw, list) or not raw:
        problems.add("watch", "must be a list of folders, each with at least a 'path'")
        return ()
    roots = []
    for index, item in enumerate(raw):
        where = f"watch[{index}]"
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, Mapping) or "path" not in item:
            problems.add(where, "needs a 'path'")
            continue
        root = _section(WatchRoot, item, where, problems)
        root = dataclasses.replace(root, path=_anchored(root.path, base))
        if not root.path.is_absolute():
            problems.add(f"{where}.path", f"must be an absolute path, not {root.path}")
        elif not root.path.is_dir():
            problems.add(f"{where}.path", f"directory {root.path} does not exist")
        roots.append(root)
    return tuple(roots)


def _cross_checks(settings: DaemonSettings, problems: _Problems) -> None:
    cues = settings.transcribe.cues
    if not cues.min_duration_seconds < cues.max_duration_seconds:
        problems.add("cues", "min_duration_seconds must be below max_duration_seconds")
    if cues.max_line_chars < 10 or cues.max_lines < 1:
        problems.add("cues", "max_line_chars must be at least 10 and max_lines at least 1")
    if settings.retry.max_attempts < 1:
        problems.add("retry.max_attempts", "must be at least 1")
    if settings.retry.transient_budget_hours <= 0:
        problems.add("retry.transient_budget_hours", "must be more than 0")
    model = settings.transcribe.model
    for key in ("beam_size", "batch_size"):
        value = getattr(model, key)
        if value != "auto" and value < 1:
            problems.add(f"model.{key}", "must be 'auto' or at least 1")
    if model.compute_type not in COMPUTE_TYPES:
        problems.add("model.compute_type", f"{model.compute_type!r} is not one of "
                     f"{', '.join(COMPUTE_TYPES)}")
    if settings.transcribe.language.language != "auto" and \
            languages.normalize(settings.transcribe.language.language) is None:
        problems.add("language.language", "must be 'auto' or a language code")
    paths = [r.path.resolve() for r in settings.watch]
    for i, first in enumerate(paths):
        for second in paths[i + 1:]:
            if first == second or first in second.parents or second in first.parents:
                problems.add("watch", f"folders {first} and {second} overlap")
    extensions = settings.scan.include_extensions
    if any(not e.startswith(".") for e in extensions):
        problems.add("scan.include_extensions", "each extension starts with a dot (.mkv)")


def parse(document: Any, base: Path | None = None) -> DaemonSettings:
    """Validate a loaded YAML document; raise ConfigError listing every problem. Relative
    paths are taken from `base` (the config file's folder), or refused without one."""
    problems = _Problems()
    if not isinstance(document, Mapping):
        raise ConfigError("the configuration must be a mapping of keys to values",
                          stage="config")
    for key in document:
        if key not in _TOP_KEYS:
            problems.add(str(key), f"unknown key; valid keys are {', '.join(sorted(_TOP_KEYS))}")
    sections = {name: _section(cls, document.get(name), name, problems)
                for name, cls in _SECTIONS.items()}
    audio = _value(document.get("audio_languages", []), tuple[str, ...], "audio_languages",
                   problems)
    stall = _value(document.get("stall_seconds", TranscribeSettings.stall_seconds), float,
                   "stall_seconds", problems)
    if stall == 0:
        problems.add("stall_seconds", "must be more than 0")
    state_dir = _value(document.get("state_dir") or str(default_state_dir()), Path, "state_dir",
                       problems)
    log_level = document.get("log_level", "info")
    if log_level not in _LOG_LEVELS:
        problems.add("log_level", f"{log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    settings = DaemonSettings(
        watch=_watch(document.get("watch"), problems, base),
        state_dir=_anchored(state_dir or default_state_dir(), base),
        scan=sections["scan"], retry=sections["retry"],
        transcribe=TranscribeSettings(
            model=sections["model"], language=sections["language"],
            speech=sections["speech"], filters=sections["filters"], cues=sections["cues"],
            output=sections["output"], skip=sections["skip"],
            preferred_audio_languages=_codes(audio or (), "audio_languages", problems),
            stall_seconds=float(stall or TranscribeSettings.stall_seconds)),
        http=sections["http"],
        log_level=str(log_level),
    )
    _cross_checks(settings, problems)
    if problems:
        raise ConfigError("\n".join(problems), stage="config")
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
