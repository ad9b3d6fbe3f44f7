"""Whose fault: the file's or the world's (subtitled.faults), and the breaker that pauses
the daemon when the world's faults repeat (subtitled.service.breaker)."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path

import pytest

from subtitled import faults
from subtitled.errors import EngineStuck, EnvironmentFault, MediaError
from subtitled.service.breaker import Breaker, read_status
from tests.unit.fakes import Clock

MOVIE = Path("/library/nas/Movie.mkv")


def os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code), str(MOVIE))


@pytest.mark.parametrize(("code", "kind"), [
    (errno.EIO, "storage"), (errno.ESTALE, "storage"), (errno.ETIMEDOUT, "storage"),
    (errno.ENOTCONN, "storage"), (errno.EHOSTDOWN, "storage"), (errno.ENOSPC, "space"),
    (errno.EDQUOT, "space"), (errno.EROFS, "read-only"), (errno.EACCES, "access")])
def test_errors_of_the_storage_are_the_environments(code: int, kind: str) -> None:
    found = faults.from_os_error(os_error(code), path=MOVIE, stage="extract")
    assert isinstance(found, EnvironmentFault)
    assert found.kind == kind and found.where == MOVIE.parent
    assert found.one_line() == f"{MOVIE}: extract: {os.strerror(code)}"


@pytest.mark.parametrize("code", [errno.ELOOP, errno.ENAMETOOLONG, errno.EISDIR])
def test_other_errors_are_the_files(code: int) -> None:
    found = faults.from_os_error(os_error(code), path=MOVIE, stage="open")
    assert type(found) is MediaError


def test_gone_is_only_a_missing_file() -> None:
    assert faults.is_gone(os_error(errno.ENOENT)) and faults.is_gone(os_error(errno.ENOTDIR))
    assert not faults.is_gone(os_error(errno.ESTALE))


def test_a_tool_killed_or_reporting_a_failing_share_is_the_environments() -> None:
    killed = faults.from_tool_exit("ffmpeg", -signal.SIGKILL, "ffmpeg exited with -9",
                                   path=MOVIE, stage="extract")
    assert isinstance(killed, EnvironmentFault) and killed.kind == "tool"
    assert "killed by SIGKILL" in killed.message
    share = faults.from_tool_exit(
        "ffprobe", 1, f"ffprobe cannot read it: {MOVIE}: Input/output error", path=MOVIE,
        stage="probe")
    assert isinstance(share, EnvironmentFault) and share.kind == "storage"
    bad = faults.from_tool_exit("ffprobe", 1, "ffprobe cannot read it: Invalid data found "
                                "when processing input", path=MOVIE, stage="probe")
    assert type(bad) is MediaError


def test_sticky_cuda_errors_need_a_new_process_and_others_do_not() -> None:
    stuck = faults.from_engine_error(RuntimeError(
        "CUDA error: an illegal memory access was encountered\nCompile with "
        "`TORCH_USE_CUDA_DSA` to enable device-side assertions."), path=MOVIE)
    assert isinstance(stuck, EngineStuck) and stuck.exit_code == 75
    assert "\n" not in stuck.one_line()
    cublas = faults.from_engine_error(RuntimeError(
        "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, ...)`"),
        path=MOVIE)
    assert isinstance(cublas, EngineStuck)
    other = faults.from_engine_error(ValueError("expected 80 mel bins"), path=MOVIE)
    assert not isinstance(other, EngineStuck) and other.kind == "engine"


def test_the_probe_writes_into_the_folder_it_checks(tmp_path: Path) -> None:
    fault = EnvironmentFault("No space left on device", kind="space", where=tmp_path)
    assert faults.probe(fault) is None
    assert list(tmp_path.iterdir()) == []  # the probe file is gone again
    # A folder that is gone has nothing left to wait for.
    gone = EnvironmentFault("Read-only file system", kind="read-only",
                            where=tmp_path / "deleted")
    assert faults.probe(gone) is None
    assert faults.probe(EnvironmentFault("engine", kind="engine")) is None


def test_the_probe_fails_while_the_file_still_cannot_be_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    film = tmp_path / "film.mkv"
    film.write_bytes(b"x")
    fault = EnvironmentFault("Stale file handle", kind="storage", path=film, where=tmp_path)
    monkeypatch.setenv("SUBTITLED_FAILPOINTS", "ESTALE-at-stat:film")
    assert faults.probe(fault) == os.strerror(errno.ESTALE)
    monkeypatch.delenv("SUBTITLED_FAILPOINTS")
    assert faults.probe(fault) is None


def test_a_probe_that_does_not_answer_has_failed() -> None:
    def hangs() -> str | None:
        time.sleep(5)
        return None

    assert faults.within(0.2, hangs, "no answer") == "no answer"
    assert faults.within(5, lambda: "still down", "no answer") == "still down"


def fault(kind: str, name: str, folder: Path) -> EnvironmentFault:
    return EnvironmentFault("Transport endpoint is not connected", kind=kind,
                            path=folder / name, stage="extract", where=folder)


def test_a_share_pauses_its_root_when_two_files_fail_and_a_full_disk_at_once(
        tmp_path: Path) -> None:
    nas, local = tmp_path / "nas", tmp_path / "local"
    for root in (nas, local):
        root.mkdir()
    clock = Clock()
    breaker = Breaker([nas, local], clock=clock)
    assert breaker.fault(fault("storage", "a.mkv", nas / "Films")) is None  # could be a.mkv's
    assert breaker.retry_at(fault("storage", "a.mkv", nas)) == clock.now + 15
    pause = breaker.fault(fault("storage", "b.mkv", nas / "Series"))
    assert pause is not None and pause.scope == str(nas)
    assert breaker.paused_folders() == [nas] and not breaker.paused_everything()
    full = breaker.fault(fault("space", "c.mkv", local))
    assert full is not None and full.scope == str(local)
    assert "paused" in breaker.describe() and "next check in 15 s" in breaker.describe()


def test_the_same_file_failing_twice_does_not_pause(tmp_path: Path) -> None:
    breaker = Breaker([tmp_path], clock=Clock())
    assert breaker.fault(fault("storage", "a.mkv", tmp_path)) is None
    assert breaker.fault(fault("storage", "a.mkv", tmp_path)) is None
    assert breaker.pauses() == []


def test_engine_faults_pause_everything_and_a_probe_lets_one_try_through(
        tmp_path: Path) -> None:
    clock = Clock()
    breaker = Breaker([tmp_path], clock=clock)
    engine = [EnvironmentFault("the engine failed", kind="engine", path=tmp_path / n)
              for n in ("a.mkv", "b.mkv", "c.mkv")]
    breaker.fault(engine[0])
    assert breaker.fault(engine[1]) is not None and breaker.paused_everything()
    assert breaker.probe_due() == []  # not yet
    clock.now += 15
    assert [p.scope for p in breaker.probe_due()] == ["all"]  # half open: a new try
    assert not breaker.paused_everything()
    # It fails again on another file: paused at once, for twice as long.
    breaker.fault(engine[2])
    again = breaker.fault(engine[0])
    assert again is not None and again.backoff == 30


def test_a_probe_that_still_fails_doubles_the_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    breaker = Breaker([tmp_path], clock=clock)
    film = tmp_path / "film.mkv"
    film.write_bytes(b"x")
    monkeypatch.setenv("SUBTITLED_FAILPOINTS", "EIO-at-stat:film")
    breaker.fault(EnvironmentFault("Input/output error", kind="space", path=film,
                                   where=tmp_path))
    clock.now += 15
    assert breaker.probe_due() == []
    (pause,) = breaker.pauses()
    assert pause.backoff == 30 and "still: Input/output error" in pause.cause
    monkeypatch.delenv("SUBTITLED_FAILPOINTS")
    clock.now += 30
    assert len(breaker.probe_due()) == 1 and breaker.pauses() == []


def test_an_unwritable_subfolder_pauses_itself_not_its_root(tmp_path: Path) -> None:
    locked = tmp_path / "Season 1"
    breaker = Breaker([tmp_path], clock=Clock())
    pause = breaker.fault(EnvironmentFault("permission denied", kind="access", where=locked))
    assert pause is not None and breaker.paused_folders() == [locked]


def test_a_root_that_went_away_is_told_from_a_deleted_file(tmp_path: Path) -> None:
    share = tmp_path / "share" / "films"  # a folder on a share: gone when it unmounts
    share.mkdir(parents=True)
    (share / "film.mkv").write_bytes(b"x")
    breaker = Breaker([share], clock=Clock())
    breaker.set_roots([share])
    (share / "film.mkv").unlink()  # deleted, even the last file: not a lost root
    assert breaker.root_lost(share / "film.mkv") is None
    share.rmdir()
    assert "cannot be read" in (breaker.root_lost(share / "film.mkv") or "")
    assert breaker.root_lost(tmp_path / "elsewhere.mkv") is None


def test_faults_that_follow_one_file_while_others_are_done_blame_that_file(
        tmp_path: Path) -> None:
    breaker = Breaker([tmp_path], clock=Clock())
    breaker.succeeded(tmp_path / "earlier.mkv")  # before the faults: no evidence
    poison = tmp_path / "poison.mkv"
    for _ in range(3):
        breaker.fault(EnvironmentFault("the engine failed", kind="engine", path=poison))
    assert not breaker.blames_file(poison)  # nothing else has worked since
    breaker.succeeded(tmp_path / "fine.mkv")
    assert breaker.blames_file(poison)


def test_the_status_file_tells_another_process_about_the_pauses(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    breaker = Breaker([tmp_path], status_file=status, clock=Clock())
    assert read_status(status) == []
    breaker.fault(EnvironmentFault("No space left on device", kind="space", where=tmp_path))
    (pause,) = read_status(status)
    assert pause.kind == "space" and pause.scope == str(tmp_path)
    size = status.stat().st_size
    breaker.fault(EnvironmentFault("the database fails", kind="state", where=tmp_path))
    assert status.stat().st_size == size  # rewritten in place: works on a full disk
    assert len(read_status(status)) == 2
