"""Test programmes, muxed with a picture into an .mkv, with the truth (where each clip's
speech starts and ends, and what is said) kept beside it:

- mixed: real English speech from the corpus with gaps of silence, a music-like passage and
  a stretch of noise (the first benchmark programme, 49 % speech);
- looped: the mixed programme's clips only, with gaps of 0.3 to 1.5 s (for memory
  against length: even 5 minutes fill whole batches);
- dense-en, dense-de, dense-fr: what films and series are like: scenes of one to three
  minutes of continuous dialogue (turns 0.15 to 0.8 s apart) from several voices (the
  corpus's recordings in that language and espeak-ng voices reading bench.voices.LINES),
  some under a music bed or a noise bed, with music alone between scenes; over 65 %
  speech;
- quiet-en: dense-en's scenes with every scene's dialogue at -30 to -20 dBFS under music
  or effects at -20 dBFS, mixed with pydub (issue: quiet and whispered dialogue).

    .venv/bin/python -m bench.programme OUT.mkv [--minutes 10] [--seed 1]
        [--kind mixed|dense-en|dense-de|dense-fr|quiet-en|looped] [--dense: looped]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
RATE_HZ = 16_000
# English clips with human (or agreed) reference transcripts; the programme cycles them.
SPEECH_CLIPS = ("en_jfk_inaugural.flac", "en_librispeech_quilter_leopard.wav",
                "en_platforms_cheetah.wav", "en_timit_ldc93s1.wav",
                "en_one_two_three_sr.wav")
NOISE_CLIP = "nospeech_noise_leopard.wav"
MUSIC_SECONDS = 40.0
NOISE_SECONDS = 20.0


@dataclass(frozen=True)
class Speech:
    """One clip placed in the programme: where its speech really starts and ends."""

    clip: str
    onset_seconds: float
    end_seconds: float
    text: str


@dataclass(frozen=True)
class Truth:
    duration_seconds: float
    speech: tuple[Speech, ...]
    language: str = "en"

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.speech)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @staticmethod
    def load(path: Path) -> Truth:
        data = json.loads(path.read_text())
        return Truth(data["duration_seconds"], tuple(Speech(**s) for s in data["speech"]),
                     data.get("language", "en"))

    @property
    def speech_seconds(self) -> float:
        return sum(s.end_seconds - s.onset_seconds for s in self.speech)


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file name."""
    lines = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = (dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line)
    return {row["file"]: row for row in rows}


def decode(path: Path) -> np.ndarray:
    """Any audio file → 16 kHz mono float32 (ffmpeg's own downmix)."""
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1",
                          "-ar", str(RATE_HZ), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


def active_span(audio: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms frame louder than 30 dB below the clip's loudest frame: where
    the speech in a clean recording starts and ends."""
    frame = RATE_HZ // 100
    count = len(audio) // frame
    energy = np.sqrt(np.mean(audio[: count * frame].reshape(count, frame) ** 2, axis=1))
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-30 / 20))
    return float(loud[0] * frame / RATE_HZ), float((loud[-1] + 1) * frame / RATE_HZ)


def music(seconds: float, rng: random.Random) -> np.ndarray:
    """Chords with harmonics and a bass line over a kick-and-hat beat, 100 bpm."""
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    out = np.zeros_like(t)
    beat = 60 / 100
    roots = [220.0, 174.6, 261.6, 196.0]
    for bar_start in np.arange(0, seconds, 4 * beat):
        root = roots[int(bar_start / (4 * beat)) % len(roots)]
        span = (t >= bar_start) & (t < bar_start + 4 * beat)
        local = t[span] - bar_start
        envelope = np.exp(-local * 0.6)
        for ratio in (1.0, 1.25, 1.5, 2.0):
            for harmonic, weight in ((1, 1.0), (2, 0.4), (3, 0.2)):
                out[span] += 0.04 * weight * envelope * np.sin(
                    2 * np.pi * root * ratio * harmonic * local)
        out[span] += 0.08 * np.sin(2 * np.pi * root / 2 * local)
    noise = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(len(t))
    for hit in np.arange(0, seconds, beat):
        first = int(hit * RATE_HZ)
        decay = np.exp(-np.arange(min(4000, len(t) - first)) / 600)
        out[first : first + len(decay)] += 0.3 * decay * np.sin(
            2 * np.pi * 60 * np.arange(len(decay)) / RATE_HZ)
        hat = int((hit + beat / 2) * RATE_HZ)
        length = min(800, max(0, len(t) - hat))
        out[hat : hat + length] += 0.05 * noise[hat : hat + length] * np.exp(
            -np.arange(length) / 150)
    return out.astype(np.float32)


def assemble(minutes: float, seed: int, dense: bool = False) -> tuple[np.ndarray, Truth]:
    """Speech clips in a shuffled cycle with gaps of 0.3 to 4 s (now and then 6 to 10 s); the
    music a third of the way in, the noise two thirds in. Dense: speech only, gaps of 0.3
    to 1.5 s (looped speech, for memory against length)."""
    rng = random.Random(seed)
    rows = manifest()
    clips = {name: decode(CORPUS / name) for name in SPEECH_CLIPS}
    total = int(minutes * 60 * RATE_HZ)
    parts: list[np.ndarray] = [np.zeros(2 * RATE_HZ, dtype=np.float32)]
    speech: list[Speech] = []
    at = 2 * RATE_HZ
    inserts = {} if dense else {1 / 3: music(MUSIC_SECONDS, rng),
                                2 / 3: _fit(decode(CORPUS / NOISE_CLIP), NOISE_SECONDS, rng)}
    order: list[str] = []
    while at < total - 15 * RATE_HZ:
        for share in [s for s in inserts if at >= s * total]:
            parts.append(inserts.pop(share))
            at += len(parts[-1])
        if not order:
            order = list(SPEECH_CLIPS)
            rng.shuffle(order)
        name = order.pop()
        audio = clips[name]
        onset, end = active_span(audio)
        speech.append(Speech(name, at / RATE_HZ + onset, at / RATE_HZ + end,
                             rows[name]["transcript"]))
        gap = rng.uniform(0.3, 1.5) if dense else \
            rng.uniform(6, 10) if rng.random() < 0.1 else rng.uniform(0.3, 4)
        parts += [audio, np.zeros(int(gap * RATE_HZ), dtype=np.float32)]
        at += len(audio) + len(parts[-1])
    programme = np.concatenate(parts)
    # A faint noise floor everywhere, as in any real recording: no digital silence.
    floor = np.random.default_rng(seed).standard_normal(len(programme)) * 10 ** (-65 / 20)
    programme = (programme + floor).astype(np.float32)
    return programme, Truth(len(programme) / RATE_HZ, tuple(speech))


KINDS = ("mixed", "dense-en", "dense-de", "dense-fr", "quiet-en", "looped")


def assemble_scenes(language: str, minutes: float, seed: int,
                    quiet: bool = False) -> tuple[np.ndarray, Truth]:
    """Scenes of continuous dialogue in `language`, some over a bed of music or noise,
    with music alone or a pause between them. `quiet`: every scene's dialogue at -30 to
    -20 dBFS under a bed of music or effects at -20 dBFS (`_quiet_scene`)."""
    rng = random.Random(seed)
    rows = manifest()
    real = [(decode(CORPUS / name), row["transcript"]) for name, row in sorted(rows.items())
            if row["lang"] == language and float(row["duration_s"]) >= 2.0]
    lines = _spoken_lines(language, rng)
    total = int(minutes * 60 * RATE_HZ)
    parts: list[np.ndarray] = [np.zeros(2 * RATE_HZ, dtype=np.float32)]
    speech: list[Speech] = []
    at = 2 * RATE_HZ
    while at < total - 30 * RATE_HZ:
        scene_end = min(total, at + int(rng.uniform(60, 180) * RATE_HZ))
        scene: list[np.ndarray] = []
        while at < scene_end:
            audio, text = rng.choice(real) if real and rng.random() < 0.3 else \
                rng.choice(lines)
            onset, end = active_span(audio)
            speech.append(Speech(f"{language}-{len(speech)}", at / RATE_HZ + onset,
                                 at / RATE_HZ + end, text))
            gap = np.zeros(int(rng.uniform(0.15, 0.8) * RATE_HZ), dtype=np.float32)
            scene += [audio, gap]
            at += len(audio) + len(gap)
        dialogue = np.concatenate(scene)
        parts.append(_quiet_scene(dialogue, rng) if quiet else _bedded(dialogue, rng))
        between = music(rng.uniform(4, 10), rng) if rng.random() < 0.5 else \
            np.zeros(int(rng.uniform(1, 3) * RATE_HZ), dtype=np.float32)
        parts.append(between)
        at += len(between)
    programme = np.concatenate(parts)
    floor = np.random.default_rng(seed).standard_normal(len(programme)) * 10 ** (-65 / 20)
    programme = (programme + floor).astype(np.float32)
    return programme, Truth(len(programme) / RATE_HZ, tuple(speech), language)


def _bedded(dialogue: np.ndarray, rng: random.Random) -> np.ndarray:
    """A scene as the dense programmes have it: no bed, music about 20 dB under the
    dialogue, or brown noise."""
    bed = rng.choice(("none", "music", "noise"))
    if bed == "music":
        dialogue = dialogue + 0.12 * music(len(dialogue) / RATE_HZ + 1, rng)[
            : len(dialogue)]
    elif bed == "noise":
        dialogue = dialogue + _brown(len(dialogue), 0.03, rng)
    return dialogue.astype(np.float32)


def _quiet_scene(dialogue: np.ndarray, rng: random.Random) -> np.ndarray:
    """A scene of the quiet programme, mixed with pydub: the dialogue set to -30 to -20
    dBFS, laid over music or effects (brown noise with a crash now and then) set to -20
    dBFS: a film mastered with its dialogue far under the score and the effects."""
    from subtitled.levels import samples, segment

    seconds = len(dialogue) / RATE_HZ
    if rng.random() < 0.5:
        bed = music(seconds + 1, rng)[: len(dialogue)]
    else:
        bed = _brown(len(dialogue), 0.3, rng)
        for hit in np.arange(rng.uniform(0, 4), seconds, rng.uniform(3, 6)):
            first = int(hit * RATE_HZ)
            crash = _brown(min(RATE_HZ, len(bed) - first), 0.6, rng)
            bed[first:first + len(crash)] += crash * np.exp(-np.arange(len(crash)) / 3000)
    voice, under = segment(dialogue), segment(bed)
    voice = voice.apply_gain(rng.uniform(-30, -20) - voice.dBFS)
    under = under.apply_gain(-20 - under.dBFS)
    return samples(under.overlay(voice))


def _spoken_lines(language: str, rng: random.Random) -> list[tuple[np.ndarray, str]]:
    """Every line of bench.voices.LINES in every voice of the language, at a few speeds."""
    import tempfile

    from bench import voices

    voice = voices.BY_LANGUAGE[language]
    spoken = []
    with tempfile.TemporaryDirectory() as folder:
        for index, text in enumerate(voices.LINES[language]):
            for number, (speaker, pitch) in enumerate(voices.SPEAKERS[language]):
                path = voices.speak(voice, Path(folder) / f"{index}-{number}.wav", text=text,
                                    espeak=speaker, pitch=pitch,
                                    words_per_minute=rng.randrange(140, 190))
                spoken.append((decode(path), text))
    return spoken


def _brown(count: int, level: float, rng: random.Random) -> np.ndarray:
    white = np.random.default_rng(rng.randrange(1 << 30)).standard_normal(count)
    brown = np.cumsum(white)
    # Its drift taken out over a second (or all of it, when shorter: a crash at a scene's
    # very end; "same" would give the longer of the two).
    width = max(1, min(RATE_HZ, count))
    brown -= np.convolve(brown, np.ones(width) / width, mode="same")
    return (brown * level / (np.abs(brown).max() or 1.0)).astype(np.float32)


def _fit(audio: np.ndarray, seconds: float, rng: random.Random) -> np.ndarray:
    """The clip looped to `seconds`, over brown noise."""
    count = int(seconds * RATE_HZ)
    looped: np.ndarray = np.resize(audio, count) + _brown(count, 0.05, rng)
    return looped.astype(np.float32)


_TAGS = {"en": "eng", "de": "deu", "fr": "fra"}


def mux(audio: np.ndarray, target: Path, language: str = "en") -> None:
    """Picture (test pattern) + the audio as stereo 48 kHz AAC, in Matroska."""
    target.parent.mkdir(parents=True, exist_ok=True)
    seconds = len(audio) / RATE_HZ
    partial = target.with_name(target.name + ".part.mkv")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=320x180:rate=10:duration={seconds:.3f}",
         "-f", "f32le", "-ar", str(RATE_HZ), "-ac", "1", "-i", "pipe:0",
         "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast",
         "-c:a", "aac", "-b:a", "96k", "-ar", "48000", "-ac", "2",
         "-metadata:s:a:0", f"language={_TAGS[language]}", str(partial)],
        input=audio.tobytes(), check=True)
    partial.replace(target)


def truth_path(media: Path) -> Path:
    return media.with_name(media.name + ".truth.json")


def build(target: Path, minutes: float, seed: int = 1, dense: bool = False,
          kind: str = "mixed") -> Truth:
    """Make the programme and its truth once; later calls reuse them. `dense` (or kind
    "looped"): the mixed programme's clips only, looped with short gaps (for memory
    against length)."""
    if target.exists() and truth_path(target).exists():
        return Truth.load(truth_path(target))
    if kind.startswith("dense-"):
        audio, truth = assemble_scenes(kind.removeprefix("dense-"), minutes, seed)
    elif kind == "quiet-en":
        audio, truth = assemble_scenes("en", minutes, seed, quiet=True)
    else:
        audio, truth = assemble(minutes, seed, dense or kind == "looped")
    mux(audio, target, truth.language)
    truth.save(truth_path(target))
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", type=Path)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kind", choices=KINDS, default="mixed")
    parser.add_argument("--dense", action="store_true", help="the same as --kind looped")
    args = parser.parse_args()
    truth = build(args.target, args.minutes, args.seed, args.dense, kind=args.kind)
    print(f"{args.target}: {truth.duration_seconds:.0f} s, {len(truth.speech)} clips, "
          f"{truth.speech_seconds:.0f} s of speech "
          f"({truth.speech_seconds / truth.duration_seconds:.0%})")


if __name__ == "__main__":
    main()
