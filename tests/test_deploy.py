"""The production stack: `clipforge up` -> deployments run on a worker -> `clipforge down`.

- Backlog claiming (no Prefect): priority then age, and concurrent claimers never take
  the same job, on a fresh database in the session's private PostgreSQL.
- End to end (about 1.5-2 min): a private home with its own PostgreSQL/Redis, ``up``
  (Prefect server on PostgreSQL + worker), a ``clip-video`` deployment run triggered
  with the ``prefect`` CLI on real speech, two enqueued jobs drained by the
  ``nightly-backlog`` deployment, then ``down`` leaves no Prefect process behind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extensions
import pytest
from conftest import media, prefect_processes

from clipforge.config import Settings
from clipforge.jobs import enqueue, job_key
from clipforge.store import JobStore
from clipforge.supervise import ServiceUrls, ensure_services, purge_services
from clipforge.supervise import prefect_stack as ops
from flows.backlog import request_for_job
from flows.params import ClipRequest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEECH = "speech_en_11s__whisper_jfk.flac"
PROMPT = "ask not what your country can do for you"
RUN_TIMEOUT_S = 240.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def fresh_store(service_urls: ServiceUrls) -> Iterator[JobStore]:
    """A JobStore on a brand-new database in the session's private cluster, so queued
    rows of other tests cannot change the claim order."""
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(service_urls.database_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    dsn = psycopg2.extensions.make_dsn(service_urls.database_url, dbname=name)
    store = JobStore(dsn, maxconn=4)
    store.migrate()
    try:
        yield store
    finally:
        store.close()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _enqueue(store: JobStore, tag: str, priority: int = 0) -> int:
    req = ClipRequest(video=f"/media/{tag}.mp4", prompt=f"prompt {tag}", out_dir=f"/out/{tag}")
    job_id, created = enqueue(store, req.model_dump(mode="json"), Settings(),
                              priority=priority)
    assert created
    return job_id


def _ts(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# --------------------------------------------------------------------------- unit tests


def test_claim_order_is_priority_then_age(fresh_store: JobStore) -> None:
    a = _enqueue(fresh_store, "a", 0)
    b = _enqueue(fresh_store, "b", 5)
    c = _enqueue(fresh_store, "c", 0)
    d = _enqueue(fresh_store, "d", 5)
    e = _enqueue(fresh_store, "e", -1)
    claimed = []
    while (job := fresh_store.claim_next()) is not None:
        assert job["status"] == "running"
        claimed.append(job["id"])
    assert claimed == [b, d, a, c, e]
    assert fresh_store.claim_next() is None


def test_concurrent_claimers_never_share_a_job(fresh_store: JobStore) -> None:
    ids = {_enqueue(fresh_store, f"j{i}", i % 3) for i in range(40)}
    barrier = threading.Barrier(4)
    got: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def claimer(slot: int) -> None:
        try:
            barrier.wait(timeout=10)
            while (job := fresh_store.claim_next()) is not None:
                got[slot].append(job["id"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    flat = [i for part in got for i in part]
    assert len(flat) == len(set(flat)) == 40
    assert set(flat) == ids
    assert sum(1 for part in got if part) >= 2  # really concurrent, not one thread
    assert all(fresh_store.get_job(i)["status"] == "running" for i in ids)  # type: ignore[index]


def test_enqueued_parameters_round_trip_to_a_clip_request(fresh_store: JobStore) -> None:
    req = ClipRequest(video="rel/v.mp4", prompt="  the   pricing part ", out_dir="out",
                      target_seconds=30, render=False)
    settings = Settings()
    key = job_key(req.model_dump(mode="json"), None, settings)
    assert key == job_key(req.model_dump(mode="json"), None, settings)  # stable
    other = req.model_copy(update={"target_seconds": 31})
    assert job_key(other.model_dump(mode="json"), None, settings) != key
    job_id, _ = enqueue(fresh_store, req.model_dump(mode="json"), settings)
    job = fresh_store.claim_next()
    assert job is not None and job["id"] == job_id
    back = request_for_job(job)
    assert back.job_id == job_id
    assert back.video == str((Path.cwd() / "rel/v.mp4").resolve())
    assert back.out_dir == str((Path.cwd() / "out").resolve())
    assert (back.prompt, back.target_seconds, back.render) == ("the pricing part", 30, False)


def test_prefect_database_url_for_socket_and_tcp_dsns() -> None:
    sock = ops.prefect_database_url(
        "postgresql:///clipforge?host=/var/run/pg&port=5433&user=postgres")
    assert sock == "postgresql+asyncpg://postgres@/prefect?host=%2Fvar%2Frun%2Fpg&port=5433"
    tcp = ops.prefect_database_url("postgresql://u:p%40ss@db.local:6543/clipforge")
    assert tcp == "postgresql+asyncpg://u:p%40ss@db.local:6543/prefect"


# --------------------------------------------------------------------------- end to end


def _prefect(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _run_deployment(env: dict[str, str], name: str, params: dict[str, Any]) -> str:
    out = _prefect(env, "deployment", "run", name, "--params", json.dumps(params))
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1)


def _wait_flow_run(api_url: str, run_id: str, worker_log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = httpx.get(f"{api_url}/flow_runs/{run_id}", timeout=10).json()
        state = (run.get("state") or {}).get("type")
        if state in FINAL:
            assert state == "COMPLETED", (
                f"flow run {run_id} ended {state}: {(run.get('state') or {}).get('message')}\n"
                + worker_log.read_text(errors="replace")[-4000:])
            return run
        time.sleep(1.0)
    pytest.fail(f"flow run {run_id} not finished after {RUN_TIMEOUT_S:.0f}s (last state "
                f"{(run.get('state') or {}).get('type')}); worker log:\n"
                + worker_log.read_text(errors="replace")[-4000:])


def _cli(*argv: str) -> int:
    from clipforge_cli import ops as cli_ops

    parser = argparse.ArgumentParser(prog="clipforge")
    cli_ops.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_up_run_backlog_down(tmp_path_factory: pytest.TempPathFactory,
                             monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    speech = str(media(SPEECH))
    home = tmp_path_factory.mktemp("stackhome")
    work = tmp_path_factory.mktemp("stackout")
    monkeypatch.setenv("CLIPFORGE_HOME", str(home))
    for var in ("CLIPFORGE_DATABASE_URL", "CLIPFORGE_REDIS_URL", "PREFECT_API_URL",
                "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_PROFILE", ops.PORT_ENV):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
    settings = Settings(home=home, database_url=None, redis_url=None)
    prefect_home = home / "prefect"
    try:
        t0 = time.monotonic()
        info = ops.up(settings, port=ops.free_port())
        t_up = time.monotonic() - t0
        api = info["api_url"]
        assert httpx.get(f"{api}/health", timeout=5).status_code == 200
        assert info["worker_ready"] and not info["reused_server"]
        assert info["database_url"].startswith("postgresql+asyncpg://")
        state = json.loads((home / "prefect-stack.json").read_text())
        assert state["server_pid"] == info["server_pid"] == \
            int((home / "prefect-server.pid").read_text())
        assert state["worker_pid"] == int((home / "prefect-worker.pid").read_text())
        # the Prefect server really uses PostgreSQL: its tables are in database `prefect`
        urls = ensure_services(settings)
        conn = psycopg2.connect(psycopg2.extensions.make_dsn(urls.database_url,
                                                             dbname="prefect"))
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM deployment")
                assert cur.fetchone() == (3,)
        finally:
            conn.close()
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        by_name = {d["name"]: d for d in deployments}
        assert set(by_name) == {"clip-video", "nightly-backlog", "weekly-retrain"}
        nightly = by_name["nightly-backlog"]["schedules"][0]["schedule"]
        assert (nightly["cron"], nightly["timezone"]) == ("0 2 * * *", "UTC")
        weekly = by_name["weekly-retrain"]["schedules"][0]["schedule"]
        assert (weekly["cron"], weekly["timezone"]) == ("0 3 * * 1", "UTC")
        # the UI form: the video, the prompt and the output folder first, no internal fields
        form = by_name["clip-video"]["parameter_openapi_schema"]
        order = sorted(form["properties"], key=lambda k: form["properties"][k]["position"])
        assert order[:3] == ["video", "prompt", "out_dir"], order
        assert "job_id" not in order and "request" not in order
        assert by_name["clip-video"]["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]

        # idempotent: a second `up` reuses the server and the worker
        again = ops.up(settings)
        assert again["reused_server"] and again["reused_worker"]
        assert again["server_pid"] == info["server_pid"]

        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(prefect_home)}
        out1 = work / "ui-run"
        t1 = time.monotonic()
        run_id = _run_deployment(env, "clip-video/clip-video", {
            "video": speech, "prompt": PROMPT, "out_dir": str(out1), "render": False})
        _wait_flow_run(api, run_id, home / "prefect-worker.log")
        t_run = time.monotonic() - t1
        assert (out1 / "edl.json").is_file()
        # the scheduler (needs sqlalchemy<2.1) has planned the nightly runs at 02:00 UTC
        scheduled = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
            "deployments": {"id": {"any_": [by_name["nightly-backlog"]["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}}).json()
        assert scheduled
        for run in scheduled:
            start = datetime.fromisoformat(run["expected_start_time"].replace("Z", "+00:00"))
            assert (start.hour, start.minute, start.utcoffset()) == (2, 0, timedelta(0))
        store = JobStore(urls.database_url, maxconn=2)
        try:
            jobs = {j["output_dir"]: j for j in store.list_jobs(limit=20)}
            assert jobs[str(out1)]["status"] == "succeeded", jobs[str(out1)]

            # the backlog: two queued jobs, the higher priority one runs first
            capsys.readouterr()
            low, high = work / "low", work / "high"
            assert _cli("enqueue", speech, "--prompt", PROMPT, "--out", str(low),
                        "--no-render") == 0
            assert _cli("enqueue", speech, "--prompt", "my fellow Americans", "--out",
                        str(high), "--no-render", "--priority", "5") == 0
            printed = capsys.readouterr().out.split()
            low_id, high_id = int(printed[0]), int(printed[1])
            # failing jobs in between must not stop the backlog: a source that vanished
            # (the clip flow records it) and stored parameters that are not a request
            gone = store.create_job(job_key="gone", prompt=PROMPT, source=str(work / "gone.mp4"),
                                    parameters={"prompt": PROMPT, "render": False},
                                    status="queued", priority=3, output_dir=str(work / "gone"))
            bad = store.create_job(job_key="bad", prompt=PROMPT, source=speech,
                                   parameters={"target_seconds": "soon"}, status="queued",
                                   priority=2)
            t2 = time.monotonic()
            run_id = _run_deployment(env, "clip-backlog/nightly-backlog", {"max_jobs": 10})
            _wait_flow_run(api, run_id, home / "prefect-worker.log")
            t_backlog = time.monotonic() - t2
            jobs = {i: store.get_job(i) for i in (low_id, high_id, gone, bad)}
        finally:
            store.close()
        status = {i: (j or {}).get("status") for i, j in jobs.items()}
        assert status == {high_id: "succeeded", gone: "failed", bad: "failed",
                          low_id: "succeeded"}, jobs
        assert jobs[gone]["error_code"] == "bad_input"  # type: ignore[index]
        assert jobs[bad]["error_code"] == "invalid_parameters"  # type: ignore[index]
        started = [_ts(jobs[i]["started_at"]) for i in (high_id, gone, bad, low_id)]  # type: ignore[index]
        assert started == sorted(started)  # priority order
        assert (low / "edl.json").is_file() and (high / "edl.json").is_file()

        t3 = time.monotonic()
        stopped = ops.down(settings)
        t_down = time.monotonic() - t3
        assert stopped == ["prefect-worker", "prefect-server"]
        assert prefect_processes(prefect_home) == []
        assert ops.down(settings) == []  # idempotent
        status = ops.status(settings)
        assert not status["server_running"] and not status["worker_running"]
        print(f"\ntimings: up {t_up:.1f}s, clip-video run {t_run:.1f}s, backlog of four "
              f"{t_backlog:.1f}s, down {t_down:.1f}s")
    finally:
        ops.down(settings, services=True)
        purge_services(settings)
    assert prefect_processes(prefect_home) == []

