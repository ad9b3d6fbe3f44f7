from __future__ import annotations

import io

from subtitled.progress import ProgressBar


def test_the_bar_shows_seconds_done_of_total_and_time_left() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, "Movie.mkv")
    bar.started -= 10.0  # ten seconds in
    bar(30.0, 120.0, "en")
    line = out.getvalue()
    assert line.endswith("  [en]\x1b[K")
    assert line.startswith("\rMovie.mkv")
    assert "[######..................]    30.0/120.0 s  ETA 0:00:30" in line
    bar.clear()
    assert out.getvalue().endswith("\r\x1b[K")


def test_without_a_known_length_it_counts_seconds() -> None:
    out = io.StringIO()
    ProgressBar(out, "stream.ts")(42.0, None)
    assert out.getvalue().rstrip("\x1b[K").endswith("42.0 s")


def test_nothing_to_clear_when_nothing_was_shown() -> None:
    out = io.StringIO()
    ProgressBar(out, "a").clear()
    assert out.getvalue() == ""
