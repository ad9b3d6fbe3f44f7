"""Probing media with ffprobe and choosing the audio track (a pure function over the JSON)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subtitled import failpoints, faults, languages
from subtitled.errors import EnvironmentFault, MediaError, TransientError

ProbeJson = Mapping[str, Any]

# Titles that mark a track as something other than the programme's dialogue.
_AVOID_TITLE = re.compile(
    r"comment|descri|karaoke|visual(ly)?[ -]impaired|\bAD\b|sing[ -]?along", re.IGNORECASE
)
_AVOID_DISPOSITIONS = ("comment", "visual_impaired", "karaoke", "descriptions")
_TEXT_SUBTITLE_CODECS = ("subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text")


@dataclass(frozen=True)
class AudioStream:
    index: int  # ffmpeg's stream index in the container, for `-map 0:<index>`
    language: str | None  # ISO 639-1 from the container tag, if any
    title: str
    channels: int
    default: bool
    avoided: bool  # commentary, audio description or karaoke
    # Where the track starts relative to the start of the programme, so cues match the picture.
    start_offset_seconds: float
    duration_seconds: float | None = None  # the track's own length, when the container says


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    audio: AudioStream
    duration_seconds: float | None
    audio_stream_count: int
    # Languages of embedded subtitle streams that are text (not bitmaps like PGS).
    text_subtitle_languages: tuple[str, ...] = ()
    # Every audio track, the chosen one among them (language.each_audio_language).
    audio_streams: tuple[AudioStream, ...] = ()

    def other_tracks(self) -> list[AudioStream]:
        """The audio tracks besides the chosen one that may hold the dialogue in another
        language (a dub): not commentary, description or karaoke, and one per language
        tag (the first, the default first); untagged tracks all, their language heard."""
        tagged = {self.audio.language}
        others = []
        for stream in sorted(self.audio_streams, key=lambda s: (not s.default, s.index)):
            if stream.index == self.audio.index or stream.avoided or \
                    (stream.language is not None and stream.language in tagged):
                continue
            tagged.add(stream.language)
            others.append(stream)
        return others


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _streams(probe: ProbeJson) -> list[Mapping[str, Any]]:
    """The probe's streams, leaving out anything that is not a stream object."""
    raw = probe.get("streams")
    return [s for s in raw if isinstance(s, Mapping)] if isinstance(raw, list) else []


def _clock_seconds(text: str) -> float | None:
    """Matroska's DURATION tag, "01:02:03.500000000", in seconds."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    hours, minutes, seconds = (_float(p) for p in parts)
    if hours is None or minutes is None or seconds is None:
        return None
    return hours * 3600 + minutes * 60 + seconds


def audio_streams(probe: ProbeJson) -> list[AudioStream]:
    """Every audio stream of a probe result, as typed values."""
    start = _float(_mapping(probe.get("format")).get("start_time")) or 0.0
    streams = []
    for raw in _streams(probe):
        index = raw.get("index")
        if raw.get("codec_type") != "audio" or not isinstance(index, int):
            continue
        tags = {str(k).lower(): str(v) for k, v in _mapping(raw.get("tags")).items()}
        disposition = _mapping(raw.get("disposition"))
        title = tags.get("title", "")
        avoided = any(disposition.get(key) for key in _AVOID_DISPOSITIONS) or bool(
            _AVOID_TITLE.search(title)
        )
        stream_start = _float(raw.get("start_time"))
        length = _float(raw.get("duration")) or _clock_seconds(tags.get("duration", ""))
        streams.append(
            AudioStream(
                index=index,
                language=languages.normalize(tags.get("language", "")),
                title=title,
                channels=int(_float(raw.get("channels")) or 0),
                default=bool(disposition.get("default")),
                avoided=avoided,
                start_offset_seconds=(stream_start - start) if stream_start is not None else 0.0,
                duration_seconds=length,
            )
        )
    return streams


def text_subtitle_languages(probe: ProbeJson) -> tuple[str, ...]:
    """Languages of the embedded text subtitles that are whole: a forced track (foreign
    dialogue only) does not make a subtitle in its language unneeded."""
    found = []
    for raw in _streams(probe):
        if _mapping(raw.get("disposition")).get("forced"):
            continue
        if raw.get("codec_type") == "subtitle" and raw.get("codec_name") in _TEXT_SUBTITLE_CODECS:
            code = languages.normalize(str(_mapping(raw.get("tags")).get("language", "")))
            if code:
                found.append(code)
    return tuple(found)


def choose_audio_stream(
    probe: ProbeJson, preferred_languages: Sequence[str] = ()
) -> AudioStream | None:
    """The track to transcribe: not commentary/description/karaoke if avoidable, then the
    first preferred language, then the default track, then the first track."""
    streams = audio_streams(probe)
    if not streams:
        return None
    wanted = [code for code in (languages.normalize(p) for p in preferred_languages) if code]

    def rank(stream: AudioStream) -> tuple[int, int, int, int]:
        language_rank = (
            wanted.index(stream.language) if stream.language in wanted else len(wanted)
        )
        return (int(stream.avoided), language_rank, int(not stream.default), stream.index)

    return min(streams, key=rank)


def duration_seconds(probe: ProbeJson) -> float | None:
    duration = _float(_mapping(probe.get("format")).get("duration"))
    if duration is not None and duration > 0:
        return duration
    durations = [_float(s.get("duration")) for s in _streams(probe)]
    known = [d for d in durations if d is not None and d > 0]
    return max(known) if known else None


def length_seconds(path: Path, timeout_seconds: float = 30.0) -> float | None:
    """The file's length by ffprobe's reading of its headers, for the backlog's estimate
    (no track is chosen, nothing is checked: the job's own probe does that)."""
    return duration_seconds(_ffprobe(path, timeout_seconds))


def check_readable(path: Path) -> None:
    """Fail early with a plain reason for the inputs ffprobe would describe badly."""
    try:
        failpoints.os_error("probe", path.name)
        info = path.stat()
    except FileNotFoundError as err:
        raise MediaError("no such file", path=path, stage="open") from err
    except OSError as err:
        raise faults.from_os_error(err, path=path, stage="open") from err
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise MediaError(f"{kind}, not a media file", path=path, stage="open")
    if info.st_size == 0:
        raise MediaError("file is empty (0 bytes)", path=path, stage="open")
    if not os.access(path, os.R_OK):
        raise MediaError("permission denied", path=path, stage="open")


def ffmpeg_url(path: Path) -> str:
    """`file:` keeps names with a colon or a leading dash from being read as options/protocols."""
    return "file:" + str(path.absolute())


def probe(path: Path, preferred_languages: Sequence[str] = (), *,
          timeout_seconds: float = 120.0) -> MediaInfo:
    """Run ffprobe once and choose the audio track; MediaError when it is not usable media,
    TransientError when ffprobe hangs (a stalled network share) past `timeout_seconds`."""
    check_readable(path)
    result = _ffprobe(path, timeout_seconds)
    chosen = choose_audio_stream(result, preferred_languages)
    if chosen is None:
        kinds = sorted({str(s.get("codec_type")) for s in _streams(result)})
        found = ", ".join(kinds) if kinds else "none"
        raise MediaError(f"no audio stream (streams found: {found})", path=path, stage="probe")
    count = sum(1 for s in _streams(result) if s.get("codec_type") == "audio")
    return MediaInfo(path, chosen, duration_seconds(result), count,
                     text_subtitle_languages(result), tuple(audio_streams(result)))


def _ffprobe(path: Path, timeout_seconds: float) -> ProbeJson:
    url = ffmpeg_url(path)
    command = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", url]
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout_seconds, check=False)
    except subprocess.TimeoutExpired as err:
        raise TransientError(f"ffprobe gave no answer in {timeout_seconds:g} s; stopped it",
                             path=path, stage="probe") from err
    except OSError as err:
        raise EnvironmentFault(f"cannot run ffprobe: {err}", kind="tool", path=path,
                               stage="probe") from err
    if done.returncode != 0:
        cause = last_line(done.stderr).replace(f"{url}: ", "")
        raise faults.from_tool_exit("ffprobe", done.returncode,
                                    f"ffprobe cannot read it: {cause}", path=path,
                                    stage="probe")
    try:
        parsed = json.loads(done.stdout.decode("utf-8", "replace"))
    except ValueError as err:
        raise MediaError(f"ffprobe gave unreadable output: {err}", path=path,
                         stage="probe") from err
    if not isinstance(parsed, dict):
        raise MediaError("ffprobe gave unreadable output", path=path, stage="probe")
    return parsed


def last_line(stderr: bytes | None) -> str:
    """The most telling line of a tool's stderr (its last non-empty one)."""
    text = (stderr or b"").decode("utf-8", "replace").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"
