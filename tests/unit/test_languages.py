from __future__ import annotations

import pytest

from subtitled import languages


@pytest.mark.parametrize(
    ("code", "expected"),
    [("eng", "en"), ("en", "en"), ("EN-us", "en"), ("ger", "de"), ("deu", "de"),
     ("chi", "zh"), ("zho", "zh"), ("fre", "fr"), ("jw", "jv"), ("und", None), ("", None),
     ("xyzzy", None), ("pt_BR", "pt"), ("yue", "yue")],
)
def test_normalizes_container_tags_and_user_codes(code: str, expected: str | None) -> None:
    assert languages.normalize(code) == expected


def test_whisper_codes_round_trip_through_iso() -> None:
    assert languages.from_whisper("jw") == "jv"
    assert languages.to_whisper("jv") == "jw"
    assert languages.to_whisper(languages.from_whisper("de")) == "de"


def test_whispers_languages_are_both_engines_own() -> None:
    from faster_whisper.tokenizer import _LANGUAGE_CODES
    from whisper.tokenizer import LANGUAGES

    assert languages.WHISPER_LANGUAGES == set(_LANGUAGE_CODES) == set(LANGUAGES)
    assert languages.WHISPER_LANGUAGE_NAMES == LANGUAGES  # what /detect-language answers
    assert languages.whisper_knows("jv") and languages.whisper_knows("yue")
    assert not languages.whisper_knows("zz")
