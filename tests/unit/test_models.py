from __future__ import annotations

from pathlib import Path

import pytest

from subtitled import models
from subtitled.config import ModelSettings
from subtitled.errors import ModelError


def ct2_folder(path: Path, payload: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(payload)
    (path / "config.json").write_text("{}")
    return path


def test_a_pt_path_is_an_openai_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "my-finetune.pt"
    checkpoint.write_bytes(b"x")
    source = models.resolve(ModelSettings(name=str(checkpoint), model_dir=tmp_path / "m"))
    assert source == models.ModelSource("openai-checkpoint", "my-finetune", checkpoint)


def test_a_ctranslate2_folder_path_is_used_as_is(tmp_path: Path) -> None:
    folder = ct2_folder(tmp_path / "whisper-ct2")
    source = models.resolve(ModelSettings(name=str(folder), engine="faster-whisper"))
    assert source == models.ModelSource("ctranslate2", "whisper-ct2", folder)


@pytest.mark.parametrize("name", ["/nowhere/model.pt", "./missing-dir/"])
def test_a_missing_path_says_so(name: str) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve(ModelSettings(name=name))


def test_a_folder_without_weights_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"neither a \.pt checkpoint nor"):
        models.resolve(ModelSettings(name=str(tmp_path)))


def test_names_are_found_in_the_model_folder_first(tmp_path: Path) -> None:
    (tmp_path / "large-v3.pt").write_bytes(b"x")
    folder = ct2_folder(tmp_path / "large-v3")
    openai = models.resolve(ModelSettings(name="large-v3", model_dir=tmp_path,
                                          engine="openai-whisper"))
    faster = models.resolve(ModelSettings(name="large-v3", model_dir=tmp_path,
                                          engine="faster-whisper"))
    assert openai.kind == "openai-checkpoint" and openai.path == tmp_path / "large-v3.pt"
    assert faster == models.ModelSource("ctranslate2", "large-v3", folder)


def test_offline_with_nothing_local_says_where_to_put_which_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as raised:
        models.resolve(ModelSettings(name="large-v3", model_dir=tmp_path, offline=True))
    message = raised.value.message
    assert "put large-v3.pt (from https://" in message
    assert str(tmp_path) in message and "--model" in message
    with pytest.raises(ModelError, match=f"CTranslate2 folder .* at {tmp_path}/large-v3"):
        models.resolve(ModelSettings(name="large-v3", model_dir=tmp_path, offline=True,
                                     engine="faster-whisper"))


def test_online_names_fall_through_to_a_download(tmp_path: Path) -> None:
    source = models.resolve(ModelSettings(name="large-v3", model_dir=tmp_path))
    assert source == models.ModelSource("download", "large-v3")


def test_split_weight_packages_are_joined_once(tmp_path: Path) -> None:
    first, second = tmp_path / "p1", tmp_path / "p2"
    first.mkdir()
    second.mkdir()
    (first / "model.bin.part1").write_bytes(b"abc")
    (second / "model.bin.part2").write_bytes(b"def")
    (first / "config.json").write_text("{}")
    target = tmp_path / "models" / "base-ct2"
    assert models._join_parts([first, second], target) == target
    assert (target / "model.bin").read_bytes() == b"abcdef"
    assert (target / "config.json").is_file()
    stamp = (target / "model.bin").stat().st_mtime_ns
    assert models._join_parts([first, second], target) == target
    assert (target / "model.bin").stat().st_mtime_ns == stamp
    assert not (target / "model.bin.tmp").exists()
