"""Observability: the Prometheus/Grafana files under deployments/, the metrics counters
against what PostgreSQL records, the Pushgateway grouping and `clipforge metrics`.

Needs promtool and prometheus-pushgateway (Debian 12: ``apt-get install -y prometheus
prometheus-pushgateway``); a missing binary fails the test, it is never skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clipforge import metrics
from clipforge.cost import JobBudget
from clipforge.errors import BudgetExceeded, ProbeError
from clipforge.metrics import REGISTRY

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = REPO / "deployments"
CHECK = DEPLOYMENTS / "check_observability.py"
APT = "apt-get install -y prometheus prometheus-pushgateway"


def need(binary: str, package: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/bin/{binary}", f"/usr/local/bin/{binary}") if Path(p).is_file()),
        None)
    if path is None:
        pytest.fail(f"{binary} not found: install the Debian package `{package}` "
                    f"(make test should: {APT})")
    return path


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited with {proc.returncode} before serving {url}")
        try:
            http_get(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer within {timeout:g}s")
            time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
         timeout: float = 15.0) -> int:
    """Stop a process this test started; returns its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return int(proc.returncode)


# --------------------------------------------------------------------------- files


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    need("promtool", "prometheus")
    return subprocess.run([sys.executable, str(CHECK), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)


def test_check_observability_passes() -> None:
    proc = run_check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check_observability: OK" in proc.stdout


def test_check_observability_reports_broken_files(tmp_path: Path) -> None:
    """The checker fails, naming each problem, on a copy with typical mistakes."""
    shutil.copytree(DEPLOYMENTS / "prometheus", tmp_path / "prometheus")
    shutil.copytree(DEPLOYMENTS / "grafana", tmp_path / "grafana")
    path = tmp_path / "grafana" / "pipeline.json"
    dash = json.loads(path.read_text())
    dash["panels"][0]["targets"][0]["expr"] = "max(clipforge_queue_lenght)"  # typo
    dash["panels"][1]["targets"][0]["expr"] = "sum(rate(clipforge_jobs_finished_total[5m])"
    del dash["panels"][2]["title"]
    path.write_text(json.dumps(dash))
    alerts = tmp_path / "prometheus" / "alerts.yml"
    alerts.write_text(alerts.read_text().replace(
        "clipforge_budget_stops_total", "clipforge_budget_stop_total"))

    proc = run_check("--dir", str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "'clipforge_queue_lenght' is not in clipforge.metrics.REGISTRY" in out
    assert "'clipforge_budget_stop_total' is not in clipforge.metrics.REGISTRY" in out
    assert "dashboard PromQL" in out and "parse" in out  # the unbalanced expression
    assert "missing title" in out
    assert "alerts_test.yml" in out  # promtool test rules: the budget alert no longer fires


# --------------------------------------------------------------------------- counters vs SQL


def test_counters_agree_with_postgres(job_store) -> None:
    """Cost and finished-job counters move exactly as the video_job rows do."""
    model = f"gpt-obs-{uuid.uuid4().hex[:8]}"
    provider = "openai_compatible"
    statuses = [("succeeded", "none"), ("failed", ProbeError.code),
                ("budget_exceeded", BudgetExceeded.code)]
    before = {
        "cost": value("clipforge_paid_call_cost_usd_total", provider=provider, model=model),
        "stops": value("clipforge_budget_stops_total"),
        "ratio_count": value("clipforge_processing_time_vs_source_duration_count"),
        "ratio_sum": value("clipforge_processing_time_vs_source_duration_sum"),
        **{s: value("clipforge_jobs_finished_total", status=s, error_code=c)
           for s, c in statuses},
    }

    def new_job() -> int:
        return job_store.create_job(job_key=f"obs-{uuid.uuid4().hex}", prompt="p",
                                    source="/dev/null", parameters={})

    def finish(job_id: int, status: str, code: str | None, proc_s: float | None,
               src_s: float | None) -> None:
        job_store.finish_job(job_id, status=status, error_code=code,
                             processing_seconds=proc_s, source_duration=src_s)
        metrics.job_finished(status, code, proc_s, src_s)

    ids = []
    # 1: succeeded after two calls
    ids.append(new_job())
    budget = JobBudget(ids[-1], 1.0, record=job_store.add_cost)
    budget.charge(provider, model, 1200, 300, 0.012345)
    budget.charge(provider, model, 800, 100, 0.004)
    finish(ids[-1], "succeeded", None, 30.0, 120.0)
    # 2: failed after one call (no source duration: no ratio observed)
    ids.append(new_job())
    JobBudget(ids[-1], None, record=job_store.add_cost).charge(provider, model, 10, 5, 0.0015)
    finish(ids[-1], "failed", ProbeError.code, 2.0, None)
    # 3: over budget: the second call is charged and recorded, then stopped
    ids.append(new_job())
    budget = JobBudget(ids[-1], 0.03, record=job_store.add_cost)
    budget.charge(provider, model, 2000, 500, 0.02)
    with pytest.raises(BudgetExceeded):
        budget.charge(provider, model, 2000, 500, 0.02)
    finish(ids[-1], "budget_exceeded", BudgetExceeded.code, 45.0, 90.0)
    # 4: succeeded without paid calls
    ids.append(new_job())
    finish(ids[-1], "succeeded", None, 12.0, 60.0)

    def sql(conn):
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(cost_usd), 0)::float8 FROM video_job"
                        " WHERE id = ANY(%s)", (ids,))
            cost = cur.fetchone()[0]
            cur.execute("SELECT status, coalesce(error_code, 'none'), count(*) FROM video_job"
                        " WHERE id = ANY(%s) GROUP BY 1, 2", (ids,))
            counts = {(s, c): n for s, c, n in cur.fetchall()}
            cur.execute("SELECT count(*), coalesce(sum(processing_seconds / source_duration),"
                        " 0) FROM video_job WHERE id = ANY(%s) AND source_duration > 0"
                        " AND processing_seconds >= 0", (ids,))
            ratio_count, ratio_sum = cur.fetchone()
        return cost, counts, ratio_count, ratio_sum

    cost, counts, ratio_count, ratio_sum = job_store.pool.run(sql)

    assert cost == pytest.approx(0.012345 + 0.004 + 0.0015 + 0.04, abs=1e-9)
    cost_delta = value("clipforge_paid_call_cost_usd_total", provider=provider,
                       model=model) - before["cost"]
    assert cost_delta == pytest.approx(cost, abs=1e-6)  # numeric(14, 6) in the table
    assert counts == {("succeeded", "none"): 2, ("failed", ProbeError.code): 1,
                      ("budget_exceeded", BudgetExceeded.code): 1}
    for status, code in statuses:
        delta = value("clipforge_jobs_finished_total", status=status,
                      error_code=code) - before[status]
        assert delta == counts[(status, code)], (status, code)
    assert value("clipforge_budget_stops_total") - before["stops"] == counts[
        ("budget_exceeded", BudgetExceeded.code)]
    assert value("clipforge_processing_time_vs_source_duration_count") - before[
        "ratio_count"] == ratio_count == 3
    assert value("clipforge_processing_time_vs_source_duration_sum") - before[
        "ratio_sum"] == pytest.approx(ratio_sum)


# --------------------------------------------------------------------------- pushgateway


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    binary = need("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default, shared by
    # every instance: give each test its own file so no state leaks between runs.
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}",
                             f"--persistence.file={tmp_path / 'pushgateway.data'}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", proc)
        yield url
    finally:
        stop(proc)
        log.close()


PUSH_RUN = """
import sys
from clipforge import metrics
from clipforge.cost import JobBudget
n = int(sys.argv[2])
for _ in range(n):
    metrics.job_finished("succeeded", None, 10.0, 100.0)
JobBudget(1, None).charge("openai_compatible", "gpt-obs", 100, 10, 0.01 * n)
metrics.push(sys.argv[1], grouping={"deployment": "clip-video"})
"""


def test_pushes_from_two_runs_make_one_group(pushgateway: str) -> None:
    """Two flow runs (separate processes) of one deployment share one Pushgateway group,
    and the group's counters hold the sum of both runs (push reads, adds, pushes)."""
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", PUSH_RUN, pushgateway, str(n)], cwd=REPO,
                       check=True, timeout=60)
    data = json.loads(http_get(f"{pushgateway}/api/v1/metrics"))
    assert data["status"] == "success"
    groups = [g["labels"] for g in data["data"]]
    assert groups == [{"deployment": "clip-video", "job": "clipforge"}], groups

    text = http_get(f"{pushgateway}/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    group = (("deployment", "clip-video"), ("instance", ""), ("job", "clipforge"))
    assert samples[("clipforge_jobs_finished_total",
                    tuple(sorted(group + (("error_code", "none"), ("status", "succeeded")))))
                   ] == 2 + 3
    assert samples[("clipforge_paid_call_cost_usd_total", tuple(sorted(
        group + (("model", "gpt-obs"), ("provider", "openai_compatible")))))] == \
        pytest.approx(0.02 + 0.03)


# --------------------------------------------------------------------------- clipforge metrics


def test_register_adds_the_metrics_command() -> None:
    from clipforge_cli import metrics as cli_metrics

    parser = argparse.ArgumentParser()
    cli_metrics.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["metrics"])
    assert (args.port, args.addr, args.interval) == (9464, "127.0.0.1", 15.0)
    assert args.func is cli_metrics.cmd_metrics
    args = parser.parse_args(["metrics", "--port", "9999", "--addr", "127.0.0.2"])
    assert (args.port, args.addr) == (9999, "127.0.0.2")


def metrics_env(clipforge_home: Path, database_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CLIPFORGE_HOME=str(clipforge_home), CLIPFORGE_DATABASE_URL=database_url,
               CLIPFORGE_REDIS_URL=redis_url, PYTHONUNBUFFERED="1")
    return env


def scrape(url: str) -> dict[str, float]:
    return {s.name: s.value for fam in text_string_to_metric_families(http_get(url))
            for s in fam.samples if not s.labels}


def delete_jobs(job_store, ids: list[int]) -> None:
    """Remove the queued jobs a test added, so no later claim_next picks them up."""
    def work(conn):
        with conn.cursor() as cur:
            cur.execute("DELETE FROM video_job WHERE id = ANY(%s)", (ids,))

    job_store.pool.run(work)


def test_metrics_command_serves_the_queue_length(job_store, service_urls, clipforge_home,
                                                 tmp_path: Path) -> None:
    def add() -> int:
        return job_store.create_job(job_key=f"obs-q-{uuid.uuid4().hex}", prompt="p",
                                    source="/dev/null", parameters={}, status="queued")

    ids = [add(), add()]
    port = free_port()
    log = tmp_path / "metrics.log"
    try:
        expected = job_store.queue_length()
        assert expected >= 2
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "clipforge_cli.metrics", "--port", str(port),
                 "--interval", "0.5"],
                cwd=REPO, env=metrics_env(clipforge_home, service_urls.database_url,
                                          service_urls.redis_url),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                wait_http(url, proc)
                deadline = time.monotonic() + 30
                while (got := scrape(url)).get("clipforge_queue_length") != expected:
                    assert time.monotonic() < deadline, (got, log.read_text())
                    time.sleep(0.2)
                assert got["clipforge_oldest_queued_job_timestamp_seconds"] > 0
                assert "clipforge_last_job_finished_timestamp_seconds" in got
                ids.append(add())  # the gauge follows the table
                deadline = time.monotonic() + 30
                while scrape(url).get("clipforge_queue_length") != expected + 1:
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.2)
            finally:
                rc = stop(proc, signal.SIGTERM)
    finally:
        delete_jobs(job_store, ids)
    assert rc == 0, log.read_text()
    assert "clipforge metrics: stopped" in log.read_text()
    with socket.socket() as s:  # nothing listens any more (TIME_WAIT leftovers are fine)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_metrics_command_keeps_serving_without_postgres(clipforge_home, tmp_path: Path) -> None:
    """An unreachable database is reported on stderr; /metrics stays up; SIGINT stops it."""
    port, dead = free_port(), free_port()
    log = tmp_path / "metrics.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clipforge_cli.metrics", "--port", str(port),
             "--interval", "0.5"],
            cwd=REPO, env=metrics_env(clipforge_home, f"postgresql://x@127.0.0.1:{dead}/x",
                                      f"redis://127.0.0.1:{dead}/0"),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            wait_http(url, proc)
            deadline = time.monotonic() + 30
            while "cannot refresh the queue gauges" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert "clipforge_queue_length" in scrape(url)
            assert proc.poll() is None
        finally:
            rc = stop(proc, signal.SIGINT)
    assert rc == 0, log.read_text()
    assert log.read_text().count("cannot refresh the queue gauges") == 1  # reported once


# --------------------------------------------------------------------------- end to end


def prometheus_query(base: str, expr: str) -> list[dict]:
    data = json.loads(http_get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
    assert data["status"] == "success", (expr, data)
    return list(data["data"]["result"])


def test_prometheus_scrapes_worker_and_pushgateway(pushgateway: str, job_store, service_urls,
                                                   clipforge_home, tmp_path: Path) -> None:
    """The shipped prometheus.yml + alerts.yml in a real Prometheus (ports and intervals
    rewritten for the test): both targets are up, pushed series keep job="clipforge" and
    their deployment (honor_labels), the worker's queue gauge has job="clipforge-worker"
    (as the alert selects it), every rule evaluates without error and every dashboard
    expression is a valid query."""
    import yaml

    prometheus = need("prometheus", "prometheus")
    cfg = yaml.safe_load((DEPLOYMENTS / "prometheus" / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    worker_port, prom_port = free_port(), free_port()
    push_target = pushgateway.removeprefix("http://")
    for job in cfg["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [{"127.0.0.1:9464": f"127.0.0.1:{worker_port}",
                              "127.0.0.1:9091": push_target}[t] for t in sc["targets"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    shutil.copy(DEPLOYMENTS / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")

    subprocess.run([sys.executable, "-c", PUSH_RUN, pushgateway, "1"], cwd=REPO, check=True,
                   timeout=60)
    logs = [(tmp_path / "worker.log").open("wb"), (tmp_path / "prometheus.log").open("wb")]
    procs = []
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "clipforge_cli.metrics", "--port", str(worker_port),
             "--interval", "0.5"],
            cwd=REPO, env=metrics_env(clipforge_home, service_urls.database_url,
                                      service_urls.redis_url),
            stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True))
        procs.append(subprocess.Popen(
            [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{prom_port}"
        wait_http(f"{base}/-/ready", procs[1])

        deadline = time.monotonic() + 60
        while True:
            targets = json.loads(http_get(f"{base}/api/v1/targets"))["data"]["activeTargets"]
            health = {t["labels"]["job"]: t["health"] for t in targets}
            rules = [r for g in json.loads(http_get(f"{base}/api/v1/rules"))["data"]["groups"]
                     for r in g["rules"]]
            queue = prometheus_query(base, 'clipforge_queue_length{job="clipforge-worker"}')
            pushed = prometheus_query(base, "clipforge_jobs_finished_total")
            if (health == {"clipforge-worker": "up", "pushgateway": "up"} and queue and pushed
                    and rules and all(r["health"] == "ok" for r in rules)):
                break
            assert time.monotonic() < deadline, (health, rules, queue, pushed)
            time.sleep(0.5)
        assert float(queue[0]["value"][1]) == job_store.queue_length()
        assert {(s["metric"]["job"], s["metric"].get("deployment")) for s in pushed} == {
            ("clipforge", "clip-video")}
        assert len(rules) == 7

        for path in sorted((DEPLOYMENTS / "grafana").glob("*.json")):
            for panel in json.loads(path.read_text())["panels"]:
                for target in panel.get("targets", []):
                    if "expr" in target:
                        prometheus_query(base, target["expr"])
    finally:
        for proc in reversed(procs):
            stop(proc)
        for log in logs:
            log.close()


def test_metrics_command_reports_a_taken_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "clipforge_cli.metrics", "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot serve /metrics on 127.0.0.1:{port}" in proc.stderr
    assert "--port" in proc.stderr
