"""subtitled: writes subtitles for a media library with a resident Whisper model."""

__version__ = "0.1.0"
