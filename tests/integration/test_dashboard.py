"""The Grafana dashboard in contrib/: every panel's query reads metrics that a running
daemon exposes, with the labels the query and its legend use."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_harness import DaemonRun, make_video
from tests.integration.test_systemd_notify import http_get

DASHBOARD = Path(__file__).resolve().parents[2] / "contrib" / "grafana-dashboard.json"


def test_every_panel_reads_what_a_running_daemon_exposes(tmp_path: Path,
                                                         model_dir: Path) -> None:
    daemon = DaemonRun(tmp_path, model_dir, http={"enabled": True, "port": 0})
    make_video(daemon.media / "film.mkv", seconds=3.0)
    (daemon.media / "broken.mkv").write_bytes(b"not a video\n" * 100)
    daemon.start()
    try:
        daemon.wait_until(lambda: daemon.all_settled(2))
        status, scraped = http_get(daemon, "/metrics")
    finally:
        assert daemon.finish(signal.SIGTERM) == 0
    assert status == 200
    families = {family.name: family for family in text_string_to_metric_families(scraped)}
    # A sample's name → the labels it carries (counters and histograms by their series).
    labels: dict[str, set[str]] = {}
    for family in families.values():
        labels.setdefault(family.name, set())
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
            labels[family.name].update(sample.labels)
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expression, legend = target["expr"], target.get("legendFormat", "")
            names = set(re.findall(r"\bsubtitled_[a-z_]+\b", expression))
            assert names, expression
            for name in names:  # a counter with no series yet shows as its family alone
                base = re.sub(r"_(total|sum|count|bucket)$", "", name)
                assert name in labels or base in families, \
                    f"{panel['title']}: {name} is not exposed"
            used = set(re.findall(r"by \(([^)]*)\)", expression))
            wanted = {label.strip() for group in used for label in group.split(",")} | \
                set(re.findall(r"\{\{(\w+)\}\}", legend)) | \
                set(re.findall(r"(\w+)=", expression))
            offered = set().union(*(labels.get(name, set()) for name in names))
            # A labelled family with no series yet (no refresh configured) offers none.
            if offered:
                assert wanted <= offered, f"{panel['title']}: {wanted - offered} not exposed"
    # The figures the dashboard is for, from this run.
    assert 'subtitled_failures_total{error="MediaError",stage="probe"} 1.0' in scraped
    assert 'subtitled_outcomes_total{outcome="done"} 1.0' in scraped
    assert "subtitled_eta_seconds 0.0" in scraped
    assert "subtitled_model_load_seconds" in scraped
