"""A real watchdog observer on a temp folder, feeding the settler."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from subtitled import polling
from subtitled import watcher as watcher_module
from subtitled.config import ScanSettings, WatchRoot
from subtitled.mounts import Mount, filesystem_type, mount_of, needs_polling
from subtitled.polling import FolderPoller
from subtitled.settle import Settler
from subtitled.store import PRIORITY_BACKFILL, PRIORITY_NEW, Fingerprint
from subtitled.watcher import Watcher, inotify_watched, walk

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:53 / /srv/nfs rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:54 / /srv/smb rw,relatime shared:21 - cifs //nas/films rw
42 22 0:55 / /srv/cloud rw,nosuid,nodev shared:22 - fuse.rclone rclone: rw
43 40 8:17 / /srv/nfs/local rw,relatime shared:23 - ext4 /dev/sdb1 rw
44 22 0:56 / /srv/pool rw,relatime shared:24 - fuse.mergerfs pool rw
45 22 0:57 / /srv/my\\040films rw,relatime shared:25 - nfs4 server:/films rw
46 22 8:33 / /srv/ntfs rw,relatime shared:26 - fuseblk /dev/sdc1 rw
"""


@pytest.mark.parametrize(
    ("path", "kind", "polled"),
    [("/home/me/films", "ext4", False), ("/srv/nfs/films", "nfs4", True),
     ("/srv/smb", "cifs", True), ("/srv/cloud/x", "fuse.rclone", True),
     ("/srv/nfs/local/a", "ext4", False), ("/srv/nfsx", "ext4", False),
     ("/srv/pool/TV", "fuse.mergerfs", False), ("/srv/my films/a", "nfs4", True),
     ("/srv/ntfs/Films", "fuseblk", False)],
)
def test_network_and_remote_fuse_mounts_are_polled_local_pools_are_not(
        path: str, kind: str, polled: bool) -> None:
    assert filesystem_type(Path(path), MOUNTINFO) == kind
    assert needs_polling(Path(path), "auto", MOUNTINFO) is polled
    assert needs_polling(Path(path), "on", MOUNTINFO) and \
        not needs_polling(Path(path), "off", MOUNTINFO)


def test_a_root_is_matched_to_its_mount_by_device_through_symlinks(tmp_path: Path) -> None:
    """A symlink (or a bind mount) to a share lies on the share's device, whatever its
    path says: the mount is found by st_dev, not by the longest prefix."""
    device = tmp_path.stat().st_dev
    share = MOUNTINFO + (f"50 22 {os.major(device)}:{os.minor(device)} / /srv/nas rw - nfs4 "
                         "nas:/media rw\n")
    link = Path("/dev/shm") / f"library-{os.getpid()}"
    link.symlink_to(tmp_path)
    try:
        assert mount_of(link, share) == Mount(Path("/srv/nas"), "nfs4", device)
        assert needs_polling(link, "auto", share)
        assert filesystem_type(link) == filesystem_type(tmp_path) != "tmpfs"
    finally:
        link.unlink()


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
    assert watcher.watching.wait(10)
    try:
        yield tmp_path, settler, gone
    finally:
        watcher.stop()


def collect(settler: Settler, seconds: float = 3.0, *, first: bool = False
            ) -> dict[str, int]:
    """Names that settled, with their priority when last seen (`first`: first seen)."""
    found: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path, _, priority in settler.due():
            if not first or path.name not in found:
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
        assert watcher.watching.wait(10)
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
    assert watcher.watching.wait(10)
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


def library(top: Path, folders: int, files: int) -> None:
    for show in range(folders):
        folder = top / f"Show {show:02d}"
        folder.mkdir(parents=True)
        for episode in range(files):
            (folder / f"e{episode:02d}.mkv").write_bytes(b"x")


@dataclass
class Polled:
    poller: FolderPoller
    files: list[Path]
    folders: list[tuple[Path, bool]]  # and whether it replaced another
    gone: list[Path]


@pytest.fixture
def polled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Polled]:
    """A poller over 20 folders of 10 files, polled by hand (its own thread waits an
    hour), with no folder too recent to trust."""
    monkeypatch.setattr(polling, "_RACY_SECONDS", 0.0)
    library(tmp_path, 19, 10)
    seen = Polled(FolderPoller(tmp_path, True, 3600, on_file=lambda p: seen.files.append(p),
                               on_folder=lambda p, r: seen.folders.append((p, r)),
                               on_gone=lambda p: seen.gone.append(p)), [], [], [])
    seen.poller.start()
    try:
        yield seen
    finally:
        seen.poller.stop()


def test_a_poll_stats_each_folder_once_and_lists_only_what_changed(
        tmp_path: Path, polled: Polled) -> None:
    watcher, found, gone = polled.poller, polled.files, polled.gone
    before = watcher.stats
    watcher.poll()
    assert watcher.stats - before == 20 and not found and not gone  # a stat each, no listing
    (tmp_path / "Show 03" / "new.mkv").write_bytes(b"x")
    (tmp_path / "Show 07" / "e01.mkv").unlink()
    before = watcher.stats
    watcher.poll()
    # Two changed folders: each stat'ed, then stat'ed and listed again.
    assert watcher.stats - before == 20 + 2 * 2
    assert found == [tmp_path / "Show 03" / "new.mkv"]
    assert gone == [tmp_path / "Show 07" / "e01.mkv"]


def test_new_folders_are_listed_whole_and_deleted_ones_go_with_what_they_held(
        tmp_path: Path, polled: Polled) -> None:
    watcher = polled.poller
    library(tmp_path / "Show 40", 2, 3)  # a show with two seasons, in one move
    watcher.poll()
    assert polled.folders == [(tmp_path / "Show 40", False)] and not polled.files
    for path in (tmp_path / "Show 05").iterdir():
        path.unlink()
    (tmp_path / "Show 05").rmdir()
    watcher.poll()
    assert polled.gone == [tmp_path / "Show 05"]
    before = watcher.stats
    watcher.poll()  # the new folders are polled like the others, the deleted one no more
    assert watcher.stats - before == 20 - 1 + 3
    (tmp_path / "Show 40" / "Show 01" / "e09.mkv").write_bytes(b"x")
    watcher.poll()
    assert polled.files == [tmp_path / "Show 40" / "Show 01" / "e09.mkv"]


def test_a_folder_that_is_another_folder_now_is_scanned_whole(
        tmp_path: Path, polled: Polled) -> None:
    """A share mounted again, or a season deleted and copied anew: the folder at that path
    is another one, whose files are the library's, to be scanned as such."""
    season = tmp_path / "Show 03"
    season.rename(tmp_path / "old")
    library(tmp_path / "new", 1, 2)
    (tmp_path / "new" / "Show 00").rename(season)
    polled.poller.poll()
    assert (season, True) in polled.folders and (tmp_path / "old", False) in polled.folders
    polled.folders.clear()
    polled.poller.poll()
    assert not polled.folders and not polled.files


def test_a_folder_changed_just_before_its_listing_is_listed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a coarse mtime (a second on many servers) an entry added just after a listing
    can leave the folder's times as they were: such a folder is not trusted yet."""
    monkeypatch.setattr(polling, "_RACY_SECONDS", 3600.0)  # every folder just changed
    library(tmp_path, 1, 1)
    poller = FolderPoller(tmp_path, True, 3600, on_file=lambda _: None,
                          on_folder=lambda _, __: None, on_gone=lambda _: None)
    poller.start()
    try:
        before = poller.stats
        poller.poll()
        assert poller.stats - before == 2 * 3  # each folder stat'ed, then listed again
        monkeypatch.setattr(polling, "_RACY_SECONDS", 0.0)
        poller.poll()  # relisted once more: they were racy when last listed
        before = poller.stats
        poller.poll()
        assert poller.stats - before == 2  # now trusted: a stat each
    finally:
        poller.stop()


@contextmanager
def tmpfs(point: Path) -> Iterator[None]:
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "library", str(point)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"mounting a tmpfs needs CAP_SYS_ADMIN: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.mark.parametrize("mode", ["off", "on"], ids=["inotify", "polling"])
def test_a_root_mounted_again_is_watched_anew(
        tmp_path: Path, mode: Literal["off", "on"], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """After an unmount and a mount, the root is another filesystem: the old watch sees
    nothing of it. The watcher notices the new device and watches it afresh."""
    monkeypatch.setattr(watcher_module, "_MOUNT_CHECK_SECONDS", 0.2)
    point = tmp_path / "library"
    point.mkdir()
    settler = Settler(0.3)
    scan = ScanSettings(settle_seconds=0.3, polling=mode, polling_interval_seconds=0.2,
                        rescan_interval_seconds=3600)
    with tmpfs(point):
        watcher = Watcher((WatchRoot(point),), scan, settler, lambda _: None)
        watcher.start()
        assert watcher.watching.wait(10)
        try:
            (point / "before.mkv").write_bytes(b"x")
            assert collect(settler) == {"before.mkv": PRIORITY_NEW}
            subprocess.run(["umount", str(point)], check=True)
            with tmpfs(point):
                if mode == "off":  # polling follows the path; inotify needs a new watch
                    root = point.stat()
                    wait_for(lambda: (os.major(root.st_dev), os.minor(root.st_dev),
                                      root.st_ino) in (inotify_watched() or ()))
                    assert "watched anew (inotify)" in caplog.text
                (point / "after.mkv").write_bytes(b"x")
                # Seen as it arrives; the rescan that follows a new watch finds it again.
                assert collect(settler, first=True) == {"after.mkv": PRIORITY_NEW}
                assert watcher.alive()
        finally:
            watcher.stop()


def test_a_file_replaced_under_its_own_name_is_a_new_file(tmp_path: Path,
                                                          polled: Polled) -> None:
    """An upgrade that keeps the name (written beside, renamed over): same name, another
    file. inotify sees the rename; polling sees another inode under the name."""
    upgrade = tmp_path / "Show 03" / ".e01.mkv.partial"
    upgrade.write_bytes(b"better")
    polled.poller.poll()
    assert polled.files == [upgrade]  # (the watcher passes over temporary names)
    upgrade.rename(tmp_path / "Show 03" / "e01.mkv")
    polled.poller.poll()
    assert polled.files == [upgrade, tmp_path / "Show 03" / "e01.mkv"]
    assert polled.gone == [upgrade]


def test_a_polled_root_below_a_share_that_goes_and_comes_back_is_scanned_again(
        tmp_path: Path) -> None:
    point = tmp_path / "nas"
    point.mkdir()
    seen = Polled(FolderPoller(point / "tv", True, 3600, on_file=lambda p: seen.files.append(p),
                               on_folder=lambda p, r: seen.folders.append((p, r)),
                               on_gone=lambda p: seen.gone.append(p)), [], [], [])
    with tmpfs(point):
        library(point / "tv", 3, 2)
        seen.poller.start()
        try:
            subprocess.run(["umount", str(point)], check=True)
            seen.poller.poll()
            seen.poller.poll()
            assert seen.gone == [point / "tv"]  # once: the breaker keeps its jobs
            with tmpfs(point):
                library(point / "tv", 3, 2)
                seen.poller.poll()
                assert seen.folders == [(point / "tv", True)]  # the library, scanned whole
                (point / "tv" / "Show 01" / "new.mkv").write_bytes(b"x")
                seen.poller.poll()
                assert seen.files == [point / "tv" / "Show 01" / "new.mkv"]
        finally:
            seen.poller.stop()


def test_a_root_that_is_a_symlink_is_watched_at_the_folder_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """watchdog would watch the link itself and hear nothing of the folder. Events come
    named under the root as configured; an unrelated mount does not make the root look
    unmounted."""
    monkeypatch.setattr(watcher_module, "_MOUNT_CHECK_SECONDS", 0.2)
    real = tmp_path / "real"
    (real / "Films").mkdir(parents=True)
    root = tmp_path / "library"
    root.symlink_to(real)
    settler = Settler(0.3)
    scan = ScanSettings(settle_seconds=0.3, polling="off", rescan_interval_seconds=3600)
    watcher = Watcher((WatchRoot(root),), scan, settler, lambda _: None)
    watcher.start()
    assert watcher.watching.wait(10)
    try:
        (real / "top.mkv").write_bytes(b"x")
        (root / "Films" / "a.mkv").write_bytes(b"x")
        (root / "New").mkdir()
        time.sleep(0.1)  # the new folder's watch is added when its event is read
        (root / "New" / "b.mkv").write_bytes(b"x")
        found = {path: priority for path, _, priority in collect_paths(settler)}
        assert found == {root / "top.mkv": PRIORITY_NEW, root / "Films" / "a.mkv":
                         PRIORITY_NEW, root / "New" / "b.mkv": PRIORITY_NEW}
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        with tmpfs(elsewhere):
            time.sleep(1.0)  # the mount table changed: checked every 0.2 s
        assert "watched anew" not in caplog.text
    finally:
        watcher.stop()


def collect_paths(settler: Settler, seconds: float = 3.0
                  ) -> list[tuple[Path, Fingerprint, int]]:
    found = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found += settler.due()
        time.sleep(0.05)
    return found
