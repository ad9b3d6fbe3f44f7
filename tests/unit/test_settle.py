from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from subtitled.config import ScanSettings
from subtitled.settle import Settler, is_candidate, is_temporary
from subtitled.store import Fingerprint


@pytest.mark.parametrize(
    ("name", "temporary"),
    [("Movie.mkv", False), ("Movie.mkv.part", True), ("Movie.mkv.tmp", True),
     ("Movie.mkv.!qB", True), ("Movie.mkv.crdownload", True), ("Movie.mkv.partial~", True),
     (".Movie.mkv.Xa3b9Q", True), (".hidden.mkv", True), ("a/.~tmp~/Movie.mkv", True),
     ("Movie.part.1.mkv", False)],
)
def test_copier_and_downloader_temp_names_are_never_jobs(name: str, temporary: bool) -> None:
    assert is_temporary(Path("/media") / name) is temporary


@pytest.mark.parametrize(
    ("path", "candidate"),
    [("/m/Film.MKV", True), ("/m/Film.srt", False), ("/m/@eaDir/Film.mkv", False),
     ("/m/Film-sample.mkv", False), ("/m/Film.mkv.part", False), ("/m/Show/S01E01.mp4", True)],
)
def test_candidates_are_media_by_extension_minus_ignored(path: str, candidate: bool) -> None:
    assert is_candidate(Path(path), ScanSettings()) is candidate


class Files:
    """A clock and a stat that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000.0
        self.stats: dict[Path, Fingerprint] = {}

    def stat(self, path: Path) -> Fingerprint:
        if path not in self.stats:
            raise FileNotFoundError(path)
        return self.stats[path]

    def settler(self, seconds: float = 30.0) -> Settler:
        return Settler(seconds, clock=lambda: self.now, wall_clock=lambda: self.wall,
                       stat=self.stat)


FILM = Path("/m/Film.mkv")


def test_a_file_still_growing_is_not_due_until_quiet_for_the_whole_period() -> None:
    files = Files()
    settler = files.settler()
    files.stats[FILM] = Fingerprint(100, 1, 7)
    settler.note(FILM, 10)
    for step in range(10):  # grows every 20 s, shorter than the quiet period
        files.now += 20
        files.stats[FILM] = Fingerprint(100 + step, 2 + step, 7)
        assert settler.due() == []
    files.now += 29
    assert settler.due() == []
    files.now += 2
    assert settler.due() == [(FILM, Fingerprint(109, 11, 7), 10)]
    assert len(settler) == 0


def test_a_file_that_vanishes_is_dropped() -> None:
    files = Files()
    settler = files.settler()
    files.stats[FILM] = Fingerprint(1, 1, 1)
    settler.note(FILM, 10)
    del files.stats[FILM]
    files.now += 60
    assert settler.due() == [] and len(settler) == 0


def test_an_old_file_found_by_a_scan_is_due_at_once() -> None:
    files = Files()
    settler = files.settler()
    files.stats[FILM] = Fingerprint(5, int((files.wall - 3600) * 1e9), 1)
    settler.note(FILM, 0, trust_mtime=True)
    assert settler.due() == [(FILM, files.stats[FILM], 0)]


def test_a_fresh_file_found_by_a_scan_still_waits() -> None:
    files = Files()
    settler = files.settler()
    files.stats[FILM] = Fingerprint(5, int((files.wall - 5) * 1e9), 1)
    settler.note(FILM, 0, trust_mtime=True)
    assert settler.due() == []
    files.now += 26
    assert settler.due() == [(FILM, files.stats[FILM], 0)]


def test_events_raise_priority_and_forget_covers_folders() -> None:
    files = Files()
    settler = files.settler()
    files.stats[FILM] = Fingerprint(5, 1, 1)
    settler.note(FILM, 0)
    settler.note(FILM, 10)
    settler.forget(Path("/m"))
    assert len(settler) == 0


class Share(Files):
    """Files on a share that can stop answering (ESTALE) without the files being gone."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def stat(self, path: Path) -> Fingerprint:
        if self.down:
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), str(path))
        return super().stat(path)


def test_a_share_that_stops_answering_keeps_its_files_pending_until_it_answers() -> None:
    share = Share()
    settler = share.settler()
    share.stats[FILM] = Fingerprint(100, 1, 7)
    settler.note(FILM, 10)
    share.down = True
    share.now += 60
    assert settler.due() == [] and len(settler) == 1  # not taken for gone
    settler.note(Path("/m/Other.mkv"), 0, trust_mtime=True)  # a scan while it is down
    assert len(settler) == 2
    share.down = False
    share.stats[Path("/m/Other.mkv")] = Fingerprint(5, 1, 8)
    share.now += 60
    assert sorted(p.name for p, _, _ in settler.due()) == ["Film.mkv", "Other.mkv"]
    del share.stats[FILM]
    settler.note(FILM, 10)
    share.now += 60
    assert settler.due() == [] and len(settler) == 0  # really gone
