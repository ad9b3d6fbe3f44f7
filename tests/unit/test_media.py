from __future__ import annotations

from typing import Any

import pytest

from subtitled.media import audio_streams, choose_audio_stream, duration_seconds


def stream(index: int, language: str | None = None, *, title: str = "", default: int = 0,
           start: str | None = "0.000000", **disposition: int) -> dict[str, Any]:
    tags = {"language": language} if language else {}
    if title:
        tags["title"] = title
    raw: dict[str, Any] = {"index": index, "codec_type": "audio", "channels": 2, "tags": tags,
                           "disposition": {"default": default, **disposition}}
    if start is not None:
        raw["start_time"] = start
    return raw


VIDEO = {"index": 0, "codec_type": "video"}


def probe_of(*streams: dict[str, Any], start: str = "0.000000") -> dict[str, Any]:
    return {"format": {"start_time": start, "duration": "60.0"}, "streams": [VIDEO, *streams]}


@pytest.mark.parametrize(
    ("streams", "preferred", "expected_index"),
    [
        ([stream(1, "eng")], (), 1),
        ([stream(1, "fre"), stream(2, "eng")], ("en",), 2),
        ([stream(1, "fre"), stream(2, "ger")], ("de", "fr"), 2),
        ([stream(1, "fre", default=1), stream(2, "ger")], (), 1),
        ([stream(1, "fre"), stream(2, "ger", default=1)], (), 2),
        ([stream(1), stream(2)], (), 1),
        ([stream(1, "eng", default=1, comment=1), stream(2, "eng")], (), 2),
        ([stream(1, "eng", default=1, visual_impaired=1), stream(2, "eng")], (), 2),
        ([stream(1, "eng", karaoke=1), stream(2, "eng")], (), 2),
        ([stream(1, "eng", title="Director's Commentary"), stream(2, "eng")], (), 2),
        ([stream(1, "eng", title="Audio Description"), stream(2, "eng")], ("en",), 2),
        ([stream(1, "eng", title="English AD"), stream(2, "fre")], ("en",), 2),
        ([stream(1, "eng", comment=1)], ("en",), 1),
        ([stream(1, "eng", comment=1), stream(2, "fre")], ("en",), 2),
        ([stream(1, "und"), stream(2, "eng")], ("eng",), 2),
        ([stream(1, "eng"), stream(2, "jpn", default=1)], ("ja", "en"), 2),
    ],
    ids=[
        "single track", "preferred language wins over order", "first preferred present",
        "default when no preference", "default disposition", "first when nothing tells",
        "commentary disposition avoided", "audio description avoided", "karaoke avoided",
        "commentary title avoided", "description title avoided", "AD title avoided",
        "commentary kept when it is all there is", "avoidance before language",
        "undetermined tag loses to preferred", "preference order over default",
    ],
)
def test_chooses_the_track_a_viewer_would_want(
    streams: list[dict[str, Any]], preferred: tuple[str, ...], expected_index: int
) -> None:
    chosen = choose_audio_stream(probe_of(*streams), preferred)
    assert chosen is not None
    assert chosen.index == expected_index


def test_no_audio_stream_gives_none() -> None:
    assert choose_audio_stream({"streams": [VIDEO]}) is None


def test_track_start_is_measured_from_the_programme_start() -> None:
    (audio,) = audio_streams(probe_of(stream(1, "eng", start="2.500000"), start="0.500000"))
    assert audio.start_offset_seconds == pytest.approx(2.0)
    (no_start,) = audio_streams(probe_of(stream(1, start=None)))
    assert no_start.start_offset_seconds == 0.0


def test_language_tags_become_iso_639_1() -> None:
    streams = audio_streams(probe_of(stream(1, "ger"), stream(2, "deu"), stream(3, "und")))
    assert [s.language for s in streams] == ["de", "de", None]


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"format": {"duration": "12.5"}, "streams": []}, 12.5),
        ({"format": {}, "streams": [{"duration": "3"}, {"duration": "4.5"}]}, 4.5),
        ({"format": {"duration": "N/A"}, "streams": [{}]}, None),
    ],
)
def test_duration_comes_from_the_container_or_the_longest_stream(
    probe: dict[str, Any], expected: float | None
) -> None:
    assert duration_seconds(probe) == expected
