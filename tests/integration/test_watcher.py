"""A real watchdog observer on a temp folder, feeding the settler."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from subtitled.config import ScanSettings, WatchRoot
from subtitled.jobs import PRIORITY_BACKFILL, PRIORITY_NEW
from subtitled.settle import Settler
from subtitled.watcher import Watcher, filesystem_type, needs_polling

MOUNTS = """\
/dev/sda1 / ext4 rw 0 0
server:/export /srv/nfs nfs4 rw 0 0
//nas/films /srv/smb cifs rw 0 0
rclone: /srv/cloud fuse.rclone rw 0 0
/dev/sdb1 /srv/nfs/local ext4 rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "kind", "polled"),
    [("/home/me/films", "ext4", False), ("/srv/nfs/films", "nfs4", True),
     ("/srv/smb", "cifs", True), ("/srv/cloud/x", "fuse.rclone", True),
     ("/srv/nfs/local/a", "ext4", False), ("/srv/nfsx", "ext4", False)],
)
def test_network_and_fuse_mounts_are_polled(path: str, kind: str, polled: bool) -> None:
    assert filesystem_type(Path(path), MOUNTS) == kind
    assert needs_polling(Path(path), "auto", MOUNTS) is polled
    assert needs_polling(Path(path), "on", MOUNTS) and not needs_polling(Path(path), "off",
                                                                          MOUNTS)


def wait_for(condition: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


@pytest.fixture(params=["off", "on"], ids=["inotify", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[tuple[Path, Settler, list[Path]]]:
    settler = Settler(0.3)
    gone: list[Path] = []
    scan = ScanSettings(settle_seconds=0.3, polling=request.param,
                        polling_interval_seconds=0.2, rescan_interval_seconds=3600)
    (tmp_path / "old.mkv").write_bytes(b"x" * 10)
    old = time.time() - 3600
    os.utime(tmp_path / "old.mkv", (old, old))
    watcher = Watcher((WatchRoot(tmp_path),), scan, settler, gone.append)
    watcher.start()
    try:
        yield tmp_path, settler, gone
    finally:
        watcher.stop()


def collect(settler: Settler, seconds: float = 3.0) -> dict[str, int]:
    found: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path, _, priority in settler.due():
            found[path.name] = priority
        time.sleep(0.05)
    return found


def test_existing_files_are_backfilled_and_new_ones_come_first(
        watched: tuple[Path, Settler, list[Path]]) -> None:
    folder, settler, _ = watched
    (folder / "sub").mkdir()
    time.sleep(0.5)
    (folder / "sub" / "new.mp4").write_bytes(b"y" * 10)
    (folder / "notes.txt").write_text("not media")
    found = collect(settler)
    assert found == {"old.mkv": PRIORITY_BACKFILL, "new.mp4": PRIORITY_NEW}


def test_a_download_renamed_at_the_end_is_one_candidate_under_its_final_name(
        watched: tuple[Path, Settler, list[Path]]) -> None:
    folder, settler, gone = watched
    collect(settler, 1.0)
    partial = folder / "film.mkv.part"
    with open(partial, "wb") as out:
        for _ in range(5):
            out.write(b"z" * 1000)
            out.flush()
            time.sleep(0.1)
    partial.rename(folder / "film.mkv")
    assert collect(settler) == {"film.mkv": PRIORITY_NEW}
    (folder / "film.mkv").rename(folder / "renamed.mkv")
    wait_for(lambda: folder / "film.mkv" in gone)
    assert collect(settler) == {"renamed.mkv": PRIORITY_NEW}


def test_a_folder_that_cannot_be_watched_is_logged_once_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import errno

    from watchdog.observers import Observer

    def no_watches_left(*_: object, **__: object) -> None:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(Observer, "schedule", no_watches_left)  # the kernel's ENOSPC
    watcher = Watcher((WatchRoot(tmp_path),), ScanSettings(polling="off"), Settler(1.0),
                      lambda _: None)
    watcher.start()
    watcher.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "fs.inotify.max_user_watches" in errors[0] and "rescan covers it" in errors[0]
    assert watcher.degraded == [f"not watching {tmp_path}: inotify watch limit reached"]
