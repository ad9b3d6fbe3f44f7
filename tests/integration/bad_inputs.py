"""The bad-input matrix: files that must fail with one named line, and odd but valid files
that must still get a subtitle. Built with ffmpeg from the corpus clips."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from tests.integration.conftest import DATA, ffmpeg, picture

JFK = str(DATA / "en_jfk_inaugural.flac")
# Names a library really has: spaces, quotes, a leading dash, Latin-1 bytes from an old
# Samba share, a newline, emoji.
ODD_NAMES = ["with spaces.mkv", "it's \"quoted\".mkv", "-starts with a dash.mkv",
             os.fsdecode(b"caf\xe9 cr\xe8me.mkv"), "two\nlines.mkv", "film \U0001f3ac.mkv"]


def _speech_video(target: Path, *audio_options: str) -> None:
    ffmpeg(*picture(11), "-i", JFK, "-map", "0:v", "-map", "1:a", "-shortest",
           "-c:v", "libx264", "-preset", "ultrafast", *audio_options, str(target))


def _id3_tag(size: int) -> bytes:
    """An ID3v2.3 tag holding one PRIV frame of `size` bytes (cover art does the same)."""
    payload = b"subtitled\0" + os.urandom(size)
    frame = b"PRIV" + struct.pack(">I", len(payload)) + b"\0\0" + payload
    length = len(frame)
    syncsafe = bytes((length >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def make_failing(folder: Path, media: Path) -> dict[str, str]:
    """File name → the stage and cause its error line must name."""
    (folder / "empty.mkv").write_bytes(b"")
    (folder / "truncated.mkv").write_bytes((media / "jfk.mkv").read_bytes()[:60_000])
    (folder / "random.mp4").write_bytes(os.urandom(200_000))
    (folder / "notes.mkv").write_text("This is a shopping list, not a film.\n" * 50)
    ffmpeg(*picture(3), "-c:v", "libx264", "-preset", "ultrafast", str(folder / "mute.mkv"))
    ffmpeg(*picture(3), "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-map", "0", "-map",
           "1", "-t", "3", "-frames:a", "0", "-c:v", "libx264", "-preset", "ultrafast",
           "-c:a", "aac", str(folder / "no samples.mkv"))
    shutil.copyfile(media / "jfk.mkv", folder / "locked.mkv")
    (folder / "locked.mkv").chmod(0)
    subprocess.run(["truncate", "-s", "50G", str(folder / "sparse zeros.mkv")], check=True)
    os.mkfifo(folder / "pipe.mkv")
    (folder / "loop a.mkv").symlink_to(folder / "loop b.mkv")
    (folder / "loop b.mkv").symlink_to(folder / "loop a.mkv")
    (folder / "root.mkv").symlink_to("/")
    return {
        "empty.mkv": "open: file is empty (0 bytes)",
        "truncated.mkv": "extract: the audio ends after",
        "random.mp4": "probe: ffprobe cannot read it:",
        "notes.mkv": "probe: ffprobe cannot read it:",
        "mute.mkv": "probe: no audio stream (streams found: video)",
        "no samples.mkv": "extract: the audio track decodes to no samples",
        "locked.mkv": "open: permission denied",
        "sparse zeros.mkv": "probe: ffprobe cannot read it: Invalid data",
        "pipe.mkv": "open: not a regular file, not a media file",
        "loop a.mkv": "open: Too many levels of symbolic links",
        "loop b.mkv": "open: Too many levels of symbolic links",
        "root.mkv": "open: a directory, not a media file",
    }


def make_working(folder: Path) -> list[str]:
    """Odd but valid files, each of which must get a subtitle with the JFK words."""
    # Speech only in the centre channel, as films mix dialogue.
    _speech_video(folder / "surround 5.1.mkv", "-af", "pan=5.1|FC=c0", "-c:a", "ac3")
    _speech_video(folder / "surround 7.1.mkv", "-af", "pan=7.1|FC=c0", "-c:a", "flac")
    for name, options in {"8-bit.wav": ["-c:a", "pcm_u8"],
                          "24-bit.flac": ["-c:a", "flac", "-sample_fmt", "s32",
                                          "-bits_per_raw_sample", "24"],
                          "float.wav": ["-c:a", "pcm_f32le"],
                          "48 kHz.wav": ["-ar", "48000", "-c:a", "pcm_s16le"]}.items():
        ffmpeg("-i", JFK, *options, str(folder / name))
    plain = folder / "plain.mp3"
    ffmpeg("-i", JFK, "-c:a", "libmp3lame", "-id3v2_version", "0", str(plain))
    (folder / "huge id3.mp3").write_bytes(_id3_tag(4_000_000) + plain.read_bytes())
    plain.unlink()
    # Two tracks and no language tags at all: the first (the dialogue) is used.
    ffmpeg(*picture(11), "-i", JFK, "-f", "lavfi", "-i", "sine=frequency=440:duration=11",
           "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", str(folder / "untagged tracks.mkv"))
    _speech_video(folder / ODD_NAMES[0], "-c:a", "aac")
    for name in ODD_NAMES[1:]:
        shutil.copyfile(folder / ODD_NAMES[0], folder / name)
    return ["surround 5.1.mkv", "surround 7.1.mkv", "8-bit.wav", "24-bit.flac", "float.wav",
            "48 kHz.wav", "huge id3.mp3", "untagged tracks.mkv", *ODD_NAMES]
