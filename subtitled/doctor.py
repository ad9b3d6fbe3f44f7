"""`subtitled doctor`: checks what deployments of Whisper most often get wrong, as a table of
pass/warn/fail, each failure with its fix."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from subtitled import models
from subtitled.config import DaemonSettings
from subtitled.errors import ConfigError, ModelError
from subtitled.mounts import filesystem_type, needs_polling, polled

Verdict = Literal["pass", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def _ffmpeg() -> Iterator[Check]:
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            yield Check(tool, "fail", "not found on PATH",
                        "install it (Debian/Ubuntu: apt install ffmpeg)")
            return
    decode = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                             "sine=d=0.2", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                            capture_output=True, timeout=60)
    if decode.returncode != 0 or not decode.stdout:
        yield Check("ffmpeg", "fail", "cannot decode a test tone: "
                    + decode.stderr.decode(errors="replace").strip()[-200:],
                    "reinstall ffmpeg with its standard codecs")
    else:
        yield Check("ffmpeg", "pass", f"{shutil.which('ffmpeg')} decodes audio")


def _torch(settings: DaemonSettings) -> Iterator[Check]:
    try:
        import torch  # only here: the one check that needs it
    except ImportError:
        yield Check("torch", "fail", "PyTorch is not installed",
                    "pip install torch (the build for your CUDA version, or the CPU one)")
        return
    model = settings.transcribe.model
    cuda = torch.cuda.is_available()
    yield Check("torch", "pass", f"torch {torch.__version__}, CUDA "
                f"{'available' if cuda else 'not available'}")
    if model.device == "cuda" and not cuda:
        yield Check("gpu", "fail", "device: cuda, but no usable CUDA GPU",
                    "install the NVIDIA driver and a CUDA build of torch, or set device: cpu")
    elif cuda and model.device != "cpu":
        free, total = torch.cuda.mem_get_info()
        yield Check("gpu", "pass", f"{torch.cuda.get_device_name()}: {free / 2**30:.1f} of "
                    f"{total / 2**30:.1f} GiB free")
    elif model.device == "auto":
        yield Check("gpu", "warn", "no GPU: transcription runs on the CPU, many times slower",
                    "a smaller model (base, small) keeps up better on a CPU")


def _engine(settings: DaemonSettings) -> Iterator[Check]:
    """What the `auto` settings come to on this machine, each with why, and whether the
    memory they need is there."""
    from subtitled.engines.auto import choose, model_dimensions, probe_hardware

    model = settings.transcribe.model
    try:
        choice = choose(model, probe_hardware(model), model_dimensions(model))
    except ConfigError as err:
        yield Check("engine", "fail", err.message, "fix model: in the configuration")
        return
    values = {"engine": choice.engine, "device": choice.device,
              "compute_type": choice.compute_type, "beam_size": choice.beam_size,
              "batch_size": choice.batch_size}
    for key, value in values.items():
        yield Check(f"model.{key}", "pass", f"{value}: {choice.reasons[key]}")
    needed, budget = choice.needed_bytes(), choice.budget
    if needed is None or budget is None:
        yield Check("memory", "warn", "cannot tell how much memory the model needs here",
                    "watch the first files; lower model.batch_size if memory runs out")
        return
    fits = needed <= budget.bytes
    yield Check("memory", "pass" if fits else "fail",
                f"about {needed / 2**30:.1f} GiB needed for {model.name} at batch "
                f"{choice.batch_size}; {budget.limited_by}",
                "" if fits else "choose a smaller model, or free memory (GPU: other "
                "processes; CPU: MemoryMax= in the unit)")


def _model(settings: DaemonSettings) -> Iterator[Check]:
    model = settings.transcribe.model
    try:
        source = models.resolve(replace(model, offline=True))
    except ModelError as err:
        if model.offline:
            yield Check("model", "fail", f"{model.name} is not available", err.message)
        else:
            yield Check("model", "warn", f"{model.name} is not local; it will be downloaded "
                        f"into {model.model_dir} at the first start",
                        "allow the download, or place the file there yourself")
        return
    yield Check("model", "pass", f"{model.name}: {source.path}")


def _writable(path: Path) -> bool:
    return os.access(path, os.R_OK | os.W_OK | os.X_OK)


def _folders(settings: DaemonSettings) -> Iterator[Check]:
    for root in settings.watch:
        if not root.path.is_dir():
            yield Check(f"folder {root.path}", "fail", "does not exist", "create it or fix watch")
        elif not _writable(root.path):
            yield Check(f"folder {root.path}", "fail", "not readable and writable by this user",
                        "grant the service user access (and ReadWritePaths= in the unit)")
        else:
            yield Check(f"folder {root.path}", "pass",
                        f"readable and writable; {_watched_how(root.path, settings)}")
    state = settings.state_dir
    parent = state if state.exists() else next((p for p in state.parents if p.exists()), state)
    if _writable(parent):
        yield Check("state directory", "pass", f"{state} is writable")
    else:
        yield Check("state directory", "fail", f"{state} is not writable",
                    "use StateDirectory= in the unit, or fix the folder's owner")


def _watched_how(folder: Path, settings: DaemonSettings) -> str:
    kind = filesystem_type(folder)
    if polled(kind, settings.scan.polling):
        why = " (scan.polling: on)" if settings.scan.polling == "on" else ""
        return f"{kind or 'unknown filesystem'}, its folders polled every " \
            f"{settings.scan.polling_interval_seconds:g} s{why}"
    return f"{kind or 'unknown filesystem'}, watched with inotify"


def _inotify(settings: DaemonSettings, limit_file: Path) -> Iterator[Check]:
    try:
        limit = int(limit_file.read_text())
    except (OSError, ValueError):
        return
    from subtitled.watcher import count_folders

    folders = sum(count_folders(root.path, root.recursive) for root in settings.watch
                  if root.path.is_dir() and
                  not needs_polling(root.path, settings.scan.polling))
    verdict: Verdict = "pass" if folders < 0.8 * limit else "warn"
    yield Check("inotify watches", verdict, f"{folders} folders to watch, limit {limit}",
                "" if verdict == "pass" else
                "sysctl fs.inotify.max_user_watches=1048576 (and in /etc/sysctl.d/)")


def _media_servers(settings: DaemonSettings) -> Iterator[Check]:
    # Here, not at the top: the HTTP client is needed only with servers configured.
    from subtitled.web import media_servers as servers
    from subtitled.web.access import read_token

    for server in settings.media_servers:
        name = servers.describe(server)
        try:
            servers.send(servers.identity(server, read_token(server.token_file)))
        except ConfigError as err:
            yield Check(name, "fail", err.message, "put the token in that file, alone")
        except servers.ServerError as err:
            refused = err.status in (401, 403)
            yield Check(name, "fail", f"{'the token is refused' if refused else 'no answer'}: "
                        f"{err}", f"a new API key in {server.token_file}" if refused else
                        "check url: it is the address this host reaches the server at")
        else:
            yield Check(name, "pass", "answers and takes the token")


def _systemd() -> Iterator[Check]:
    under = bool(os.environ.get("INVOCATION_ID") or os.environ.get("NOTIFY_SOCKET"))
    yield Check("systemd", "pass", "running under systemd" if under else
                "not running under systemd (fine for a test run)")


def run_checks(settings: DaemonSettings,
               limit_file: Path = Path("/proc/sys/fs/inotify/max_user_watches")) -> list[Check]:
    sources: list[Callable[[], Iterator[Check]]] = [
        _ffmpeg, lambda: _torch(settings), lambda: _model(settings), lambda: _engine(settings),
        lambda: _folders(settings), lambda: _inotify(settings, limit_file),
        lambda: _media_servers(settings), _systemd]
    return [check for source in sources for check in source()]


def report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{check.verdict.upper():4}  {check.name:{width}}  {check.detail}")
        if check.fix and check.verdict != "pass":
            lines.append(f"{'':4}  {'':{width}}  fix: {check.fix}")
    return "\n".join(lines)
