"""examples/grafana/fngw-dashboard.json queries only what fngw exports (issue 18): every metric
name its expressions use is a sample name of ``GatewayMetrics``, every label they select or group
by is one of that metric's labels (or Prometheus's own ``job``/``instance``, or ``le``), and every
label value it matches exactly is one fngw sets."""

from __future__ import annotations

import json
import re

from conftest import REPO

from fngw.telemetry.metrics import GatewayMetrics

DASHBOARD = REPO / "examples" / "grafana" / "fngw-dashboard.json"
SCRAPE_LABELS = {"job", "instance"}  # added by Prometheus to every series it scrapes
KNOWN_VALUES = {("state", "busy"), ("state", "idle"), ("state", "starting")}  # fngw_pool_kernels states


def exported() -> dict[str, set[str]]:
    """Each sample name fngw exports, with its labels (histograms: _bucket, _sum, _count)."""
    names: dict[str, set[str]] = {}
    for collector in set(GatewayMetrics().registry._collector_to_names):  # noqa: SLF001 - every metric, observed or not
        labels = set(getattr(collector, "_labelnames", ()))
        family = collector._name  # noqa: SLF001
        kind = collector._type  # noqa: SLF001
        if kind == "counter":
            names[f"{family}_total"] = labels
        elif kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                names[family + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
        else:
            names[family] = labels
    return names


def expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    found += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    return found


def test_every_queried_metric_and_label_is_exported():
    metrics = exported()
    assert {"fngw_requests_total", "fngw_pool_queue_depth", "fngw_kernel_api_websockets"} <= set(metrics)
    queried = set()
    for expr in expressions():
        for name, selector in re.findall(r"\b(fngw_[a-z_]+)(\{[^}]*\})?", expr):
            queried.add(name)
            assert name in metrics, f"{name} in {expr!r} is not exported by fngw"
            for label, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', selector):
                assert label in metrics[name] | SCRAPE_LABELS, f"{name} has no label {label} ({expr!r})"
                if label == "state":
                    assert (label, value) in KNOWN_VALUES, f"fngw never sets {label}={value!r}"
        grouped = {g.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for g in group.split(",")}
        used = {n for n in re.findall(r"\b(fngw_[a-z_]+)", expr)}
        for label in grouped:
            assert any(label in metrics[n] | SCRAPE_LABELS for n in used), f"no metric of {expr!r} has {label}"
    # The dashboard covers what the issue lists: requests, errors, pools, kernels, jobs, websockets.
    for wanted in (
        "fngw_requests_total",
        "fngw_request_duration_seconds_bucket",
        "fngw_pool_kernels",
        "fngw_pool_queue_depth",
        "fngw_kernel_restarts_total",
        "fngw_kernel_deaths_total",
        "fngw_jobs_total",
        "fngw_kernel_api_websockets",
    ):
        assert wanted in queried, wanted
