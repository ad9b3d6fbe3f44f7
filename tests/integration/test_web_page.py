"""The web page in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), against a real daemon transcribing real media."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import DATA, ffmpeg, picture
from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.figures import record
from tests.integration.test_daemon import run_check

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="needs Debian's chromium and chromium-driver")


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1280,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    yield driver
    driver.quit()


def page_url(daemon: DaemonRun) -> str:
    found = re.search(r"HTTP on (http://\S+/)", daemon.log_file.read_text())
    assert found, daemon.log_file.read_text()
    return found.group(1)


def wait(condition: Callable[[], Any], seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def text(browser: Any, element_id: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(browser.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def test_the_page_follows_the_work_and_its_buttons_act(
        tmp_path: Path, model_dir: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    spec = tmp_path / "failpoints"
    spec.write_text("EINVAL-at-probe:broken\n")  # the file's own fault, until cleared
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0},
                       model={"batch_size": 1})
    daemon.start({"SUBTITLED_FAILPOINTS": f"@{spec}"})
    try:
        daemon.wait_ready()
        browser.get(page_url(daemon) + "?refresh=1")
        assert "subtitled on" in browser.title
        # A file whose name is HTML is shown as its name, not as markup.
        odd = "<img src=x onerror=alert(1)> & <b>bold.mkv"  # no slash: a file name
        make_video(daemon.media / odd, seconds=4.0)
        wait(lambda: odd in text(browser, "history"))
        assert not browser.find_elements(By.CSS_SELECTOR, "#history b, #history img")
        # The running file: its phase and progress appear and change, live.
        long = tmp_path / "long.mkv"  # three minutes of speech, the corpus clip looped
        ffmpeg(*picture(180.0), "-stream_loop", "-1", "-i", str(DATA / "en_jfk_inaugural.flac"),
               "-map", "0:v", "-map", "1:a", "-t", "180", "-c:v", "libx264", "-preset",
               "ultrafast", "-c:a", "aac", str(long))
        long = long.rename(daemon.media / long.name)
        wait(lambda: "long.mkv" in text(browser, "running"))
        shares, phases = set(), set()
        while not long.with_suffix(".en.srt").exists():
            shown = text(browser, "running")
            shares |= set(re.findall(r"(\d+) %", shown))
            phases |= set(re.findall(r"probing|language|decoding|writing|starting", shown))
            time.sleep(0.2)
        assert len(shares) >= 2, shares  # the same row, changing as the file is decoded
        assert "decoding" in phases, phases
        wait(lambda: "long.mkv" in text(browser, "history"))
        # A failed file: Retry requeues it, and once its fault is gone it is done.
        make_video(daemon.media / "broken.mkv", seconds=3.0)
        wait(lambda: "broken.mkv" in text(browser, "problems"))
        assert "Invalid argument" in text(browser, "problems")
        if os.environ.get("SUBTITLED_SCREENSHOT"):  # the README's picture of the page
            browser.save_screenshot(os.environ["SUBTITLED_SCREENSHOT"])
        spec.write_text("")
        browser.find_element(By.CSS_SELECTOR, "#problems .retry").click()
        wait(lambda: "queued again: broken.mkv" in text(browser, "said"))
        wait(lambda: "broken.mkv" in text(browser, "history"))
        assert (daemon.media / "broken.en.srt").exists()
        # Pause and resume from the page hold and release the queue.
        wait(lambda: browser.find_element(By.ID, "pause-button").text == "Pause")
        browser.find_element(By.ID, "pause-button").click()
        wait(lambda: "paused by" in text(browser, "main"))
        assert run_check(daemon.config, "status").stdout.splitlines()[1].startswith("paused by")
        make_video(daemon.media / "held.mkv", seconds=3.0)
        wait(lambda: "held.mkv" in text(browser, "queue"))
        time.sleep(3)  # settled and queued, past the settle time: still held
        assert not (daemon.media / "held.en.srt").exists()
        browser.find_element(By.ID, "pause-button").click()
        wait(lambda: "held.mkv" in text(browser, "history"))
        # The subtitle opens as text.
        browser.find_element(By.CSS_SELECTOR, "#history a").click()
        assert "-->" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_a_cross_site_form_post_is_refused(tmp_path: Path, model_dir: Path) -> None:
    import urllib.error
    import urllib.request

    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    daemon.start()
    try:
        daemon.wait_ready()
        request = urllib.request.Request(page_url(daemon) + "actions/pause",
                                         data=b"token=guessed", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert "token" in refused.value.read().decode()
        assert run_check(daemon.config, "status").stdout.count("paused by") == 0
        upload = urllib.request.Request(
            page_url(daemon) + "actions/pause", method="POST",
            data=b'--x\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\n'
                 b"hello\r\n--x--\r\n",
            headers={"Content-Type": "multipart/form-data; boundary=x"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(upload, timeout=10)
        assert refused.value.code == 400
        assert refused.value.read().decode() == "Too many files. Maximum number of files is 0.\n"
    finally:
        assert daemon.finish(signal.SIGTERM) == 0


def test_the_page_loads_in_under_300_ms_with_100000_jobs(
        tmp_path: Path, model_dir: Path, browser: Any) -> None:
    import sqlite3

    from subtitled.store import Fingerprint, SqliteStore

    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    daemon.state.mkdir(parents=True)
    store = SqliteStore(daemon.state / "jobs.sqlite3")
    store.enqueue_many([(daemon.media / f"show {n // 1000}" / f"episode {n}.mkv",
                         Fingerprint(1000 + n, n, n), 0) for n in range(100_000)])
    store.close()
    with sqlite3.connect(daemon.state / "jobs.sqlite3") as db:  # a library mostly done
        db.execute("UPDATE jobs SET state = 'done', language = 'en', audio_seconds = 1300,"
                   " wall_seconds = 60, cue_count = 400, output = path || '.en.srt',"
                   " updated = updated + id WHERE id % 10 != 0")
        db.execute("UPDATE jobs SET state = 'failed', last_error = 'probe: no audio stream',"
                   " attempts = 1 WHERE id % 10 = 0 AND id % 1000 = 0")
        db.execute("UPDATE jobs SET total_seconds = 1300 WHERE state = 'queued'")
    assert run_check(daemon.config, "pause").returncode == 0  # the files do not exist
    daemon.start()
    try:
        daemon.wait_ready()
        url = page_url(daemon)
        loads = []
        for _ in range(5):
            browser.get(url)
            loads.append(browser.execute_script(
                "return performance.getEntriesByType('navigation')[0].duration"))  # to load
        assert "100000" not in text(browser, "count-done")
        assert text(browser, "count-done") == "90000"
        assert "episode" in text(browser, "history") and "episode" in text(browser, "queue")
        # Searching the history by path is a query, not a page of everything.
        browser.get(url + "?q=episode%2099998")
        assert "episode 99998.mkv" in text(browser, "history")
        assert "episode 99997.mkv" not in text(browser, "history")
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    record("web page, 100,000 jobs", f"loaded in {sorted(loads)[len(loads) // 2]:.0f} ms "
           f"(median of {len(loads)}: {', '.join(f'{t:.0f}' for t in loads)} ms)")
    assert sorted(loads)[len(loads) // 2] < 300, loads
