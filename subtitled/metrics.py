"""Prometheus metrics: the registry and its exposition (served at /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from subtitled.eta import Backlog
from subtitled.service.breaker import Pause
from subtitled.store.model import HostClaims


class _QueueCollector(Collector):
    """Queue depth by state, and in a shared store the hosts holding claims, read from the
    job store when scraped."""

    def __init__(self, counts: Callable[[], Mapping[str, int]],
                 hosts: Callable[[], Sequence[HostClaims]]) -> None:
        self.counts, self.hosts = counts, hosts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("subtitled_jobs", "Files in the job store by state",
                                   labels=["state"])
        for state, count in self.counts().items():
            family.add_metric([state], count)
        yield family
        held = self.hosts()
        running = GaugeMetricFamily("subtitled_host_running_jobs", "Files each host holds "
                                    "a lease on (a shared store)", labels=["host"])
        renewed = GaugeMetricFamily("subtitled_host_lease_renewed_seconds_ago", "Seconds "
                                    "since each host last renewed a lease", labels=["host"])
        expires = GaugeMetricFamily("subtitled_host_lease_expires_in_seconds", "Seconds "
                                    "until the first of each host's leases expires "
                                    "(negative: expired, another host will take the file)",
                                    labels=["host"])
        for host in held:
            running.add_metric([host.host], host.running)
            renewed.add_metric([host.host], host.renewed_ago)
            expires.add_metric([host.host], host.expires_in)
        yield from (running, renewed, expires)


class _BacklogCollector(Collector):
    """The backlog's audio and its ETA (subtitled.eta), read from the job store when
    scraped; absent while they cannot be estimated."""

    def __init__(self, backlog: Callable[[], Backlog | None]) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        found = self.backlog()
        audio = found.audio_seconds if found else None
        eta = found.eta_seconds if found else None
        if audio is not None:
            yield GaugeMetricFamily("subtitled_backlog_audio_seconds", "Audio left to "
                                    "transcribe: the queued files (those not probed yet at "
                                    "the mean length of those probed) and the running ones",
                                    value=audio)
        if eta is not None:
            yield GaugeMetricFamily("subtitled_eta_seconds", "Seconds until the backlog is "
                                    "done, at the realtime factor of the files finished last",
                                    value=eta)


class _PauseCollector(Collector):
    """The daemon's pauses (see service.breaker), read when scraped."""

    def __init__(self, pauses: Callable[[], Sequence[Pause]],
                 admin_paused: Callable[[], bool]) -> None:
        self.pauses, self.admin_paused = pauses, admin_paused

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("subtitled_paused_by_admin", "1 while `subtitled pause` holds "
                                "the queue", value=int(self.admin_paused()))
        held = self.pauses()
        yield GaugeMetricFamily("subtitled_pauses", "Pauses in force: work held back because "
                                "the environment fails (0 when all is well)", value=len(held))
        family = GaugeMetricFamily("subtitled_paused", "1 for each pause in force: its scope "
                                   "(a watched root, or all) and the kind of fault",
                                   labels=["scope", "kind"])
        for pause in held:
            family.add_metric([pause.scope, pause.kind], 1)
        yield family


class Metrics:
    def __init__(self, counts: Callable[[], Mapping[str, int]],
                 gpu_bytes: Callable[[], float | None] = lambda: None,
                 batch_size: Callable[[], float | None] = lambda: None,
                 pauses: Callable[[], Sequence[Pause]] = lambda: (),
                 admin_paused: Callable[[], bool] = lambda: False,
                 hosts: Callable[[], Sequence[HostClaims]] = lambda: (),
                 backlog: Callable[[], Backlog | None] = lambda: None,
                 flagged_files: Callable[[], int] = lambda: 0) -> None:
        self.registry = CollectorRegistry()
        self.outcomes = Counter("subtitled_outcomes", "Files finished, by outcome",
                                ["outcome"], registry=self.registry)
        self.failures = Counter("subtitled_failures", "Files given up on (failed, or dead "
                                "after their attempts), by the stage that failed and the "
                                "kind of error", ["stage", "error"], registry=self.registry)
        self.flagged = Counter("subtitled_flagged", "Subtitles judged likely bad "
                               "(subtitled.quality), by reason: no-speech, music-or-noise, "
                               "improbable, unsure-language", ["reason"], registry=self.registry)
        flagged = Gauge("subtitled_flagged_files", "Files whose last subtitle was judged "
                        "likely bad (`subtitled status` lists them with the reason)",
                        registry=self.registry)
        flagged.set_function(lambda: float(flagged_files()))
        self.quiet = Counter("subtitled_quiet_files", "Files whose dialogue sits far below "
                             "their loudest passages or little above the sound under it "
                             "(subtitled.levels)",
                             registry=self.registry)
        self.second_look_words = Counter(
            "subtitled_second_look_words", "Words the second look at quiet files found where "
            "speech detection heard no speech", registry=self.registry)
        self.audio_seconds = Counter("subtitled_audio_seconds", "Audio seconds transcribed",
                                     registry=self.registry)
        self.realtime = Histogram("subtitled_realtime_factor",
                                  "Audio seconds per wall second, per file",
                                  buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
                                  registry=self.registry)
        self.model_load_seconds = Gauge("subtitled_model_load_seconds",
                                        "Seconds the model took to load",
                                        registry=self.registry)
        self.refreshes = Counter("subtitled_media_server_refreshes",
                                 "Media-server refreshes after a written subtitle, by server "
                                 "and result (ok, or failed after every retry)",
                                 ["server", "result"], registry=self.registry)
        self.progress = Gauge("subtitled_current_file_progress_ratio",
                              "Share of the current file done (0 when idle)",
                              registry=self.registry)
        gpu = Gauge("subtitled_gpu_memory_bytes", "GPU memory held by the model and torch's "
                    "cache, as nvidia-smi counts it (openai-whisper on CUDA only)",
                    registry=self.registry)
        gpu.set_function(lambda: gpu_bytes() or 0.0)
        batch = Gauge("subtitled_batch_size", "Speech chunks decoded together; halved for "
                      "good after a batch ran out of memory", registry=self.registry)
        batch.set_function(lambda: batch_size() or 0.0)
        self.registry.register(_QueueCollector(counts, hosts))
        self.registry.register(_PauseCollector(pauses, admin_paused))
        self.registry.register(_BacklogCollector(backlog))

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
