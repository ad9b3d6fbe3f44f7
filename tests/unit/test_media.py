from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subtitled import languages
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


_ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                      st.text(max_size=8), st.lists(st.integers(), max_size=2))
_LANGUAGES = st.sampled_from(["eng", "en", "fre", "fra", "ger", "jpn", "und", "", "xx", "EN"])
_TITLES = st.sampled_from(["", "Main", "Commentary", "Audio Description", "Karaoke", "AD"])
_DISPOSITIONS = st.fixed_dictionaries(
    {}, optional={k: st.integers(0, 1) for k in
                  ("default", "comment", "visual_impaired", "karaoke", "descriptions")})
_STREAM = st.fixed_dictionaries(
    {"index": st.integers(0, 20),
     "codec_type": st.sampled_from(["audio", "video", "subtitle", "data", "attachment"])},
    optional={"tags": st.one_of(st.fixed_dictionaries(
                  {}, optional={"language": _LANGUAGES, "title": _TITLES,
                                "DURATION": st.sampled_from(["00:01:02.5", "bad", ""])}),
                  _ANYTHING),
              "disposition": st.one_of(_DISPOSITIONS, _ANYTHING),
              "channels": _ANYTHING, "start_time": _ANYTHING, "duration": _ANYTHING,
              "codec_name": st.sampled_from(["aac", "subrip", "hdmv_pgs_subtitle"])})
_PROBE = st.fixed_dictionaries(
    {}, optional={"streams": st.one_of(st.lists(st.one_of(_STREAM, _ANYTHING), max_size=6),
                                       _ANYTHING),
                  "format": st.one_of(st.fixed_dictionaries(
                      {}, optional={"start_time": _ANYTHING, "duration": _ANYTHING}),
                      _ANYTHING)})


@settings(max_examples=400, deadline=None)
@given(probe=_PROBE, preferred=st.lists(_LANGUAGES, max_size=3))
def test_any_probe_json_gives_a_sensible_track_or_none(
        probe: dict[str, Any], preferred: list[str]) -> None:
    """Whatever a container (or a broken ffprobe) says, the chooser never crashes, finds a
    track exactly when there is a usable audio stream, and prefers dialogue."""
    streams = audio_streams(probe)
    chosen = choose_audio_stream(probe, preferred)
    duration_seconds(probe)
    assert (chosen is None) == (streams == [])
    if chosen is None:
        return
    assert chosen in streams
    if any(not s.avoided for s in streams):
        assert not chosen.avoided
    wanted = [c for c in (languages.normalize(p) for p in preferred) if c]
    candidates = [s for s in streams if s.avoided == chosen.avoided]
    if any(s.language in wanted for s in candidates):
        best = min(wanted.index(s.language) for s in candidates if s.language in wanted)
        assert chosen.language == wanted[best]
