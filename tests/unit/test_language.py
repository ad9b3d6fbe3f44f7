from __future__ import annotations

import numpy as np
import pytest

from subtitled.language import label_pieces, restrict, vote, window_starts
from subtitled.speech import Chunk, Piece


def test_vote_weights_each_window_by_its_speech() -> None:
    guess = vote([({"en": 0.9, "de": 0.1}, 2.0), ({"de": 0.8, "en": 0.2}, 20.0)])
    assert guess is not None
    assert guess.code == "de"
    assert guess.confidence == pytest.approx((0.1 * 2 + 0.8 * 20) / 22)
    assert guess.windows == 2


def test_vote_sums_probability_not_winners() -> None:
    # Two windows narrowly say Spanish, one says Portuguese firmly: the mass is Portuguese.
    windows = [({"es": 0.5, "pt": 0.45}, 10.0)] * 2 + [({"pt": 0.99, "es": 0.01}, 10.0)]
    guess = vote(windows)
    assert guess is not None and guess.code == "pt"


def test_allow_list_restricts_and_renormalises() -> None:
    assert restrict({"en": 0.6, "de": 0.3, "nl": 0.1}, ["de", "nl"]) == pytest.approx(
        {"de": 0.75, "nl": 0.25})
    guess = vote([({"en": 0.6, "de": 0.3, "nl": 0.1}, 5.0)], ["de", "nl"])
    assert guess is not None and guess.code == "de"


def test_no_windows_no_guess() -> None:
    assert vote([]) is None


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(None, [0.0]), (20.0, [0.0]), (70.0, [0.0, 30.0, 60.0]),
     (3600.0, [357.0, 1071.0, 1785.0, 2499.0, 3213.0]),
     # No window that would start too near the end to hold a vote's second of speech
     # (an audio track a little longer than two windows).
     (60.04, [0.0, 30.0]), (60.9, [0.0, 30.0]), (61.5, [0.0, 30.0, 60.0])],
)
def test_windows_spread_over_the_whole_file(duration: float | None,
                                            expected: list[float]) -> None:
    assert window_starts(duration, 5, 30.0) == pytest.approx(expected)


def test_pieces_are_grouped_into_runs_of_one_language() -> None:
    rate = 16_000
    # Four pieces of 2 s, each filled with a constant that names its language.
    values = [1.0, 1.0, 2.0, 2.0]
    audio = np.concatenate([np.full(2 * rate, v, dtype=np.float32) for v in values])
    pieces = tuple(Piece(2.0 * i, 10.0 * i, 2.0) for i in range(4))

    def detect(samples: np.ndarray) -> dict[str, float]:
        return {"en": 0.9, "de": 0.1} if samples[0] == 1.0 else {"de": 0.8, "en": 0.2}

    runs = label_pieces(Chunk(audio, pieces), detect, (), "en")
    assert [(language, len(chunk.pieces)) for language, chunk in runs] == [("en", 2), ("de", 2)]
    german = runs[1][1]
    assert german.source_start_seconds == 20.0
    assert np.all(german.audio == 2.0)


def test_short_pieces_keep_the_language_before_them() -> None:
    rate = 16_000
    audio = np.zeros(int(2.5 * rate), dtype=np.float32)
    pieces = (Piece(0.0, 0.0, 2.0), Piece(2.0, 5.0, 0.5))
    runs = label_pieces(Chunk(audio, pieces), lambda _: {"fr": 1.0}, (), "en")
    assert [(language, len(chunk.pieces)) for language, chunk in runs] == [("fr", 2)]
