"""Command line: subcommands, logging set-up, and SubtitledError → one line + exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from subtitled import __version__
from subtitled.config import (
    COMPUTE_TYPES,
    DEVICES,
    ENGINES,
    LANGUAGE_MODES,
    QUALITY_GATES,
    TASKS,
    Auto,
    TranscribeSettings,
)
from subtitled.errors import ConfigError, EngineStuck, SubtitledError, shown

logger = logging.getLogger("subtitled")


def _codes(value: str) -> tuple[str, ...]:
    """A comma-separated list (language codes, formats, hotwords); the schema checks and
    normalizes each item."""
    return tuple(code.strip() for code in value.split(",") if code.strip())


def _count(value: str) -> int | Auto:
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'auto' or a whole number, not {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="subtitled", description="Subtitles for a media library, written by Whisper.")
    parser.add_argument("--version", action="version", version=f"subtitled {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    # The same option after the command (`subtitled status -v`), counted with the first.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, dest="verbose_after",
                        help="more log output (-v info, -vv debug)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **options: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **options)  # type: ignore[arg-type]

    _add_transcribe(command(
        "transcribe", help="write subtitles for the given media files now",
        description="Write <stem>.<lang>.srt (and the other --formats) beside each media "
                    "file; a folder stands for the media files in it and its subfolders."))
    run = command("run", help="watch the configured folders (the daemon)")
    run.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    check = command("check-config", help="validate a configuration file")
    check.add_argument("config", type=Path, nargs="?", default=None, help=_CONFIG_HELP)
    status = command("status", help="what the daemon has done and is doing")
    status.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    doctor = command("doctor", help="check the deployment: ffmpeg, torch, GPU, model, "
                     "folders, inotify, systemd")
    doctor.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    for name, what in (("pause", "hold the queue (the file in hand resumes later from its "
                                 "checkpoint), across restarts, until resume"),
                       ("resume", "lift a pause")):
        command(name, help=what).add_argument("--config", type=Path, default=None,
                                              help=_CONFIG_HELP)
    migrate = command("migrate-db", help="copy this host's job database (SQLite) into an "
                      "empty PostgreSQL one, once, before the first start on it")
    migrate.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    migrate.add_argument("--to", metavar="URL", default=None,
                         help="the PostgreSQL database (default: state.database)")
    retry = command("retry", help="queue failed files again")
    retry.add_argument("--config", type=Path, default=None, help=_CONFIG_HELP)
    target = retry.add_mutually_exclusive_group(required=True)
    target.add_argument("path", type=Path, nargs="?", help="one media file")
    target.add_argument("--failed", action="store_true", help="every failed and dead file")
    retry.add_argument("--force", action="store_true",
                       help="with PATH: redo it even if it has a subtitle in its language "
                            "(one edited by hand, or another tool's), and replace that")
    return parser


_CONFIG_HELP = "configuration file (default: $SUBTITLED_CONFIG or /etc/subtitled/config.yaml)"


def config_path(given: Path | None) -> Path:
    from subtitled.config_file import DEFAULT_PATH

    return given or Path(os.environ.get("SUBTITLED_CONFIG") or DEFAULT_PATH)


def _add_transcribe(p: argparse.ArgumentParser) -> None:
    defaults = TranscribeSettings()
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="media files, or folders of them")
    p.add_argument("--model", default=defaults.model.name,
                   help="model name (large-v3, base, tiny.en, ...) or the path of a .pt "
                        "checkpoint or a CTranslate2 folder (default: %(default)s)")
    p.add_argument("--engine", choices=ENGINES, default=defaults.model.engine)
    p.add_argument("--device", choices=DEVICES, default=defaults.model.device)
    p.add_argument("--model-dir", type=Path, default=defaults.model.model_dir,
                   help="where models are looked for and downloaded (default: %(default)s)")
    p.add_argument("--beam-size", type=_count, default=defaults.model.beam_size,
                   help="beams in the search; auto: 5 on a GPU, 1 (greedy, the fastest) on "
                        "a CPU (default: %(default)s)")
    p.add_argument("--batch-size", type=_count, default=defaults.model.batch_size,
                   help="speech chunks decoded together; auto: as many as the memory holds "
                        "(default: %(default)s)")
    p.add_argument("--compute-type", choices=COMPUTE_TYPES, default=defaults.model.compute_type,
                   help="faster-whisper's precision; auto: the fastest the device supports")
    p.add_argument("--offline", action="store_true",
                   help="never download; fail with instructions when the model is missing")
    p.add_argument("--language", default="auto",
                   help="'auto' or the spoken language as an ISO code (default: auto)")
    p.add_argument("--language-mode", choices=LANGUAGE_MODES, default=defaults.language.mode,
                   help="vote: one language per file, voted over windows spread over it; "
                        "per-chunk: detect each stretch of speech, for files that switch")
    p.add_argument("--allowed-languages", type=_codes, default=(), metavar="CODES",
                   help="comma-separated ISO codes that detection may choose from")
    p.add_argument("--audio-language", type=_codes, default=(), metavar="CODES",
                   help="preferred audio track languages, in order (e.g. en,de)")
    p.add_argument("--task", choices=TASKS, default=defaults.language.task,
                   help="translate writes English subtitles for speech in any language")
    p.add_argument("--also-translate", action="store_true",
                   help="beside the transcript of speech in another language, an English "
                        "translation (STEM.en.srt), from the same run")
    p.add_argument("--forced", action="store_true",
                   help="for speech in English, STEM.en.forced.srt: only the stretches in "
                        "other languages, translated to English")
    p.add_argument("--each-audio-language", action="store_true",
                   help="one subtitle per audio language: STEM.ja.srt from a Japanese track "
                        "and STEM.en.srt from an English dub")
    p.add_argument("--force", action="store_true",
                   help="replace an existing subtitle for the same language")
    p.add_argument("--template", default=defaults.output.template,
                   help="output name; fields {stem}, {lang}, {name} (default: %(default)s)")
    p.add_argument("--hotwords", type=_codes, default=(), metavar="WORDS",
                   help="comma-separated names and words to spell as given (Whisper's "
                        "initial prompt)")
    p.add_argument("--formats", type=_codes, default=defaults.output.formats,
                   metavar="FORMATS",
                   help="comma-separated, from srt, vtt, ass, lrc; the template's name with "
                        "each format's extension (lrc: STEM.lrc) (default: srt)")
    p.add_argument("--quality-gate", choices=QUALITY_GATES,
                   default=defaults.quality.gate,
                   help="a likely bad subtitle (improbable text, music or noise, unsure "
                        "language): flag says so, review writes STEM.LANG.review.srt, hold "
                        "writes nothing (default: %(default)s)")
    limits = defaults.cues
    p.add_argument("--max-line-chars", type=int, default=limits.max_line_chars)
    p.add_argument("--max-lines", type=int, default=limits.max_lines)
    p.add_argument("--min-duration", type=float, default=limits.min_duration_seconds,
                   help="seconds a cue stays on screen at least (default: %(default)s)")
    p.add_argument("--max-duration", type=float, default=limits.max_duration_seconds,
                   help="seconds a cue stays on screen at most (default: %(default)s)")
    p.add_argument("--min-gap", type=float, default=limits.min_gap_seconds,
                   help="seconds between two cues at least (default: %(default)s)")
    p.add_argument("--max-cps", type=float, default=limits.max_chars_per_second,
                   help="reading speed in characters per second (default: %(default)s)")


# Each setting the command line sets, by its key path in the schema, and its option.
_OPTIONS = {
    ("model", "name"): "--model", ("model", "engine"): "--engine",
    ("model", "device"): "--device", ("model", "model_dir"): "--model-dir",
    ("model", "offline"): "--offline", ("model", "beam_size"): "--beam-size",
    ("model", "batch_size"): "--batch-size", ("model", "compute_type"): "--compute-type",
    ("language", "language"): "--language", ("language", "mode"): "--language-mode",
    ("language", "allowed"): "--allowed-languages", ("language", "task"): "--task",
    ("language", "also_translate"): "--also-translate",
    ("language", "forced_subtitles"): "--forced",
    ("language", "each_audio_language"): "--each-audio-language",
    ("cues", "max_line_chars"): "--max-line-chars", ("cues", "max_lines"): "--max-lines",
    ("cues", "min_duration_seconds"): "--min-duration",
    ("cues", "max_duration_seconds"): "--max-duration",
    ("cues", "min_gap_seconds"): "--min-gap", ("cues", "max_chars_per_second"): "--max-cps",
    ("output", "template"): "--template", ("output", "overwrite"): "--force",
    ("output", "formats"): "--formats", ("quality", "gate"): "--quality-gate",
    ("preferred_audio_languages",): "--audio-language", ("hotwords",): "--hotwords",
}


def _option(loc: tuple[int | str, ...]) -> str:
    keys = tuple(part for part in loc if isinstance(part, str))
    return _OPTIONS.get(keys, ".".join(keys))


def settings_from_args(args: argparse.Namespace) -> TranscribeSettings:
    """The options, through the schema the configuration file goes through."""
    from subtitled.config_file import transcribe_settings

    sections = {
        "model": {"name": args.model, "engine": args.engine, "device": args.device,
                  "model_dir": args.model_dir, "offline": args.offline,
                  "beam_size": args.beam_size, "batch_size": args.batch_size,
                  "compute_type": args.compute_type},
        "language": {"language": args.language, "mode": args.language_mode,
                     "allowed": args.allowed_languages, "task": args.task,
                     "also_translate": args.also_translate,
                     "forced_subtitles": args.forced,
                     "each_audio_language": args.each_audio_language},
        "cues": {"max_line_chars": args.max_line_chars, "max_lines": args.max_lines,
                 "min_duration_seconds": args.min_duration,
                 "max_duration_seconds": args.max_duration,
                 "min_gap_seconds": args.min_gap, "max_chars_per_second": args.max_cps},
        "output": {"template": args.template, "overwrite": args.force,
                   "formats": args.formats},
        # Asked for by name: only a subtitle already beside the file stops us.
        "skip": {"embedded_text_subtitles": False, "marker_file": ""},
        "preferred_audio_languages": args.audio_language,
        "hotwords": args.hotwords,
        "quality": {"gate": args.quality_gate},
    }
    return transcribe_settings(sections, _option)


# syslog(3) priorities, which journald reads from a `<N>` at the start of a line: debug 7,
# info 6, warning 4, error 3, critical 2.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))


class OneLinePaths(logging.Formatter):
    """File names in log records as `shown` prints them: a newline in a name must not
    split a record, nor a non-UTF-8 byte break the stream. Under journald each line starts
    with the record's priority, so that `journalctl -p warning` finds the warnings."""

    def __init__(self, fmt: str, priorities: bool = False) -> None:
        super().__init__(fmt)
        self.priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        if isinstance(record.args, tuple) and any(isinstance(a, Path) for a in record.args):
            record.args = tuple(shown(a) if isinstance(a, Path) else a for a in record.args)
        text = super().format(record)
        if not self.priorities:
            return text
        priority = next((p for level, p in _PRIORITIES if record.levelno >= level), 7)
        prefix = f"<{priority}>"
        return "\n".join(prefix + line for line in text.split("\n"))


def journal_stream(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether stderr is the stream systemd connected to the journal (`JOURNAL_STREAM` names
    its device and inode; a redirected stderr keeps the variable but not the stream)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(sys.stderr.fileno())
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (ValueError, OSError):
        return False


def configure_logging(verbosity: int, base: int = logging.WARNING) -> None:
    """Our own loggers at the asked level; other libraries only warn (numba and watchdog
    are very chatty at DEBUG)."""
    level = max(logging.DEBUG, base - 10 * verbosity)
    # journald stamps each line itself; a terminal user wants the time.
    under_journal = journal_stream()
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journal else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLinePaths(fmt, priorities=under_journal))
    logging.basicConfig(level=max(level, logging.WARNING), handlers=[handler])
    logging.getLogger("subtitled").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    status = _run(argv)
    # Looked up, not imported: the pipeline is not loaded for --help or check-config.
    engine_calls = sys.modules.get("subtitled.pipeline.engine_calls")
    if status == EngineStuck.exit_code or \
            (engine_calls is not None and engine_calls.abandoned()):
        # An engine call given up on for a stop is still computing in C++ on its thread;
        # the interpreter's shutdown would wait on it, or crash under it. Everything of
        # ours is closed: end the process here. So too with a GPU in a sticky error state,
        # whose libraries' destructors could abort the process under its exit status.
        logger.info("leaving the engine as it is")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _run(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    args.verbose += args.verbose_after
    if args.command in ("transcribe", "run"):
        # Before any thread: one that allocates before the policy (the daemon's HTTP
        # server, its media-server refresher) gets a heap of its own, which the engine's
        # threads may then be given, and the encoder's page faults come back (17 % more
        # CPU for a whole job; BENCHMARKS.md).
        from subtitled import allocator

        allocator.keep_freed_memory()
    try:
        if args.command == "transcribe":
            from subtitled.commands import transcribe

            configure_logging(args.verbose)
            return transcribe(settings_from_args(args), args.paths)
        from subtitled import commands, config_file

        path = config_path(args.config)
        settings = config_file.load(path)
        if args.command == "check-config":
            print(f"{path}: ok")
            return 0
        if args.command == "run":
            from subtitled.service.daemon import Daemon

            configure_logging(args.verbose, getattr(logging, settings.log_level.upper()))
            return Daemon(path, settings).run()
        configure_logging(args.verbose)
        if args.command == "status":
            return commands.status(settings)
        if args.command == "migrate-db":
            return commands.migrate_db(settings, args.to)
        if args.command in ("pause", "resume"):
            return commands.pause(settings, held=args.command == "pause")
        if args.command == "retry":
            if args.force and args.failed:
                raise ConfigError("--force redoes one file: give its PATH, not --failed",
                                  stage="options")
            return commands.retry(settings, None if args.failed else args.path, args.force)
        if args.command == "doctor":
            from subtitled.doctor import report, run_checks

            checks = run_checks(settings)
            print(report(checks))
            return 1 if any(c.verdict == "fail" for c in checks) else 0
    except SubtitledError as err:
        print(f"subtitled: error: {err.one_line()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("subtitled: interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")
