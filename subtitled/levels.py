"""The level of a file's dialogue against the rest of its sound, measured with pydub on
stretches of at most 30 s as the audio is read (the whole film is never in memory: one
number per second of it is kept).

A file whose dialogue sits far below its loudest passages (an action film mastered for a
cinema, a documentary whose narrator whispers over the score), or stands little above the
sound under it (a voice buried in a bed as loud as the rest of the film: `above_bed`, its
frames measured with numpy), is quiet: there, speech detection misses lines spoken under
music and effects (silero hears nothing of a voice
19 dB under a music bed, which Whisper still transcribes), and `pipeline.second_look`
lets the decoder listen where detection heard none. A chunk spoken well below the
file's dialogue is raised to its level before it reaches the engine (`raised`)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from pydub import AudioSegment

from subtitled.audio import SAMPLE_RATE_HZ
from subtitled.speech import Chunk

# pydub says -inf for digital silence; this is quieter than any real recording's floor.
FLOOR_DBFS = -96.0
# The loudest passages: this share of the file's seconds is louder.
_LOUD_PERCENTILE = 95.0


def segment(audio: np.ndarray) -> AudioSegment:
    """16 kHz mono float samples as a pydub segment (16-bit PCM; at most 30 s of them)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    return AudioSegment(pcm.tobytes(), frame_rate=SAMPLE_RATE_HZ, sample_width=2,
                        channels=1)


def samples(sound: AudioSegment) -> np.ndarray:
    """A pydub segment's samples back as floats."""
    return np.asarray(sound.get_array_of_samples(), dtype=np.float32) / 32768.0


def dbfs(sound: AudioSegment) -> float:
    return max(sound.dBFS, FLOOR_DBFS) if len(sound) else FLOOR_DBFS


def speech_audio(chunk: Chunk) -> np.ndarray:
    """The samples of a chunk's speech pieces (a whole short stream holds its silence
    too)."""
    parts = [chunk.audio[round(p.chunk_start_seconds * SAMPLE_RATE_HZ):
                         round((p.chunk_start_seconds + p.duration_seconds) * SAMPLE_RATE_HZ)]
             for p in chunk.pieces]
    return np.concatenate(parts) if parts else chunk.audio


@dataclass(frozen=True)
class Dialogue:
    """What the levels say of a file, once all of it has been read."""

    dialogue_dbfs: float | None  # the median level of its speech (None: none found)
    loud_dbfs: float  # its loudest passages (the 95th percentile of its seconds)
    quiet: bool
    # How far its speech stands above the sound under it (`above_bed`; the median by
    # length; None: no speech found).
    above_bed_db: float | None = None

    def describe(self) -> str:
        if self.dialogue_dbfs is None:
            said = "no dialogue found"
        else:
            said = f"dialogue at {self.dialogue_dbfs:.0f} dBFS"
            if self.above_bed_db is not None:
                said += f" ({max(0.0, self.above_bed_db):.0f} dB above the sound under it)"
        return f"{said}, its loudest passages at {self.loud_dbfs:.0f} dBFS"


class Levels:
    """Fed every block of a stream from its start (`add_block`) and each speech chunk as
    detection cuts it (`add_chunk`); says whether the file is quiet and where speech may
    hide (`hiding_places`). `margin_db`: how far the dialogue may sit below the loudest
    passages before the file is quiet; `bed_margin_db`: how far above the sound under it
    it must stand not to be (`above_bed`)."""

    def __init__(self, margin_db: float, bed_margin_db: float) -> None:
        self.margin_db = margin_db
        self.bed_margin_db = bed_margin_db
        self._seconds = array("f")  # each second's level, from the stream's start
        self._pending = np.empty(0, dtype=np.float32)
        self._speech: list[tuple[float, float]] = []  # each chunk's (level, seconds)
        # Each chunk's quietest moments (`_floor`) and where it lies (source seconds).
        self._floors: list[tuple[float, float, float]] = []
        self._spans: list[tuple[float, float]] = []  # speech pieces, source seconds

    def add_block(self, block: np.ndarray) -> None:
        audio = np.concatenate([self._pending, block]) if len(self._pending) else block
        whole = len(audio) // SAMPLE_RATE_HZ * SAMPLE_RATE_HZ
        for start in range(0, whole, 30 * SAMPLE_RATE_HZ):
            sound = segment(audio[start:min(whole, start + 30 * SAMPLE_RATE_HZ)])
            self._seconds.extend(dbfs(sound[ms:ms + 1000])
                                 for ms in range(0, len(sound), 1000))
        self._pending = audio[whole:].copy()

    def add_chunk(self, chunk: Chunk) -> None:
        speech = speech_audio(chunk)
        self._speech.append((dbfs(segment(speech)), len(speech) / SAMPLE_RATE_HZ))
        self._floors.append((_floor(speech), chunk.source_start_seconds,
                             chunk.source_end_seconds))
        self._spans += [(p.source_start_seconds, p.source_start_seconds + p.duration_seconds)
                        for p in chunk.pieces]

    @property
    def dialogue_dbfs(self) -> float | None:
        """The median level of the speech found so far, each chunk weighted by its
        length."""
        return _median(self._speech)

    def above_bed(self) -> float | None:
        """How far the speech stands above the sound under it, in dB (the median by
        length; None: no speech found). A chunk's speech is the voice and its bed
        together, so its own level says nothing of a voice buried in music as loud as the
        rest of the film; the bed is measured where the voice is not: the quietest
        moments inside the chunk (between words and syllables: minimum statistics, as
        speech enhancement estimates its noise) or, lower still where there are any, the
        seconds without speech from 3 s before the chunk to 3 s after it (gaps between its
        pieces included). The benchmark programmes' dialogue stands 24 to 49 dB above its
        floor, the quiet programme's 10 dB, a voice under a bed as loud as itself a few
        (BENCHMARKS.md)."""
        if not self._floors:
            return None
        speech = self._speech_seconds()
        levels = np.asarray(self._seconds)
        stands = []
        for (level, seconds), (inside, start, end) in zip(self._speech, self._floors, strict=True):
            first, last = max(0, math.floor(start) - _BESIDE_SECONDS), \
                math.ceil(end) + _BESIDE_SECONDS
            beside = levels[first:last][~speech[first:last]]
            bed = min(inside, float(np.median(beside))) if len(beside) else inside
            stands.append((max(0.0, level - bed), seconds))
        return _median(stands)

    def finish(self) -> Dialogue:
        if len(self._pending):
            self._seconds.append(dbfs(segment(self._pending)))
            self._pending = np.empty(0, dtype=np.float32)
        loud = float(np.percentile(np.asarray(self._seconds), _LOUD_PERCENTILE)) \
            if len(self._seconds) else FLOOR_DBFS
        dialogue, above = self.dialogue_dbfs, self.above_bed()
        # No speech found in a file with sound in it: whatever speech there is, detection
        # did not hear it.
        quiet = loud > _AUDIBLE_DBFS and (
            dialogue is None or loud - dialogue >= self.margin_db
            or (above is not None and above < self.bed_margin_db))
        return Dialogue(dialogue, loud, quiet, above)

    def level(self, start: float, end: float) -> float:
        """The mean level of the seconds from `start` to `end` (source seconds)."""
        seconds = self._seconds[max(0, math.floor(start)):max(1, math.ceil(end))]
        return float(np.mean(np.asarray(seconds))) if len(seconds) else FLOOR_DBFS

    def _speech_seconds(self) -> np.ndarray:
        """For each second measured, whether detection found speech in any of it."""
        speech = np.zeros(len(self._seconds), dtype=bool)
        for start, end in self._spans:
            speech[max(0, math.floor(start)):math.ceil(end)] = True
        return speech

    def hiding_places(self, min_seconds: float) -> Iterator[tuple[float, float]]:
        """Stretches (source seconds) of at least `min_seconds` where detection found no
        speech and something is heard (music, effects, noise: what covers a voice).
        Silence hides nothing: detection hears quiet speech over silence."""
        covered = ~self._speech_seconds() & (np.asarray(self._seconds) > _AUDIBLE_DBFS)
        begun: int | None = None
        for second, hidden in enumerate([*covered.tolist(), False]):
            if hidden and begun is None:
                begun = second
            elif not hidden and begun is not None:
                if second - begun >= min_seconds:
                    yield float(begun), float(second)
                begun = None


def _median(values: Sequence[tuple[float, float]]) -> float | None:
    """The median of (value, weight) pairs, by weight."""
    if not values:
        return None
    ordered = sorted(values)
    half, total = sum(w for _, w in ordered) / 2, 0.0
    for value, weight in ordered:
        total += weight
        if total >= half:
            return value
    return ordered[-1][0]


# A chunk's floor: the level its quietest tenth of 50 ms frames reaches.
_FRAME_SAMPLES = SAMPLE_RATE_HZ // 20
_FLOOR_PERCENTILE = 10.0
# The seconds without speech on either side of a chunk that show the bed under it.
_BESIDE_SECONDS = 3


def _floor(speech: np.ndarray) -> float:
    """The level of a chunk's quietest moments, in dBFS (its own level when it is
    shorter than a frame)."""
    count = len(speech) // _FRAME_SAMPLES
    if not count:
        return dbfs(segment(speech))
    frames = speech[:count * _FRAME_SAMPLES].reshape(count, _FRAME_SAMPLES)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    # dBFS as pydub has it: against a full-scale square wave's power (1.0).
    levels = 10 * np.log10(np.maximum(power, 10 ** (FLOOR_DBFS / 10)))
    return float(np.percentile(levels, _FLOOR_PERCENTILE))


# Quieter than this, a second is silence (a recording's noise floor): nothing to cover a
# voice, nothing to look at again.
_AUDIBLE_DBFS = -50.0


def raised(chunk: Chunk, dialogue_dbfs: float | None, below_db: float,
           max_gain_db: float = 30.0) -> tuple[Chunk, float]:
    """The chunk with each of its speech pieces that lies more than `below_db` under the
    file's dialogue level (so far; for the first chunk, its own speech's) raised to it,
    by at most `max_gain_db` and never past full scale; and the most any piece was raised,
    in dB (0: the chunk as it was). Whisper then hears a line the same way however
    softly it was spoken."""
    reference = dialogue_dbfs if dialogue_dbfs is not None else \
        dbfs(segment(speech_audio(chunk)))
    audio, most = chunk.audio, 0.0
    for piece in chunk.pieces:
        first = round(piece.chunk_start_seconds * SAMPLE_RATE_HZ)
        last = round((piece.chunk_start_seconds + piece.duration_seconds) * SAMPLE_RATE_HZ)
        sound = segment(chunk.audio[first:last])
        level = dbfs(sound)
        if level <= FLOOR_DBFS or reference - level <= below_db:
            continue
        gain = min(reference - level, max_gain_db, -sound.max_dBFS - 0.5)
        if gain <= 0:
            continue
        if audio is chunk.audio:
            audio = chunk.audio.copy()
        audio[first:last] = samples(sound.apply_gain(gain))
        most = max(most, gain)
    return (Chunk(audio, chunk.pieces), most) if most else (chunk, 0.0)
