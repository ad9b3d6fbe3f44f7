from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from subtitled.config_file import load, parse
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
    default = parse({"watch": [str(tmp_path)], "model": {"model_dir": str(tmp_path / "models")},
                     "state_dir": "/var/lib/subtitled"})
    assert settings == default


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    problems = problems_of({
        "watch": [{"path": "/no/such/folder"}, {"recursive": True}, str(tmp_path)],
        "model": {"engine": "whisper.cpp", "beam_size": "five"},
        "cues": {"max_line_chars": 42, "colour": "yellow"},
        "language": {"allowed": ["en", "xx1"]},
        "retry": {"max_attempts": 0},
        "log_level": "loud",
        "extra": 1,
    })
    expected = [
        "At 'extra': unknown key",
        "At 'model.engine': 'whisper.cpp' is not one of auto, openai-whisper, faster-whisper",
        "At 'model.beam_size': must be an integer or 'auto', not 'five'",
        "At 'cues.colour': unknown key; valid keys are max_chars_per_second",
        "At 'language.allowed': unknown language code 'xx1'",
        "At 'log_level': 'loud' is not one of debug, info, warning, error",
        "At 'watch[0].path': directory /no/such/folder does not exist",
        "At 'watch[1]': needs a 'path'",
        "At 'retry.max_attempts': must be at least 1",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize(
    ("document", "problem"),
    [({"watch": []}, "At 'watch': must be a list of folders"),
     ({"watch": ["relative/path"]}, "must be an absolute path"),
     ({"watch": ["/tmp"], "cues": {"min_duration_seconds": 8}},
      "min_duration_seconds must be below max_duration_seconds"),
     ({"watch": ["/tmp", "/"]}, "overlap"),
     ({"watch": ["/tmp"], "scan": {"settle_seconds": -1}}, "must not be negative"),
     ({"watch": ["/tmp"], "scan": {"include_extensions": ["mkv"]}}, "starts with a dot"),
     ({"watch": ["/tmp"], "skip": {"existing_sidecar": "yes"}}, "must be true or false"),
     ({"watch": ["/tmp"], "model": {"batch_size": 0}}, "At 'model.batch_size': must be 'auto' "
      "or at least 1"),
     ({"watch": ["/tmp"], "model": {"compute_type": "int4"}}, "At 'model.compute_type': "
      "'int4' is not one of auto, int8"),
     ([1, 2], "must be a mapping")],
)
def test_cross_field_and_shape_checks(document: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse(document)


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
    (tmp_path / "no-such-folder").mkdir()  # a service's, which `sudo -u` should find
    assert config.default_state_dir() == tmp_path / "no-such-folder"
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "unit"))
    assert parse({"watch": [str(tmp_path)]}).state_dir == tmp_path / "unit"
