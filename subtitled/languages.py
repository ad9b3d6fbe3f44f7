"""Language codes: container tags (ISO 639-2) and Whisper's codes, mapped to ISO 639-1."""

from __future__ import annotations

# ISO 639-2 (bibliographic and terminological forms) -> ISO 639-1, for every language
# Whisper knows. Container tags (Matroska, MP4) use 639-2; file names and Whisper use 639-1.
_ISO639_2_TO_1 = {
    "afr": "af", "amh": "am", "ara": "ar", "asm": "as", "aze": "az", "bak": "ba",
    "bel": "be", "bul": "bg", "ben": "bn", "bod": "bo", "tib": "bo", "bre": "br",
    "bos": "bs", "cat": "ca", "ces": "cs", "cze": "cs", "cym": "cy", "wel": "cy",
    "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en",
    "spa": "es", "est": "et", "eus": "eu", "baq": "eu", "fas": "fa", "per": "fa",
    "fin": "fi", "fao": "fo", "fra": "fr", "fre": "fr", "glg": "gl", "guj": "gu",
    "hau": "ha", "heb": "he", "hin": "hi", "hrv": "hr", "hat": "ht", "hun": "hu",
    "hye": "hy", "arm": "hy", "ind": "id", "isl": "is", "ice": "is", "ita": "it",
    "jpn": "ja", "jav": "jv", "kat": "ka", "geo": "ka", "kaz": "kk", "khm": "km",
    "kan": "kn", "kor": "ko", "lat": "la", "ltz": "lb", "lin": "ln", "lao": "lo",
    "lit": "lt", "lav": "lv", "mlg": "mg", "mri": "mi", "mao": "mi", "mkd": "mk",
    "mac": "mk", "mal": "ml", "mon": "mn", "mar": "mr", "msa": "ms", "may": "ms",
    "mlt": "mt", "mya": "my", "bur": "my", "nep": "ne", "nld": "nl", "dut": "nl",
    "nno": "nn", "nor": "no", "nob": "no", "oci": "oc", "pan": "pa", "pol": "pl",
    "pus": "ps", "por": "pt", "ron": "ro", "rum": "ro", "rus": "ru", "san": "sa",
    "snd": "sd", "sin": "si", "slk": "sk", "slo": "sk", "slv": "sl", "sna": "sn",
    "som": "so", "sqi": "sq", "alb": "sq", "srp": "sr", "sun": "su", "swe": "sv",
    "swa": "sw", "tam": "ta", "tel": "te", "tgk": "tg", "tha": "th", "tuk": "tk",
    "tgl": "tl", "fil": "tl", "tur": "tr", "tat": "tt", "ukr": "uk", "urd": "ur",
    "uzb": "uz", "vie": "vi", "yid": "yi", "yor": "yo", "zho": "zh", "chi": "zh",
    "cmn": "zh", "yue": "yue", "haw": "haw",
}

# Whisper's own codes that differ from ISO 639-1.
_WHISPER_TO_ISO = {"jw": "jv"}
_ISO_TO_WHISPER = {iso: whisper for whisper, iso in _WHISPER_TO_ISO.items()}


def normalize(code: str) -> str | None:
    """A container tag or user code ("eng", "en", "en-US", "ger") as ISO 639-1, or None."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    if base in ("", "und", "mul", "zxx", "mis"):
        return None
    if base in _ISO639_2_TO_1:
        return _ISO639_2_TO_1[base]
    if base in _WHISPER_TO_ISO:
        return _WHISPER_TO_ISO[base]
    if len(base) == 2 and base.isalpha():
        return base
    return None


def from_whisper(code: str) -> str:
    """Whisper's language code as the ISO code used in file names."""
    return _WHISPER_TO_ISO.get(code, code)


def to_whisper(iso_code: str) -> str:
    """An ISO 639-1 code as the code Whisper's tokenizer expects."""
    return _ISO_TO_WHISPER.get(iso_code, iso_code)



# Whisper's languages by the codes its tokenizer uses (large-v3's 100), with the names it
# gives them (whisper.tokenizer.LANGUAGES; tests hold this to both engines' own lists).
WHISPER_LANGUAGE_NAMES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
    "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
    "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
    "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish",
    "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil",
    "no": "norwegian", "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian",
    "lt": "lithuanian", "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh",
    "sk": "slovak", "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali",
    "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque",
    "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian",
    "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili", "gl": "galician",
    "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian",
    "be": "belarusian", "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic",
    "yi": "yiddish", "lo": "lao", "uz": "uzbek", "fo": "faroese", "ht": "haitian creole",
    "ps": "pashto", "tk": "turkmen", "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit",
    "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese",
    "yue": "cantonese",
}
WHISPER_LANGUAGES = frozenset(WHISPER_LANGUAGE_NAMES)


def whisper_knows(iso_code: str) -> bool:
    """Whether Whisper has this language."""
    return to_whisper(iso_code) in WHISPER_LANGUAGES
