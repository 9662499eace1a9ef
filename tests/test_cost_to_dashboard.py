"""Issue: a run with a paid endpoint shows its cost in /metrics, in PostgreSQL and on the
dashboard's query. Two real CLI runs (fake OpenAI-protocol server on loopback), pushing to
a real Pushgateway scraped by a real Prometheus with the shipped configuration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
from conftest import REPO, cli_environment, media
from fake_llm import FakeLlm

from clipforge.config import Settings
from clipforge.supervise import monitoring as metrics_stack

pytestmark = pytest.mark.slow

COST = 0.65  # usage (1000, 100) at 0.5 / 1.5 USD per 1k tokens


def prom_query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())["data"]["result"]


def dashboard_expr(title: str) -> str:
    board = json.loads((REPO / "deployments" / "grafana" / "cost-control.json").read_text())
    return next(p["targets"][0]["expr"] for p in board["panels"] if p["title"] == title)


def test_paid_runs_cost_reaches_metrics_postgres_and_dashboard(
        service_urls, clipforge_home, tmp_path, job_store) -> None:
    settings = Settings(home=clipforge_home, database_url=service_urls.database_url,
                        redis_url=service_urls.redis_url)
    metrics_stack.stop(settings)
    shutil.rmtree(clipforge_home / "metrics", ignore_errors=True)  # no series from others
    urls = metrics_stack.start(settings)
    try:
        with FakeLlm() as fake:
            fake.default = fake.picks(
                [{"start": 0.5, "end": 10.5, "relevance": 0.9, "reason": "quote"}],
                usage=(1000, 100))
            env = cli_environment(
                service_urls, clipforge_home, tmp_path / "prefect",
                CLIPFORGE_LLM_BASE_URL=fake.base_url, CLIPFORGE_LLM_MODEL="dash-model",
                CLIPFORGE_LLM_PRICE_IN_PER_1K="0.5", CLIPFORGE_LLM_PRICE_OUT_PER_1K="1.5",
                CLIPFORGE_PUSHGATEWAY_URL=urls["pushgateway_url"])
            outs = [tmp_path / "a", tmp_path / "b"]
            for out in outs:  # two runs: two processes, each pushing its own counts
                p = subprocess.run(
                    [sys.executable, "-m", "clipforge_cli", "run",
                     str(media("speech_en_11s__whisper_jfk.flac")), "--prompt",
                     "ask not what your country can do for you", "--out", str(out),
                     "--no-render"], env=env, cwd=REPO, capture_output=True, text=True,
                    timeout=600)
                assert p.returncode == 0, p.stderr[-2000:]
        jobs = [j for j in job_store.list_jobs(limit=50)
                if j.get("output_dir") in {str(o.resolve()) for o in outs}]
        db_total = sum(j["cost_usd"] for j in jobs)
        assert len(jobs) == 2 and db_total == pytest.approx(2 * COST)

        with urllib.request.urlopen(f"{urls['pushgateway_url']}/metrics", timeout=5) as r:
            exposed = r.read().decode()
        line = next(x for x in exposed.splitlines()
                    if x.startswith("clipforge_paid_call_cost_usd_total{")
                    and 'model="dash-model"' in x)
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(2 * COST)  # accumulated

        expr = dashboard_expr("Total spend (all time, cumulative pushes)")
        deadline = time.monotonic() + 90
        value = None
        while time.monotonic() < deadline:
            result = prom_query(urls["prometheus_url"], expr)
            value = float(result[0]["value"][1]) if result else None
            if value is not None and value == pytest.approx(db_total):
                break
            time.sleep(1)
        assert value == pytest.approx(db_total)
    finally:
        metrics_stack.stop(settings)
