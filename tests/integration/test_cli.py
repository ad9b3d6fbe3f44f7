"""The command as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import DATA


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "subtitled", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize(("engine", "where"), [
    ("openai-whisper", "put large-v3.pt (from https://"),
    ("auto", "put a CTranslate2 folder (model.bin"),  # a CPU: faster-whisper
])
def test_offline_without_the_model_says_where_to_put_it(tmp_path: Path, engine: str,
                                                        where: str) -> None:
    clip = tmp_path / "jfk.flac"
    clip.symlink_to(DATA / "en_jfk_inaugural.flac")
    result = run("transcribe", "--model", "large-v3", "--offline", "--engine", engine,
                 "--model-dir", str(tmp_path / "models"), str(clip))
    assert result.returncode == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("subtitled: error: model: model 'large-v3' is not available offline")
    assert where in line and str(tmp_path / "models") in line
    assert [p.name for p in tmp_path.iterdir()] == ["jfk.flac"]


def test_an_existing_subtitle_is_kept_and_force_replaces_it(tmp_path: Path) -> None:
    clip = tmp_path / "jfk.flac"
    clip.symlink_to(DATA / "en_jfk_inaugural.flac")
    mine = tmp_path / "jfk.en.srt"
    mine.write_text("1\n00:00:01,000 --> 00:00:02,000\nmy own\n")
    args = ("transcribe", "--model", "tiny.en", "--model-dir", str(tmp_path / "m"), str(clip))
    kept = run(*args)
    assert kept.returncode == 0
    assert kept.stdout.strip() == f"{clip}: {mine} already exists (--force replaces it)"
    assert mine.read_text() == "1\n00:00:01,000 --> 00:00:02,000\nmy own\n"
    forced = run(*args, "--force")
    assert forced.returncode == 0 and "country" in mine.read_text()


def test_help_and_option_checks_start_without_loading_torch() -> None:
    code = "import sys, subtitled.cli; print(sorted({'torch', 'whisper', 'ffmpeg'} & " \
           "set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_a_folder_stands_for_its_media_files_and_options_go_anywhere(tmp_path: Path) -> None:
    library, empty = tmp_path / "library", tmp_path / "empty"
    (library / "Season 1").mkdir(parents=True)
    empty.mkdir()
    film = library / "Season 1" / "jfk.mkv"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i",
                    str(DATA / "en_jfk_inaugural.flac"), "-c:a", "aac", str(film)], check=True)
    (library / "notes.txt").write_text("not media")
    (library / "Season 1" / "next.mkv.part").write_bytes(b"still copying")
    result = run("transcribe", str(library), str(empty), "--model", "tiny.en",
                 "--model-dir", str(tmp_path / "m"), "-v")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(f"{film} -> {film.with_suffix('.en.srt')}")
    assert len(result.stdout.splitlines()) == 1
    assert f"subtitled: {empty}: no media files in this folder" in result.stderr
    assert " INFO subtitled" in result.stderr  # -v after the command counts
    assert sorted(p.name for p in library.rglob("*.srt")) == ["jfk.en.srt"]


def test_check_config_lists_every_value_that_would_fail_at_run_time(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "watch": [str(tmp_path)],
        "speech": {"max_chunk_seconds": 60},
        "language": {"vote_windows": 0, "language": "zz"},
        "cues": {"max_chars_per_second": 0},
        "filters": {"min_loop_repeats": 0},
        "output": {"template": "{stem}.{language}.srt"},
        "scan": {"rescan_interval_seconds": 0, "polling_interval_seconds": 0},
        "http": {"port": 70000},
    }))
    result = run("check-config", str(config))
    assert result.returncode == 2 and result.stdout == ""
    problems = result.stderr
    for key in ("speech.max_chunk_seconds", "language.vote_windows", "language.language",
                "cues.max_chars_per_second", "filters.min_loop_repeats", "output.template",
                "scan.rescan_interval_seconds", "scan.polling_interval_seconds", "http.port"):
        assert f"At '{key}':" in problems, (key, problems)
    english = tmp_path / "english.yaml"
    english.write_text(yaml.safe_dump({"watch": [str(tmp_path)], "model": {"name": "tiny.en"},
                                       "language": {"language": "de"}}))
    refused = run("check-config", str(english))
    assert refused.returncode == 2 and "tiny.en knows only English" in refused.stderr
    fine = tmp_path / "fine.yaml"
    fine.write_text(yaml.safe_dump({"watch": [str(tmp_path)],
                                    "scan": {"include_extensions": [".MKV"]}}))
    assert run("check-config", str(fine)).stdout.strip() == f"{fine}: ok"
