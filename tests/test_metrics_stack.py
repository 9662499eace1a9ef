"""`clipforge up --metrics`: Debian's Prometheus and Pushgateway plus `clipforge metrics`,
with the shipped configuration; a paid call's cost reaches Prometheus."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from clipforge import metrics
from clipforge.config import Settings
from clipforge.cost import JobBudget
from clipforge.supervise import monitoring as metrics_stack

pytestmark = pytest.mark.slow


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as r:  # loopback
        return json.loads(r.read())["data"]["result"]


def wait_for(fn, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError("timed out")


def test_stack_scrapes_the_worker_and_the_pushed_cost(service_urls, clipforge_home,
                                                      job_store) -> None:
    settings = Settings(home=clipforge_home, database_url=service_urls.database_url,
                        redis_url=service_urls.redis_url)
    urls = metrics_stack.start(settings)
    try:
        assert metrics_stack.start(settings) == urls  # reused, not started twice
        prom = urls["prometheus_url"]

        def targets_up() -> bool:
            up = query(prom, "up")
            return len(up) == 2 and all(r["value"][1] == "1" for r in up)

        wait_for(targets_up)
        job_id = job_store.create_job(job_key="stack", prompt="p", source="/x.mp4",
                                      parameters={})
        JobBudget(job_id, None, record=job_store.add_cost).charge(
            "openai_compatible", "stack-model", 1000, 100, 0.42)
        metrics.push(urls["pushgateway_url"], grouping={"deployment": "stack-test"})
        series = wait_for(lambda: query(
            prom, 'clipforge_paid_call_cost_usd_total{model="stack-model"}'))
        assert float(series[0]["value"][1]) == pytest.approx(0.42)
        assert job_store.get_job(job_id)["cost_usd"] == pytest.approx(0.42)
        assert wait_for(lambda: query(prom, "clipforge_queue_length"))
    finally:
        stopped = metrics_stack.stop(settings)
    assert set(stopped) == {"prometheus", "metrics", "pushgateway"}
    assert metrics_stack.stop(settings) == []
