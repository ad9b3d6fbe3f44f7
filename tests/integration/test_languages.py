"""Language identification on real speech."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench import voices
from bench.languages import ours, whisper_own, whisper_ranking
from subtitled.engines import Transcriber
from subtitled.evaluation import normalize_text
from tests.integration.conftest import DATA, Transcribe, ffmpeg
from tests.integration.test_accuracy import cues_in


@pytest.mark.parametrize("clip", ["de_portal_leopard.wav", "de_werbung_cheetah.wav"])
@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_whole_file_vote_detects_german(clip: str, engine: str, tmp_path: Path,
                                        transcribe: Transcribe) -> None:
    path = tmp_path / clip
    path.symlink_to(DATA / clip)
    outcome = transcribe(path, engine=engine)
    assert outcome.language == "de"
    assert outcome.output == tmp_path / f"{path.stem}.de.srt"


def test_per_chunk_mode_follows_a_switch_from_english_to_german(
        tmp_path: Path, transcribe: Transcribe) -> None:
    path = tmp_path / "license.mp3"
    path.symlink_to(DATA / "mul_en-de_mit_license.mp3")
    outcome = transcribe(path, mode="per-chunk")
    assert outcome.output is not None
    cues = cues_in(outcome.output)
    english = [c for c in cues if c.end_seconds < 30.5]
    german = [c for c in cues if c.start_seconds >= 30.5]
    assert len(english) + len(german) == len(cues)  # nothing straddles the switch
    english_words = set(normalize_text(" ".join(c.text for c in english)))
    german_words = set(normalize_text(" ".join(c.text for c in german)))
    assert {"permission", "hereby", "granted", "software", "copies"} <= english_words
    assert {"software", "die", "genehmigung", "recht", "zu", "verkaufen"} <= german_words
    assert not english_words & {"die", "der", "und", "zu"}
    assert not german_words & {"the", "and", "of", "permission"}


def test_an_allow_list_keeps_detection_inside_it(tmp_path: Path,
                                                 transcribe: Transcribe) -> None:
    path = tmp_path / "portal.wav"
    path.symlink_to(DATA / "de_portal_leopard.wav")
    outcome = transcribe(path, allowed=("en", "fr"))
    assert outcome.language in ("en", "fr")


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, str]]:
    """espeak-ng speech in every language of bench.voices (26), with its language."""
    folder = tmp_path_factory.mktemp("espeak")
    return [(voices.speak(voice, folder / f"{voice.whisper}.wav"), voice.whisper)
            for voice in voices.VOICES]


_HEARD_BY_WHISPER: dict[Path, list[str]] = {}


def _whisper_own(path: Path, reference: object) -> list[str]:
    """Whisper's own detection (its languages, likeliest first), once per clip for both
    engines' tests."""
    if path not in _HEARD_BY_WHISPER:
        _HEARD_BY_WHISPER[path] = whisper_ranking(path, reference)
    return _HEARD_BY_WHISPER[path]


def _as_whisper_or_rightly(truth: str, own: list[str], heard: str) -> bool:
    """Ours is right, or what Whisper hears. Where Whisper itself is wrong, the clip is
    one its weights cannot tell: its two likeliest languages lie close (espeak-ng's Greek:
    Spanish 0.45, Latin 0.34), and int8 on another CPU may swap them, so either of them
    is as Whisper hears it."""
    return heard in (truth, own[0]) or (own[0] != truth and heard in own[:2])


@pytest.mark.parametrize("engine", ["openai-whisper", "faster-whisper"])
def test_a_clip_of_at_most_30_s_is_heard_as_whisper_hears_it_or_rightly(
        engine: str, spoken: list[tuple[Path, str]],
        transcriber: Callable[[str, str], Transcriber]) -> None:
    # Whisper's own detect_language on the same weights in full precision (FP32), on the
    # first 30 s: ours may differ only by being right where it is wrong (or, where it is
    # wrong, by a near tie it holds), even in int8.
    reference = transcriber("openai-whisper", "base").model  # type: ignore[attr-defined]
    model = transcriber(engine, "base")
    clips = [*spoken, *((DATA / name, name[:2]) for name in (
        "de_portal_leopard.wav", "de_werbung_cheetah.wav", "en_jfk_inaugural.flac",
        "en_librispeech_quilter_leopard.wav",
        "zh_zashijidejiao_sr.flac"))]  # under a second of speech: heard all the same
    heard = {path.name: (truth, _whisper_own(path, reference), ours(path, model))
             for path, truth in clips}
    wrong = {name: (truth, own[:2], ours_) for name, (truth, own, ours_) in heard.items()
             if not _as_whisper_or_rightly(truth, own, ours_)}
    assert not wrong, wrong
    assert sum(truth == own[0] for truth, own, _ in heard.values()) >= 10  # a real test



@pytest.fixture(scope="module")
def english_then_german(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Real English recordings, and espeak-ng German reading dialogue at a few speeds."""
    folder = tmp_path_factory.mktemp("mixed")
    english, german = folder / "english.wav", folder / "german.wav"
    concat(english, [DATA / "en_jfk_inaugural.flac",
                     DATA / "en_librispeech_quilter_leopard.wav"])
    concat(german, [voices.speak(voices.BY_LANGUAGE["de"], folder / f"de{i}.wav",
                                 text=text, words_per_minute=150 + 5 * i)
                    for i, text in enumerate(voices.LINES["de"])])
    return english, german


@pytest.mark.parametrize("english_seconds, german_seconds", [(35, 122), (90, 400), (780, 1140)])
def test_a_file_is_given_the_language_most_of_it_is_in(
        english_seconds: int, german_seconds: int, english_then_german: tuple[Path, Path],
        tmp_path: Path, transcriber: Callable[[str, str], Transcriber]) -> None:
    # English, then four times as much German or more: Whisper's own detection hears only
    # the first 30 s. Ours hears a window in every fifth of the file, each on its own, and
    # weighs them by their speech. The shorter files are the ones a glued sample got
    # wrong (English at 50 % and 79 %); the last is a 32-minute film.
    english, german = english_then_german
    path = tmp_path / "mixed.wav"
    ffmpeg("-stream_loop", "-1", "-t", str(english_seconds), "-i", str(english),
           "-stream_loop", "-1", "-t", str(german_seconds), "-i", str(german),
           "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1", "-ar", "16000", "-ac", "1",
           str(path))
    reference = transcriber("openai-whisper", "base").model  # type: ignore[attr-defined]
    assert whisper_own(path, reference) == "en"
    for engine in ("openai-whisper", "faster-whisper"):
        assert ours(path, transcriber(engine, "base")) == "de", engine


def concat(target: Path, parts: list[Path]) -> None:
    inputs = [arg for part in parts for arg in ("-i", str(part))]
    mix = "".join(f"[{i}:a]aresample=16000,aformat=channel_layouts=mono[a{i}];"
                  for i in range(len(parts)))
    mix += "".join(f"[a{i}]" for i in range(len(parts))) + f"concat=n={len(parts)}:v=0:a=1"
    ffmpeg(*inputs, "-filter_complex", mix, "-ar", "16000", str(target))


def test_an_english_film_s_german_part_gets_a_forced_subtitle_in_english(
        tmp_path: Path, transcribe: Transcribe) -> None:
    """The corpus file that switches from English to German (at 30.5 s), as an English
    film with a German scene."""
    path = tmp_path / "license.mp3"
    path.symlink_to(DATA / "mul_en-de_mit_license.mp3")
    outcome = transcribe(path, engine="faster-whisper", language="en",
                         forced_subtitles=True)
    assert outcome.output == tmp_path / "license.en.srt"
    assert outcome.forced == tmp_path / "license.en.forced.srt"
    full, forced = cues_in(outcome.output), cues_in(outcome.forced)
    # The full subtitle: the English part as it was said...
    said = set(normalize_text(" ".join(c.text for c in full if c.end_seconds < 30.5)))
    assert {"permission", "hereby", "granted", "software", "copies"} <= said
    # ...and the forced one: cues over the German part alone, in English.
    assert forced and all(c.start_seconds >= 30.5 for c in forced), forced
    translated = set(normalize_text(" ".join(c.text for c in forced)))
    assert len(translated & {"the", "and", "of", "to", "software", "right", "rights"}) >= 3
    assert not translated & {"die", "der", "und", "zu", "recht", "genehmigung"}
    # The German part is in the full subtitle too, as translated there.
    assert [c for c in full if c.start_seconds >= 30.5] == forced
    # The language work: each chunk heard in its own decode, and at most two windows more
    # per 30 s of speech.
    assert outcome.detection_windows <= 2 * outcome.speech_seconds / 30



def test_a_german_line_inside_an_english_chunk_is_cut_out_for_the_forced_subtitle(
        tmp_path: Path, transcribe: Transcribe) -> None:
    """English (11 s), German (5 s), English again (6 s), a second apart: one chunk, which
    its decode hears as mostly English; heard again in halves, the German line alone is
    decoded again, translated, and is all the forced subtitle holds."""
    path = tmp_path / "scene.wav"
    ffmpeg("-i", str(DATA / "en_jfk_inaugural.flac"), "-i", str(DATA / "de_portal_leopard.wav"),
           "-i", str(DATA / "en_librispeech_quilter_leopard.wav"), "-filter_complex",
           ";".join(f"[{i}]aresample=16000,aformat=sample_fmts=fltp:channel_layouts=mono"
                    f"{',apad=pad_dur=1' * (i < 2)}[{name}]" for i, name in enumerate("abc"))
           + ";[a][b][c]concat=n=3:v=0:a=1", str(path))
    outcome = transcribe(path, engine="faster-whisper", language="en",
                         forced_subtitles=True)
    assert outcome.forced is not None and outcome.output is not None, outcome
    forced = cues_in(outcome.forced)
    # The German line lies from about 12 to 17 s.
    assert forced and all(c.start_seconds >= 11.5 and c.end_seconds <= 18.0
                          for c in forced), forced
    translated = set(normalize_text(" ".join(c.text for c in forced)))
    assert not translated & {"der", "diesem", "raum", "wurde", "als", "genutzt"}, forced
    full = set(normalize_text(" ".join(c.text for c in cues_in(outcome.output))))
    assert {"fellow", "americans", "quilter"} <= full
    assert 0 < outcome.detection_windows <= 2 * outcome.speech_seconds / 30 + 4
