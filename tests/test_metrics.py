"""The metrics module: exposition, helpers, the HTTP endpoint and Pushgateway pushes."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import prometheus_client
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from clipforge import metrics
from clipforge.cost import JobBudget
from clipforge.metrics import REGISTRY


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_exposition_has_the_cost_counter_with_provider_and_model() -> None:
    model = f"gpt-test-{uuid.uuid4().hex[:6]}"
    JobBudget(1, None).charge("openai_compatible", model, 1500, 200, 0.0125)
    text = generate_latest(REGISTRY).decode()
    assert "# TYPE clipforge_paid_call_cost_usd_total counter" in text
    assert (f'clipforge_paid_call_cost_usd_total{{model="{model}",'
            'provider="openai_compatible"} 0.0125') in text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("clipforge_paid_call_cost_usd_total",
                    (("model", model), ("provider", "openai_compatible")))] == 0.0125
    assert samples[("clipforge_paid_call_tokens_total",
                    (("direction", "in"), ("model", model),
                     ("provider", "openai_compatible")))] == 1500
    for name in ("clipforge_paid_calls_total", "clipforge_budget_stops_total",
                 "clipforge_jobs_finished_total", "clipforge_stage_duration_seconds",
                 "clipforge_processing_time_vs_source_duration", "clipforge_queue_length"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_private_registry() -> None:
    assert REGISTRY is not prometheus_client.REGISTRY
    assert b"clipforge_paid_call_cost_usd_total" not in generate_latest(
        prometheus_client.REGISTRY)


def test_helpers() -> None:
    stage = f"stage_{uuid.uuid4().hex[:6]}"
    metrics.observe_stage(stage, 42.0)
    metrics.observe_stage(stage, float("nan"))  # ignored
    assert value("clipforge_stage_duration_seconds_count", stage=stage) == 1
    assert value("clipforge_stage_duration_seconds_sum", stage=stage) == 42.0

    before = value("clipforge_processing_time_vs_source_duration_count")
    le_05 = value("clipforge_processing_time_vs_source_duration_bucket", le="0.5")
    metrics.job_finished("succeeded", None, 30.0, 120.0)  # ratio 0.25
    metrics.job_finished("budget_exceeded", "budget_exceeded", 10.0, None)  # no ratio
    metrics.job_finished("failed", "probe_failed", 1.0, 0.0)  # no ratio
    assert value("clipforge_processing_time_vs_source_duration_count") == before + 1
    assert value("clipforge_processing_time_vs_source_duration_bucket", le="0.5") == le_05 + 1
    assert value("clipforge_jobs_finished_total", status="succeeded", error_code="none") >= 1
    assert value("clipforge_jobs_finished_total", status="budget_exceeded",
                 error_code="budget_exceeded") >= 1

    metrics.set_queue_length(7)
    assert value("clipforge_queue_length") == 7
    metrics.set_queue_length(-1)
    assert value("clipforge_queue_length") == 0


def test_serve_exposes_the_registry_on_loopback() -> None:
    server, thread = metrics.serve(0)
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert "clipforge_paid_call_cost_usd_total" in body
        assert "python_gc_objects_collected_total" not in body  # not the default registry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def gateway() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"method": self.command, "path": self.path, "body": body.decode()})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_push_adds_grouped_by_deployment(gateway: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = gateway
    # this stand-in gateway only takes POSTs: no read-add (see test_observability for that)
    metrics.push(url, grouping={"deployment": "nightly-backlog"}, accumulate=False)
    metrics.push(url, accumulate=False)
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/metrics/job/clipforge/deployment/nightly-backlog"),
        ("POST", "/metrics/job/clipforge/deployment/default"),
    ]
    assert "clipforge_paid_call_cost_usd_total" in seen[0]["body"]


@pytest.mark.parametrize("grouping", [{"deployment": "d", "run_id": "123"}, {"flow_run": "x"}])
def test_push_refuses_run_ids(gateway: tuple[str, list[dict[str, Any]]],
                              grouping: dict[str, str]) -> None:
    url, seen = gateway
    with pytest.raises(ValueError, match="deployment"):
        metrics.push(url, grouping=grouping)
    assert seen == []
