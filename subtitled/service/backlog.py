"""The backlog's length, measured in the background: a thread probes the queued files whose
audio length is not known yet (ffprobe reads headers only), a random sample at a time, at
most a twentieth of one core, and notes each length in the job store for the ETA
(subtitled.eta). A file it cannot probe is left to the job's own probe to explain."""

from __future__ import annotations

import logging
import threading
import time

from subtitled.errors import SubtitledError
from subtitled.media import length_seconds
from subtitled.store import STORE_ERRORS, JobStore

logger = logging.getLogger(__name__)

_SAMPLE = 20  # files asked for at a time
_SHARE_OF_A_CORE = 0.05
_NOTHING_TO_PROBE_SECONDS = 5.0


class LengthProber:
    def __init__(self, store: JobStore, stop: threading.Event) -> None:
        self.store, self.stop = store, stop
        self.probed = 0
        self._thread = threading.Thread(target=self._run, name="backlog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                jobs = self.store.unprobed(_SAMPLE)
            except STORE_ERRORS:  # the worker reports the store's faults
                jobs = []
            if not jobs:
                self.stop.wait(_NOTHING_TO_PROBE_SECONDS)
                continue
            for job in jobs:
                started = time.monotonic()
                try:
                    seconds = length_seconds(job.path)
                    if seconds is not None:
                        self.store.set_length(job, seconds)
                        self.probed += 1
                except SubtitledError as err:
                    logger.debug("%s: length not probed: %s", job.path, err)
                except STORE_ERRORS:
                    pass  # the worker reports the store's faults
                spent = time.monotonic() - started
                if self.stop.wait(max(0.05, spent / _SHARE_OF_A_CORE - spent)):
                    return
