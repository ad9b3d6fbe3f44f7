from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import pytest

from subtitled.cli import OneLinePaths, build_parser, journal_stream, main, settings_from_args
from subtitled.errors import ConfigError


def parse(*argv: str) -> object:
    return build_parser().parse_args(["transcribe", *argv, "film.mkv"])


def test_options_become_settings() -> None:
    settings = settings_from_args(parse(  # type: ignore[arg-type]
        "--model", "base", "--engine", "faster-whisper", "--language", "de",
        "--language-mode", "per-chunk", "--allowed-languages", "eng,ger", "--task", "translate",
        "--audio-language", "jpn", "--force", "--max-line-chars", "37", "--max-cps", "17",
        "--model-dir", "/m", "--offline", "--beam-size", "1", "--batch-size", "4"))
    assert settings.model.name == "base" and settings.model.engine == "faster-whisper"
    assert settings.model.model_dir == Path("/m") and settings.model.offline
    assert settings.model.beam_size == 1 and settings.model.batch_size == 4
    assert settings.language.language == "de" and settings.language.mode == "per-chunk"
    assert settings.language.allowed == ("en", "de") and settings.language.task == "translate"
    assert settings.preferred_audio_languages == ("ja",)
    assert settings.output.overwrite
    assert settings.cues.max_line_chars == 37 and settings.cues.max_chars_per_second == 17


def test_engine_beam_batch_and_precision_are_auto_unless_given() -> None:
    model = settings_from_args(parse()).model  # type: ignore[arg-type]
    assert (model.engine, model.beam_size, model.batch_size, model.compute_type) == \
        ("auto", "auto", "auto", "auto")
    model = settings_from_args(parse("--batch-size", "auto", "--beam-size", "2",  # type: ignore[arg-type]
                                     "--compute-type", "int8_float32")).model
    assert (model.beam_size, model.batch_size, model.compute_type) == (2, "auto", "int8_float32")
    with pytest.raises(SystemExit):
        parse("--batch-size", "many")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [(("--language", "klingon"), "At '--language': unknown language code 'klingon'"),
     (("--min-duration", "8"), "At '--min-duration': must be below --max-duration"),
     (("--max-line-chars", "3"), "At '--max-line-chars': must be at least 10, not 3"),
     (("--batch-size", "0"), "At '--batch-size': must be at least 1 or 'auto', not 0"),
     (("--allowed-languages", "en,zz9"), "At '--allowed-languages': unknown language code "
      "'zz9'"),
     (("--max-cps", "0"), "At '--max-cps': must be at least 5"),
     (("--template", "{stem}.{language}.srt"), "At '--template': '{stem}.{language}.srt' "
      "uses language"),
     (("--model", "tiny.en", "--language", "de"), "At '--model': tiny.en knows only "
      "English")],
)
def test_options_go_through_the_configuration_schema(argv: tuple[str, ...],
                                                     problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        settings_from_args(parse(*argv))  # type: ignore[arg-type]


def test_every_bad_option_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_args(parse("--max-cps", "0", "--language", "zz"))  # type: ignore[arg-type]
    assert "--max-cps" in raised.value.message and "--language" in raised.value.message


def test_option_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", "--language", "klingon", "film.mkv"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "subtitled: error: options: At '--language': unknown language code " \
                  "'klingon'"


def test_under_journald_every_line_carries_the_records_priority() -> None:
    formatter = OneLinePaths("%(levelname)s %(name)s: %(message)s", priorities=True)

    def line(level: int, message: str, exc_info: object = None) -> str:
        return formatter.format(logging.LogRecord("subtitled", level, __file__, 1, message,
                                                  None, exc_info))  # type: ignore[arg-type]

    assert line(logging.WARNING, "paused") == "<4>WARNING subtitled: paused"
    assert line(logging.INFO, "idle").startswith("<6>")
    assert line(logging.DEBUG, "decoded").startswith("<7>")
    try:
        raise ValueError("broken")
    except ValueError:
        lines = line(logging.ERROR, "failed", sys.exc_info()).split("\n")
    assert len(lines) > 2 and all(text.startswith("<3>") for text in lines)
    plain = OneLinePaths("%(message)s").format(
        logging.LogRecord("subtitled", logging.WARNING, __file__, 1, "paused", None, None))
    assert plain == "paused"


def test_the_journal_is_recognised_by_the_stream_not_the_variable(tmp_path: Path) -> None:
    stat = os.fstat(sys.stderr.fileno())
    assert journal_stream({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
    # stderr redirected elsewhere by the admin: the variable is inherited, the stream is not.
    assert not journal_stream({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"})
    assert not journal_stream({"JOURNAL_STREAM": "garbage"})
    assert not journal_stream({})


@pytest.mark.parametrize("command", ["run", "transcribe"])
def test_the_allocator_policy_is_taken_before_the_command_starts_a_thread(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy holds only for threads that allocate after it (tests/unit/
    test_allocator.py): the daemon's HTTP server and the rest start after this."""
    from subtitled import allocator, commands
    from subtitled.service import daemon

    order: list[str] = []
    threads_then: list[int] = []

    def policy() -> bool:
        import threading

        threads_then.append(threading.active_count())
        order.append("policy")
        return True

    monkeypatch.setattr(allocator, "keep_freed_memory", policy)
    def run(*_: object) -> int:
        order.append("run")
        return 0

    monkeypatch.setattr(daemon.Daemon, "run", run)
    monkeypatch.setattr(commands, "transcribe", run)
    (tmp_path / "media").mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"watch: [{tmp_path / 'media'}]\nstate_dir: {tmp_path / 'state'}\n")
    argv = ["run", "--config", str(config)] if command == "run" else \
        ["transcribe", str(tmp_path)]
    assert main(argv) == 0
    assert order == ["policy", "run"]
    assert threads_then == [1]  # nothing but the main thread yet
