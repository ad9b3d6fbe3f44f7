"""The backlog's estimate and the line that says it."""

from __future__ import annotations

import pytest

from subtitled.eta import Backlog, duration


def test_the_line_says_the_audio_the_time_and_the_speed() -> None:
    backlog = Backlog(files=400, probed_files=100, probed_seconds=100 * 3700.0,
                      running_seconds=1000.0, recent_audio_seconds=19_000.0,
                      recent_wall_seconds=10_000.0)
    assert backlog.audio_seconds == pytest.approx(1000.0 + 400 * 3700.0)
    assert backlog.describe() == "backlog 411 h of audio, about 9 days at 1.9x realtime"


def test_several_hosts_share_the_backlog() -> None:
    one = Backlog(10, 10, 36_000.0, 0.0, 100.0, 50.0)
    three = Backlog(10, 10, 36_000.0, 0.0, 100.0, 50.0, hosts=3)
    assert three.eta_seconds == pytest.approx(one.eta_seconds / 3)  # type: ignore[operator]
    assert three.describe().endswith("at 2.0x realtime on 3 hosts")


def test_what_cannot_be_estimated_yet_is_said_so() -> None:
    assert Backlog(5, 0, 0.0, 0.0, 10.0, 1.0).describe() == \
        "backlog 5 files, their length not probed yet"
    assert Backlog(5, 1, 600.0, 0.0, 0.0, 0.0).describe() == \
        "backlog 50 min of audio, ETA after the first file"
    assert Backlog(0, 0, 0.0, 0.0, 10.0, 1.0).describe() == "backlog empty"


@pytest.mark.parametrize("seconds, said", [(0.4, "0.4 s"), (42, "42 s"), (720, "12 min"),
                                           (12_600, "3.5 h"), (90_000, "25 h"),
                                           (777_600, "9 days")])
def test_lengths_are_said_as_a_person_says_them(seconds: float, said: str) -> None:
    assert duration(seconds) == said
