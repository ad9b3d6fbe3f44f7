from __future__ import annotations

import dataclasses
import os
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from subtitled.config import WatchRoot
from subtitled.config_file import _Document, load, parse
from subtitled.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def problems_of(document: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(document)
    return raised.value.message.splitlines()


def test_the_example_documents_every_key_with_its_default(tmp_path: Path) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["watch"] = [{"path": str(tmp_path)}]
    document["model"]["model_dir"] = str(tmp_path / "models")
    settings = parse(document)
    default = parse({"watch": [str(tmp_path)], "model": {"model_dir": str(tmp_path / "models")}})
    assert settings == default


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    problems = problems_of({
        "watch": [{"path": str(tmp_path)}, {"recursive": True}],
        "model": {"engine": "whisper.cpp", "beam_size": "five"},
        "cues": {"max_line_chars": 42, "colour": "yellow"},
        "language": {"allowed": ["en", "xx1"]},
        "retry": {"max_attempts": 0},
        "log_level": "loud",
        "extra": 1,
    })
    expected = [
        "At 'extra': unknown key; valid keys are audio_languages, cues,",
        "At 'model.engine': must be one of 'auto', 'openai-whisper', 'faster-whisper', not "
        "'whisper.cpp'",
        "At 'model.beam_size': must be an integer or 'auto', not 'five'",
        "At 'cues.colour': unknown key; valid keys are max_chars_per_second",
        "At 'language.allowed[1]': unknown language code 'xx1'",
        "At 'log_level': must be one of 'debug', 'info', 'warning', 'error', not 'loud'",
        "At 'watch[1].path': required",
        "At 'retry.max_attempts': must be at least 1, not 0",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("document", "problem"),
    [({"watch": []}, "At 'watch': must be a list of at least one entry"),
     ({"watch": ["relative/path"]}, "must be an absolute path"),
     ({"cues": {"min_duration_seconds": 8}}, "At 'cues.min_duration_seconds': must be below "
      "cues.max_duration_seconds"),
     ({"watch": ["/tmp", "/"]}, "overlap"),
     ({"output": {"formats": ["srt", "sub"]}},
      "At 'output.formats[1]': must be one of 'srt', 'vtt', 'ass', 'lrc', not 'sub'"),
     ({"output": {"formats": ["vtt", "vtt"]}}, "['vtt', 'vtt'] names a format twice"),
     ({"hotwords": ["Zorblax", "  "]}, "At 'hotwords[1]': a hotword is a name or a word"),
     ({"hotwords": ["Quenthir"] * 50}, "At 'hotwords': the hotwords come to more than 400"),
     ({"hotwords": ["Quenthir"] * 25, "watch": [{"path": "/", "hotwords": ["Mordane"] * 25}]},
      "At 'watch[0].hotwords': with the global hotwords they come to more than 400"),
     ({"watch": [{"path": "/srv/music", "formats": []}]},
      "At 'watch[0].formats': must be a list of at least one entry, not []"),
     ({"scan": {"settle_seconds": -1}}, "At 'scan.settle_seconds': must be at least 0, "
      "not -1"),
     ({"scan": {"include_extensions": ["mkv"]}}, "starts with a dot"),
     ({"skip": {"existing_sidecar": "yes"}}, "must be true or false, not 'yes'"),
     ({"model": {"batch_size": 0}}, "At 'model.batch_size': must be at least 1 or 'auto'"),
     ({"model": {"compute_type": "int4"}}, "At 'model.compute_type': 'int4' is not one of "
      "auto, int8"),
     ({"retry": {"backoff_seconds": 600, "backoff_max_seconds": 60}},
      "At 'retry.backoff_max_seconds': must be at least retry.backoff_seconds"),
     ({"language": {"each_audio_language": True, "task": "translate"}},
      "At 'language.each_audio_language': every track would give the same subtitle"),
     ({"language": {"each_audio_language": True, "language": "ja"}},
      "At 'language.each_audio_language': every track would be taken for ja"),
     ([1, 2], "must be a mapping")],
)
def test_cross_field_and_shape_checks(document: Any, problem: str) -> None:
    if isinstance(document, dict):
        document = {"watch": ["/tmp"], **document}
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse(document)


# Values that used to pass validation and then fail or misbehave at run time (issue 14).
TRAPS = [
    ({"speech": {"max_chunk_seconds": 60}}, "At 'speech.max_chunk_seconds': must be at most 30"),
    ({"language": {"vote_windows": 0}}, "At 'language.vote_windows': must be at least 1"),
    ({"cues": {"max_chars_per_second": 0}}, "At 'cues.max_chars_per_second': must be at least"),
    ({"filters": {"min_loop_repeats": 0}}, "At 'filters.min_loop_repeats': must be at least 2"),
    ({"output": {"template": "{stem}.{language}.srt"}},
     "At 'output.template': '{stem}.{language}.srt' uses language; the fields are"),
    ({"output": {"template": "{stem}.srt"}}, "must give a file name beside the video that "
     "holds {lang}"),
    ({"language": {"language": "zz"}}, "At 'language.language': unknown language code 'zz'"),
    ({"model": {"name": "tiny.en"}, "language": {"language": "de"}},
     "At 'model.name': tiny.en knows only English: language de needs a multilingual model"),
    ({"scan": {"rescan_interval_seconds": 0}}, "At 'scan.rescan_interval_seconds': must be "
     "at least 60"),
    ({"scan": {"polling_interval_seconds": 0}}, "At 'scan.polling_interval_seconds': must be "
     "at least 1"),
    ({"http": {"port": 70000}}, "At 'http.port': must be at most 65535, not 70000"),
    ({"http": {"trusted_networks": ["172.17.0.0/33"]}}, "At 'http.trusted_networks[0]': "
     "'172.17.0.0/33' is not an IP address or network"),
    ({"http": {"path_map": [{"remote": "data/media", "local": "/srv/media"}]}},
     "At 'http.path_map[0].remote': 'data/media': a path map's folders are absolute"),
    ({"http": {"path_map": [{"remote": "/data"}]}}, "At 'http.path_map[0].local': required"),
    ({"media_servers": [{"kind": "kodi", "url": "http://x", "token_file": "/t"}]},
     "At 'media_servers[0].kind': must be one of 'jellyfin', 'emby', 'plex'"),
    ({"media_servers": [{"kind": "plex", "url": "plex.local:32400", "token_file": "/t"}]},
     "At 'media_servers[0].url': 'plex.local:32400' is not an http:// or https:// URL"),
    ({"media_servers": [{"kind": "plex", "url": "http://plex:32400",
                         "token_file": "/nonexistent/token"}]},
     "At 'media_servers[0].token_file': cannot read the token from /nonexistent/token"),
    ({"http": {"enabled": True, "api_key_file": "/nonexistent/key"}},
     "At 'http.api_key_file': cannot read the API key from /nonexistent/key"),
    ({"speech": {"threshold": 0.3, "neg_threshold": 0.5}}, "At 'speech.neg_threshold': must "
     "be below speech.threshold"),
]


def test_a_state_directory_inside_a_watched_folder_is_refused(tmp_path: Path) -> None:
    # Its spooled uploads would be queued as library files, and subtitled.
    with pytest.raises(ConfigError, match=re.escape(
            f"At 'state_dir': {tmp_path / 'state'} is inside watched folder watch[0]")):
        parse({"watch": [str(tmp_path)], "state_dir": str(tmp_path / "state")})


@pytest.mark.parametrize(("document", "problem"), TRAPS)
def test_values_that_would_fail_at_run_time_are_refused(
        tmp_path: Path, document: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        parse({"watch": [str(tmp_path)], **document})


def test_what_can_be_made_right_is_made_right(tmp_path: Path) -> None:
    settings = parse({"watch": [str(tmp_path)], "scan": {"include_extensions": [".MKV"]},
                      "language": {"language": "ger"}, "model": {"model_dir": "models",
                                                                  "name": "weights/big.pt"},
                      "http": {"api_key_file": "api-key",
                               "trusted_networks": ["172.17.0.1/16"]}},
                     base=tmp_path)
    assert settings.http.api_key_file == tmp_path / "api-key"
    assert settings.http.trusted_networks == ("172.17.0.0/16",)
    assert settings.scan.include_extensions == (".mkv",)  # suffixes are matched lowercased
    assert settings.transcribe.language.language == "de"
    # Relative paths are the file's folder's, the model's own path too; a name stays a name.
    assert settings.transcribe.model.model_dir == tmp_path / "models"
    assert settings.transcribe.model.name == str(tmp_path / "weights" / "big.pt")
    named = parse({"watch": [str(tmp_path)], "model": {"name": "base"}}, base=tmp_path)
    assert named.transcribe.model.name == "base"


def _keys(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return set()
    found = set()
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        found |= {path} | _keys(item, path)
    return found


def test_the_example_names_every_key_of_the_schema() -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    written = _keys(document) | {f"watch.{k}" for k in document["watch"][0]}
    schema: set[str] = set()
    for section in dataclasses.fields(_Document):
        schema.add(section.name)
        kind = typing.get_type_hints(_Document)[section.name]
        if dataclasses.is_dataclass(kind):
            schema |= {f"{section.name}.{f.name}" for f in dataclasses.fields(kind)}
    schema |= {f"watch.{f.name}" for f in dataclasses.fields(WatchRoot)}
    # state_dir and model.model_dir are shown commented out: their defaults depend on where
    # the daemon runs (systemd's directories, the user's).
    assert "# state_dir:" in EXAMPLE.read_text() and "# model_dir:" in EXAMPLE.read_text()
    assert schema - written == {"state_dir", "model.model_dir"}, \
        "keys of the schema the example leaves out"
    assert written - schema - {"watch.path"} <= {"watch"}, written - schema


def test_negative_thresholds_stay_allowed(tmp_path: Path) -> None:
    settings = parse({"watch": [str(tmp_path)], "filters": {"logprob_threshold": -0.8}})
    assert settings.transcribe.filters.logprob_threshold == -0.8


def test_folder_language_lists_become_iso_codes(tmp_path: Path) -> None:
    settings = parse({"watch": [{"path": str(tmp_path), "languages": ["eng", "ger"]}],
                      "audio_languages": ["jpn"]})
    assert settings.watch[0].languages == ("en", "de")
    assert settings.transcribe.preferred_audio_languages == ("ja",)


def test_a_file_that_is_not_yaml_is_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("watch: [unclosed\n  - x: {")
    with pytest.raises(ConfigError, match=r"is not valid YAML \(line \d+\)"):
        load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_the_state_directory_follows_systemd_then_the_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from subtitled import config

    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}/state:{tmp_path}/other")
    assert config.default_state_dir() == tmp_path / "state"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr(config, "SYSTEM_STATE_DIR", tmp_path / "no-such-folder")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert config.default_state_dir() == tmp_path / "xdg" / "subtitled"
    (tmp_path / "no-such-folder").mkdir()  # another user's service: not ours
    assert config.default_state_dir() == tmp_path / "xdg" / "subtitled"
    os.chown(tmp_path / "no-such-folder", 1000, 1000)  # ours: `sudo -u subtitled` finds it
    assert config.default_state_dir() == tmp_path / "no-such-folder"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "unit"))
    (tmp_path / "media").mkdir()
    assert parse({"watch": [str(tmp_path / "media")]}).state_dir == tmp_path / "unit"


def test_the_quick_start_s_configuration_is_valid(tmp_path: Path) -> None:
    # The README's first command runs the daemon on it, with sample/ beside examples/.
    example = Path(__file__).resolve().parents[2] / "examples" / "sample.yaml"
    (tmp_path / "examples").mkdir()
    (tmp_path / "sample").mkdir()
    settings = parse(yaml.safe_load(example.read_text()), base=tmp_path / "examples")
    assert settings.watch[0].path == tmp_path / "sample"
    assert settings.state_dir == tmp_path / ".sample-state"


def test_polling_on_and_off_unquoted_are_the_modes_not_booleans(tmp_path: Path) -> None:
    """YAML 1.1 reads a bare `on` as true: the example's `polling: on` must still work."""
    (tmp_path / "media").mkdir()
    for written, meant in (("on", "on"), ("off", "off"), ("auto", "auto"), ("yes", "on")):
        config = tmp_path / "config.yaml"
        config.write_text(f"watch: [{tmp_path / 'media'}]\nscan:\n  polling: {written}\n")
        assert load(config).scan.polling == meant


def test_a_roots_hotwords_join_the_global_ones_and_its_formats_replace_them(
        tmp_path: Path) -> None:
    films, music = tmp_path / "films", tmp_path / "music"
    films.mkdir()
    music.mkdir()
    settings = parse({"watch": [{"path": str(films), "hotwords": ["Zorblax", "Quenthir"]},
                                {"path": str(music), "formats": ["lrc"]}],
                      "hotwords": ["Quenthir", "Mordane"], "output": {"formats": ["srt"]}})
    film = settings.for_file(films / "Show" / "e01.mkv")
    assert film.hotwords == ("Mordane", "Zorblax", "Quenthir")  # the folder's last
    assert film.output.formats == ("srt",)
    song = settings.for_file(music / "Song.mp3")
    assert song.hotwords == ("Quenthir", "Mordane") and song.output.formats == ("lrc",)
    assert settings.for_file(tmp_path / "elsewhere.mkv") == settings.transcribe
