"""A real watchdog observer on a temp folder, feeding the settler."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from subtitled.config import ScanSettings, WatchRoot
from subtitled.jobs import PRIORITY_BACKFILL, PRIORITY_NEW
from subtitled.settle import Settler
from subtitled.watcher import Watcher, filesystem_type, needs_polling, walk

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


INOTIFY = Path("/proc/sys/fs/inotify")


@contextmanager
def inotify_limit(name: str, value: int) -> Iterator[None]:
    """Lower a kernel inotify limit for the duration (root only), then put it back."""
    setting = INOTIFY / name
    if os.geteuid() != 0 or not os.access(setting, os.W_OK):
        pytest.skip(f"lowering {setting} needs root and a writable /proc/sys")
    before = setting.read_text()
    setting.write_text(str(value))
    try:
        yield
    finally:
        setting.write_text(before)


def watches_in_use() -> int:
    """inotify watches held by every process we can see (the limit is per user)."""
    count = 0
    for info in Path("/proc").glob("[0-9]*/fdinfo/*"):
        try:
            count += info.read_text().count("inotify wd:")
        except OSError:
            continue
    return count


def test_out_of_inotify_watches_falls_back_to_polling_and_names_the_sysctl(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for number in range(30):
        (tmp_path / f"Season {number:02d}").mkdir()
    settler = Settler(0.3)
    scan = ScanSettings(settle_seconds=0.3, polling="off", polling_interval_seconds=0.3,
                        rescan_interval_seconds=3600)
    watcher = Watcher((WatchRoot(tmp_path),), scan, settler, lambda _: None)
    with inotify_limit("max_user_watches", watches_in_use() + 5):
        watcher.start()
        try:
            (tmp_path / "Season 17" / "new.mkv").write_bytes(b"x" * 10)
            assert collect(settler) == {"new.mkv": PRIORITY_NEW}
        finally:
            watcher.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "sysctl fs.inotify.max_user_watches=" in errors[0] and "polling" in errors[0]
    assert watcher.degraded == [f"polling {tmp_path} (inotify limit reached: raise "
                                "fs.inotify.max_user_watches)"]


def test_folders_added_after_the_watches_ran_out_are_polled_and_rescanned(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settler = Settler(0.3)
    scan = ScanSettings(settle_seconds=0.3, polling="off", polling_interval_seconds=0.3,
                        rescan_interval_seconds=3600)
    watcher = Watcher((WatchRoot(tmp_path),), scan, settler, lambda _: None)
    watcher.start()
    try:
        with inotify_limit("max_user_watches", watches_in_use() + 3):
            names = set()
            for number in range(12):
                season = tmp_path / f"Season {number:02d}"
                season.mkdir()
                time.sleep(0.05)  # the watch (if any) is added when the event is read
                (season / f"e{number:02d}.mkv").write_bytes(b"x")
                names.add(f"e{number:02d}.mkv")
            found = collect(settler, seconds=8.0)
        assert set(found) == names
        late = tmp_path / "Season 11" / "late.mkv"  # only polling can see this one
        late.write_bytes(b"x")
        assert collect(settler) == {"late.mkv": PRIORITY_NEW}
    finally:
        watcher.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "inotify watch limit reached (" in errors[0], errors
    assert "sysctl fs.inotify.max_user_watches=" in errors[0]


def test_the_walk_skips_symlink_loops_and_links_to_the_root_and_unreadable_folders(
        tmp_path: Path) -> None:
    (tmp_path / "a.mkv").write_bytes(b"x")
    (tmp_path / "loop1.mkv").symlink_to(tmp_path / "loop2.mkv")
    (tmp_path / "loop2.mkv").symlink_to(tmp_path / "loop1.mkv")
    (tmp_path / "everything").symlink_to("/")
    (tmp_path / "z.mkv").write_bytes(b"x")
    (tmp_path / "Show").mkdir()
    (tmp_path / "Show" / "e1.mkv").write_bytes(b"x")
    found = {p.relative_to(tmp_path) for p in walk(tmp_path, True, threading.Event())}
    assert found == {Path("a.mkv"), Path("z.mkv"), Path("Show/e1.mkv")}
