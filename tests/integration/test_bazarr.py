"""Bazarr's Whisper provider against the real daemon on a real socket: each request as
Bazarr's `whisperai` provider sends it (../shared/integrations.md): ffmpeg's raw PCM with
its arguments, the multipart part `audio_file` with no content type, its query."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import srt

from subtitled.evaluation import word_error_rate
from subtitled.service import control
from subtitled.web.app import IDLE_CLIENT_SECONDS
from tests.integration.conftest import DATA, ffmpeg, picture
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.test_systemd_notify import NotifySocket
from tests.integration.test_webhooks import base_url

BOUNDARY = "bazarr-boundary"


def bazarr_pcm(media: Path) -> bytes:
    """The audio as Bazarr's provider extracts it (whisperai.py: encode_audio_stream)."""
    return subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(media), "-f", "s16le",
                           "-acodec", "pcm_s16le", "-ac", "1", "-ar", "16000", "-af",
                           "aresample=async=1", "-"], capture_output=True, check=True).stdout


def form(audio: bytes) -> bytes:
    """requests' multipart body for files={'audio_file': out}: no part Content-Type."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"audio_file\"; "
            f"filename=\"audio_file\"\r\n\r\n")
    return head.encode() + audio + f"\r\n--{BOUNDARY}--\r\n".encode()


def ask(daemon: DaemonRun, endpoint: str, query: str, body: bytes | Iterator[bytes],
        length: int | None = None, timeout: float = 600) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{base_url(daemon)}{endpoint.lstrip('/')}?{query}", data=body, method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                 "User-Agent": "Subliminal/2.1.0",
                 **({"Content-Length": str(length)} if length is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def long_film(path: Path, seconds: float) -> Path:
    """A film of `seconds` of speech (one speech looped), for a request to wait behind."""
    ffmpeg(*picture(seconds), "-stream_loop", "-1", "-i", str(DATA / "en_jfk_inaugural.flac"),
           "-map", "0:v", "-map", "1:a", "-t", str(seconds), "-c:v", "libx264", "-preset",
           "ultrafast", "-c:a", "aac", str(path))
    return path


def cue_text(subtitle: str) -> str:
    return " ".join(cue.content.replace("\n", " ") for cue in srt.parse(subtitle))


def test_asr_answers_bazarr_with_the_subtitle_transcribe_writes(
        tmp_path: Path, model_dir: Path) -> None:
    film = make_video(tmp_path / "Film.mkv", 8.0)
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    daemon.start()
    try:
        daemon.wait_ready()
        with urllib.request.urlopen(base_url(daemon) + "status", timeout=10) as reply:
            assert json.loads(reply.read())["version"].startswith("subtitled ")
        code, body = ask(daemon, "/asr", "task=transcribe&language=en&output=srt&encode=false"
                         "&video_file=%2Ftv%2FFilm.mkv", form(bazarr_pcm(film)))
        assert code == 200, body
        answered = cue_text(body.decode())
        assert list(srt.parse(body.decode()))  # Bazarr's is_valid: it parses
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    one_shot = subprocess.run(
        [sys.executable, "-m", "subtitled", "transcribe", str(film), "--model", "tiny.en",
         "--model-dir", str(model_dir), "--offline", "--language", "en"],
        capture_output=True, text=True, timeout=600)
    assert one_shot.returncode == 0, one_shot.stderr
    written = cue_text(film.with_suffix(".en.srt").read_text())
    assert word_error_rate(written, answered) <= 0.05, (written, answered)
    assert not list((daemon.state / "requests").glob("*"))  # the upload is gone
    assert daemon.rows() == []  # and its job with it


CORPUS_CLIPS = ["de_portal_leopard.wav", "en_jfk_inaugural.flac", "es_homenaje_cheetah.wav",
                "fr_consulat_leopard.wav", "it_vetta_cheetah.wav", "ja_kyakkan_leopard.wav",
                "pt_criancas_cheetah.wav", "ru_deepspeech_bednyaga.wav",
                "zh_zashijidejiao_sr.flac"]


def test_detect_language_names_the_language_of_a_clip_in_each_corpus_language(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0},
                       model={"name": "base"})
    daemon.start()
    try:
        daemon.wait_ready()
        heard = {}
        for clip in [*CORPUS_CLIPS, "nospeech_noise_leopard.wav"]:
            code, body = ask(daemon, "/detect-language", "encode=false",
                             form(bazarr_pcm(DATA / clip)))
            assert code == 200, (clip, body)
            heard[clip] = json.loads(body)
        # Bazarr's translate asks for English from German speech.
        code, body = ask(daemon, "/asr", "task=translate&language=de&output=srt&encode=false",
                         form(bazarr_pcm(DATA / "de_portal_leopard.wav")))
        translated = cue_text(body.decode())
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    for clip in CORPUS_CLIPS:
        assert heard[clip]["language_code"] == clip[:2], (clip, heard[clip])
        assert 0 < heard[clip]["confidence"] <= 1
    assert heard["de_portal_leopard.wav"]["detected_language"] == "german"
    assert heard["ja_kyakkan_leopard.wav"]["detected_language"] == "japanese"
    assert code == 200 and translated and "Portal" not in translated, translated
    assert {"the", "was"} & set(translated.lower().split()), translated
    assert heard["nospeech_noise_leopard.wav"] == {
        "detected_language": "undetermined", "language_code": "und", "confidence": 0.0}


def test_requests_wait_behind_the_film_in_hand_share_one_job_and_come_before_the_rest(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    films = [long_film(daemon.media / f"Film {n}.mkv", 120.0) for n in (1, 2)]
    pcm = form(bazarr_pcm(DATA / "en_librispeech_quilter_leopard.wav"))
    daemon.start()
    try:
        daemon.wait_until(lambda: any(r["state"] == "running" for r in daemon.rows()))
        answers: list[tuple[int, bytes]] = []
        asking = [threading.Thread(target=lambda: answers.append(ask(
            daemon, "/asr", "task=transcribe&language=en&output=srt&encode=false", pcm)))
            for _ in range(2)]
        for thread in asking:
            thread.start()
        for thread in asking:
            thread.join(timeout=600)
        assert [code for code, _ in answers] == [200, 200] and answers[0][1] == answers[1][1]
        assert "quilter" in answers[0][1].decode().lower()
        daemon.wait_until(lambda: daemon.all_settled(2))
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    log = daemon.logs[-1]
    # One job for both, done between the film in hand and the next one.
    outcomes = [line for line in log.splitlines() if "realtime)" in line]
    assert len(outcomes) == 3, outcomes
    assert "/requests/" in outcomes[1], outcomes
    assert all(f.with_suffix(".en.srt").exists() for f in films)


def test_a_stop_answers_a_waiting_request_503_and_keeps_the_library_job(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    film = long_film(daemon.media / "Film.mkv", 180.0)  # long enough to stop in
    daemon.start()
    try:
        daemon.wait_until(lambda: any(r["state"] == "running" for r in daemon.rows()))
        answers: list[tuple[int, bytes]] = []
        asking = threading.Thread(target=lambda: answers.append(ask(
            daemon, "/asr", "task=transcribe&output=srt&encode=false",
            form(bazarr_pcm(DATA / "en_jfk_inaugural.flac")))))
        asking.start()
        daemon.wait_until(lambda: "/asr: queued (" in daemon.log_file.read_text())
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    asking.join(timeout=60)
    assert answers == [(503, b"")]
    (row,) = daemon.rows()  # the request's job is not kept as library work
    assert row["path"] == str(film)
    # The film was given up for the stop and waits for the next start, or ended first.
    assert row["state"] == "queued" or film.with_suffix(".en.srt").exists(), row


KEY = "0123456789abcdef0123"


def test_what_bazarr_should_not_send_gets_a_4xx_and_one_line(
        tmp_path: Path, model_dir: Path, notify_socket: NotifySocket) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY)
    daemon = DaemonRun(tmp_path, model_dir, http={
        "enabled": True, "port": 0, "trusted_networks": ["192.0.2.0/24"],
        "api_key_file": str(key_file)})
    pcm = bazarr_pcm(DATA / "en_librispeech_quilter_leopard.wav")
    raw = "encode=false&apikey=" + KEY
    cases = [
        ("/asr", raw, form(pcm).replace(b'name="audio_file"', b'name="audio"'), None,
         (400, "no 'audio_file' part in the form")),
        ("/asr", raw, form(b""), None, (400, "the 'audio_file' part is empty")),
        ("/asr", raw, b"--" + BOUNDARY.encode() + b"\r\nno headers, no end", None,
         (400, "a malformed multipart body")),
        ("/asr", raw, form(pcm[:-1]), None, (400, "raw 16-bit PCM comes in pairs of bytes")),
        ("/asr", raw, b"x", 10 * 1024**3, (413, "a body of 10737418240 bytes")),
        ("/asr", raw + "&task=summarize", form(pcm), None, (400, "task='summarize'")),
        ("/asr", raw + "&language=xx", form(pcm), None, (400, "language='xx' is not")),
        ("/asr", raw + "&output=vtt", form(pcm), None, (400, "output='vtt'")),
        ("/asr", raw + "&language=de", form(pcm), None,
         (400, "knows only English, not de")),
        ("/asr", raw + "&task=translate", form(pcm), None, (400, "it cannot translate")),
        ("/asr", "encode=maybe&apikey=" + KEY, form(pcm), None, (400, "encode='maybe'")),
        ("/detect-language", "encode=false", form(pcm), None,
         (401, "an API key is needed")),
        ("/asr", "encode=false&apikey=" + "x" * 20, form(pcm), None, (403, "wrong API key")),
    ]
    watchdog_seconds = 4.0
    daemon.start({"NOTIFY_SOCKET": str(notify_socket.path),
                  "WATCHDOG_USEC": str(int(watchdog_seconds * 1e6))}, own_watchdog_pid=True)
    try:
        daemon.wait_ready()
        ready = notify_socket.wait_for("READY=1")
        for endpoint, query, body, length, (want_code, want_text) in cases:
            code, answer = ask(daemon, endpoint, query, body, length, timeout=60)
            text = answer.decode()
            assert code == want_code and want_text in text, (endpoint, query, code, text)
            assert text.count("\n") == 1, text
        try:
            urllib.request.urlopen(base_url(daemon) + "asr", timeout=10)
        except urllib.error.HTTPError as err:
            assert err.code == 405
        assert stalled_upload(daemon).startswith("HTTP/1.1 408")
        # And a request as it should be, with the key, still works.
        code, answer = ask(daemon, "/asr", raw + "&language=en", form(pcm))
        assert code == 200 and "quilter" in answer.decode().lower()
        # The heartbeat never missed its interval, the stalled client's 30 s included.
        pings = [t for t in notify_socket.pings() if t >= ready]
        assert pings and pings[-1] > time.monotonic() - watchdog_seconds
        assert max(b - a for a, b in zip([ready, *pings], pings, strict=False)) < \
            watchdog_seconds
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert daemon.rows() == [] and not list((daemon.state / "requests").glob("*"))


def stalled_upload(daemon: DaemonRun) -> str:
    """Bazarr's upload from a client that falls silent half way."""
    url = urlsplit(base_url(daemon))
    with socket.create_connection((url.hostname, url.port), timeout=IDLE_CLIENT_SECONDS + 20) \
            as client:
        client.sendall(f"POST /asr?encode=false&apikey={KEY} HTTP/1.1\r\nHost: x\r\n"
                       f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                       "Content-Length: 100000\r\n\r\n".encode() + form(b"\0" * 1000)[:500])
        return client.recv(4096).decode()


def test_an_hour_of_audio_is_spooled_to_disk_not_held_in_memory(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    hour = 16_000 * 2 * 3600  # 115 MB of raw PCM
    head = form(b"").split(b"\r\n--" + BOUNDARY.encode() + b"--")[0]
    daemon.start()
    try:
        daemon.wait_ready()
        ask(daemon, "/detect-language", "encode=false", form(b"\0" * 32_000))  # warm
        idle = daemon.memory_kib("VmRSS")
        peak = [idle]
        sending = threading.Event()

        def watch() -> None:
            while sending.is_set():
                peak.append(daemon.memory_kib("VmRSS"))
                time.sleep(0.05)

        def body() -> Iterator[bytes]:
            yield head
            block = b"\0" * 1_048_576
            for offset in range(0, hour, len(block)):
                yield block[:min(len(block), hour - offset)]
            yield b"\r\n--" + BOUNDARY.encode() + b"--\r\n"

        sending.set()
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            code, answer = ask(daemon, "/detect-language", "encode=false", body(),
                               length=len(head) + hour + len(BOUNDARY) + 8)
        finally:
            sending.clear()
            watcher.join()
        assert code == 200 and json.loads(answer)["language_code"] == "und"
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert max(peak) - idle < 50 * 1024, (idle, max(peak))


def test_with_video_file_the_daemon_works_from_the_file_or_answers_with_its_subtitle(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, scan={"backfill": "none"}, http={
        "enabled": True, "port": 0, "path_map": [{"remote": "/tv", "local": str(
            tmp_path / "media")}]})
    # Two tracks: noise first (what ffmpeg's default stream gives Bazarr: a commentary),
    # then the English dialogue, tagged.
    dual = daemon.media / "Dual.mkv"
    ffmpeg(*picture(11.0), "-i", str(DATA / "nospeech_noise_leopard.wav"), "-i",
           str(DATA / "en_jfk_inaugural.flac"), "-map", "0:v", "-map", "1:a", "-map", "2:a",
           "-metadata:s:a:0", "language=fre", "-metadata:s:a:1", "language=eng", "-t", "11",
           "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(dual))
    noise = bazarr_pcm(DATA / "nospeech_noise_leopard.wav")
    daemon.start()
    try:
        daemon.wait_ready()
        code, body = ask(daemon, "/asr", "task=transcribe&language=en&output=srt&encode=false"
                         "&video_file=%2Ftv%2FDual.mkv", form(noise))
        assert code == 200 and "fellow americans" in body.decode().lower(), body
        assert not dual.with_suffix(".en.srt").exists()  # the answer is Bazarr's to write
        # A file the daemon has subtitled: the answer is that subtitle, nothing decoded.
        film = make_video(daemon.media / "Film.mkv", 6.0)
        daemon.wait_until(film.with_suffix(".en.srt").exists)
        daemon.wait_until(lambda: daemon.all_settled(1))
        code, body = ask(daemon, "/asr", "task=transcribe&language=en&output=srt&encode=false"
                         "&video_file=%2Ftv%2FFilm.mkv", form(noise))
        assert (code, body.decode()) == (200, film.with_suffix(".en.srt").read_text())
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "answered with the subtitle already written for it" in daemon.logs[-1]
    assert not list((daemon.state / "requests").iterdir())


def test_a_paused_daemon_answers_503_at_once_and_keeps_nothing(
        tmp_path: Path, model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    control.pause(daemon.state)
    daemon.start()
    try:
        daemon.wait_ready()
        code, body = ask(daemon, "/asr", "encode=false",
                         form(bazarr_pcm(DATA / "en_librispeech_quilter_leopard.wav")),
                         timeout=60)
        assert (code, body) == (503, b"")
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert "not answered: paused by" in daemon.logs[-1]
    assert daemon.rows() == [] and not list((daemon.state / "requests").iterdir())
