"""Which filesystem holds a watched folder, from /proc/self/mountinfo. A folder is matched
to its mount by its device number (st_dev), so a symlink or a bind mount to a share is
seen for what it is; by the longest mount point over its resolved path where it cannot be
looked at."""

from __future__ import annotations

import os
import re
import select
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MOUNTINFO = Path("/proc/self/mountinfo")

# Where inotify sees nothing of changes made by other machines or by a remote FUSE daemon
# (sshfs, rclone, s3fs): these are polled.
_REMOTE_FILESYSTEMS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph",
                                 "glusterfs", "lustre", "davfs", "virtiofs", "fuse"})
# FUSE filesystems over local disks: the pools media servers keep their libraries on
# (mergerfs, unionfs, mhddfs) and NTFS or exFAT disks (fuseblk). Changes made through
# them, which is how Sonarr, Radarr and copies reach a library, raise inotify events;
# changes made to a branch directly are left to the periodic rescan.
_LOCAL_FUSE = frozenset({"fuse.mergerfs", "fuse.unionfs", "fuse.unionfs-fuse", "fuse.mhddfs",
                         "fuseblk", "fuse.ntfs-3g", "fuse.exfat"})


@dataclass(frozen=True)
class Mount:
    point: Path
    kind: str  # the filesystem type: ext4, nfs4, fuse.mergerfs
    device: int  # st_dev of everything on it


def _unescape(field: str) -> str:
    """The kernel writes a space in a mount point as \\040 (tab, newline, backslash too)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse(text: str) -> list[Mount]:
    """mountinfo lines: `36 35 98:0 /root /mnt/point opts [optional...] - type source opts`."""
    mounts = []
    for line in text.splitlines():
        before, separator, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not separator or len(fields) < 5 or not tail:
            continue
        major, _, minor = fields[2].partition(":")
        try:
            device = os.makedev(int(major), int(minor))
        except ValueError:
            continue
        mounts.append(Mount(Path(_unescape(fields[4])), tail[0], device))
    return mounts


def mount_of(path: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount that `path` (followed through symlinks) lies on; None where
    /proc/self/mountinfo cannot be read."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return None
    mounts = parse(mountinfo)
    try:
        device = path.stat().st_dev
    except OSError:
        device = None
    # Mounted over each other, the last one listed is the one seen.
    on_device = [m for m in mounts if m.device == device]
    if on_device:
        return on_device[-1]
    target = str(path.resolve())
    best: Mount | None = None
    for mount in mounts:
        point = str(mount.point)
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(str(best.point))):
            best = mount
    return best


def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    mount = mount_of(path, mountinfo)
    return "" if mount is None else mount.kind


def polled(kind: str, mode: str) -> bool:
    """Whether a folder on a filesystem of `kind` is polled. `auto`: a network filesystem
    or a FUSE filesystem other than a local pool."""
    if mode != "auto":
        return mode == "on"
    if kind in _LOCAL_FUSE:
        return False
    return kind.startswith("fuse.") or kind in _REMOTE_FILESYSTEMS


def needs_polling(path: Path, mode: str, mountinfo: str | None = None) -> bool:
    return polled(filesystem_type(path, mountinfo), mode)


class MountChanges:
    """Whether any filesystem was mounted or unmounted since the last ask: the kernel
    marks an open /proc/self/mountinfo with a priority event on every change (proc(5)),
    even when the table reads the same after (a share unmounted and mounted again at
    once). Without /proc, every ask says yes."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._poll = select.poll()
        try:
            self._file = MOUNTINFO.open("rb")
        except OSError:
            return
        self._poll.register(self._file, select.POLLPRI | select.POLLERR)
        self._drain()

    def _drain(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        while self._file.read(65536):
            pass

    def changed(self) -> bool:
        if self._file is None:
            return True
        if not self._poll.poll(0):
            return False
        self._drain()  # the event stays until the file is read again
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
