"""The HTTP path's cost: Bazarr's `/asr` for a 10-minute upload (raw PCM, extracted as
Bazarr's provider extracts it) against `subtitled transcribe` of the same audio, with the
same model and settings, one after the other in each round. Prints one Markdown table.

    .venv/bin/python -m bench.asr [--model base] [--rounds 2] [--programme FILE]

`transcribe` is timed without its model load (the daemon's model is resident); `/asr`
from the first byte sent to the last byte of the answer, upload and queue included; the
daemon's job, from its own log line, is the part of that which the worker spent.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bench import programme
from subtitled.config import default_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
BOUNDARY = "bench-boundary"


def bazarr_pcm(media: Path) -> bytes:
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(media), "-f", "s16le",
                           "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", "-af",
                           "aresample=async=1", "-"], capture_output=True, check=True).stdout


def as_wav(pcm: bytes, target: Path) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar", "16000",
                    "-ac", "1", "-i", "-", str(target)], input=pcm, check=True)
    return target


def transcribe_seconds(wav: Path, model: str, model_dir: Path) -> float:
    """The one-shot command's own time for the file, its model load taken out."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "subtitled", "-v", "transcribe", str(wav),
                           "--model", model, "--model-dir", str(model_dir), "--offline",
                           "--force"], capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    loaded = re.search(r"loaded .* in ([0-9.]+) s", done.stderr)
    return wall - (float(loaded.group(1)) if loaded else 0.0)


class Daemon:
    def __init__(self, folder: Path, model: str, model_dir: Path) -> None:
        (folder / "media").mkdir(parents=True)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump({
            "watch": [str(folder / "media")], "state_dir": str(folder / "state"),
            "model": {"name": model, "model_dir": str(model_dir), "offline": True},
            "http": {"enabled": True, "port": 0}}))
        self.log = folder / "daemon.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "subtitled", "run",
                                             "--config", str(config)], stdout=out,
                                            stderr=subprocess.STDOUT)
        while "watching " not in self.log.read_text():
            time.sleep(0.2)
        found = re.search(r"HTTP on (http://\S+/)", self.log.read_text())
        assert found
        self.url = found.group(1)

    def asr_seconds(self, pcm: bytes) -> float:
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; "
                f"filename=\"audio_file\"\r\n\r\n").encode() + pcm + \
            f"\r\n--{BOUNDARY}--\r\n".encode()
        request = urllib.request.Request(
            self.url + "asr?task=transcribe&output=srt&encode=false", data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=3600) as reply:
            assert reply.status == 200 and reply.read()
        return time.monotonic() - started

    def last_job_seconds(self) -> float:
        found = re.findall(r"s audio in ([0-9.]+) s \(", self.log.read_text())
        return float(found[-1])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--programme", type=Path, default=RESULTS / "programme-10min.mkv")
    args = parser.parse_args()
    if not args.programme.exists():
        programme.build(args.programme, minutes=10.0, seed=1)
    pcm = bazarr_pcm(args.programme)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        wav = as_wav(pcm, folder / "upload.wav")
        daemon = Daemon(folder / "daemon", args.model, default_model_dir())
        try:
            print(f"{len(pcm) / 32_000:.0f} s of audio ({len(pcm) / 1e6:.0f} MB of PCM), "
                  f"model {args.model}\n")
            print("| round | `subtitled transcribe` s | `/asr` s | of which the daemon's job s "
                  "| HTTP path s | `/asr` / `transcribe` |")
            print("|---|---|---|---|---|---|")
            for round_ in range(1, args.rounds + 1):
                one_shot = transcribe_seconds(wav, args.model, default_model_dir())
                served = daemon.asr_seconds(pcm)
                job = daemon.last_job_seconds()
                print(f"| {round_} | {one_shot:.1f} | {served:.1f} | {job:.1f} | "
                      f"{served - job:.1f} | {served / one_shot:.2f} |", flush=True)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
