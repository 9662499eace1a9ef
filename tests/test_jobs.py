"""The job module as a user meets it: one job row per job, whoever starts it, and every
failed attempt recorded — including failures before the flow engine starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    cli_environment,
    clipforge,
    media,
    prefect_processes,
    purge_private_services,
)

from clipforge.config import Settings
from clipforge.jobs import job_key, stored_parameters
from clipforge.store import JobStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEECH = "speech_en_11s__whisper_jfk.flac"
PROMPT = "ask not what your country can do for you"


def _jobs_for(store: JobStore, out: Path) -> list[dict]:
    return [j for j in store.list_jobs(limit=500) if j["output_dir"] == str(out.resolve())]


def test_job_key_ignores_the_path_but_not_the_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    a = {"video": "a.mp4", "prompt": "p", "out_dir": "out", "target_seconds": 60.0}
    moved = {**a, "video": "/elsewhere/b.mp4"}
    assert job_key(a, "ab" * 32, settings) == job_key(moved, "ab" * 32, settings)
    assert job_key(a, "ab" * 32, settings) != job_key({**a, "target_seconds": 30.0},
                                                      "ab" * 32, settings)
    assert job_key(a, "ab" * 32, settings) != job_key(
        a, "ab" * 32, settings.model_copy(update={"whisper_beam_size": 1}))
    assert stored_parameters({**a, "job_id": 3})["video"] == str(Path("a.mp4").resolve())


def test_enqueued_then_run_is_one_job(service_urls, clipforge_home, job_store, tmp_path) -> None:
    env = cli_environment(service_urls, clipforge_home, tmp_path / "prefect")
    out = tmp_path / "out"
    args = (str(media(SPEECH)), "--prompt", PROMPT, "--out", str(out), "--no-render")
    queued = clipforge(env, "enqueue", *args)
    assert queued.returncode == 0, queued.stderr
    job_id = int(queued.stdout.split()[-1])
    ran = clipforge(env, "run", *args)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert f"Job {job_id}:" in ran.stdout  # the run took the queued row over
    rows = _jobs_for(job_store, out)
    assert [r["id"] for r in rows] == [job_id] and rows[0]["status"] == "succeeded"


def test_a_failure_before_the_flow_starts_is_a_failed_job(service_urls, clipforge_home,
                                                         job_store, tmp_path) -> None:
    # a Prefect API nobody answers: the flow engine cannot start
    env = cli_environment(service_urls, clipforge_home, tmp_path / "prefect",
                          PREFECT_API_URL="http://127.0.0.1:9/api")
    out = tmp_path / "out"
    p = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out", str(out),
                  "--no-render", timeout=300)
    assert p.returncode != 0
    rows = _jobs_for(job_store, out)
    assert len(rows) == 1 and rows[0]["status"] == "failed", rows
    assert rows[0]["error"], rows[0]


def test_bad_input_prints_its_one_line_reason_only(service_urls, clipforge_home, job_store,
                                                  tmp_path) -> None:
    env = cli_environment(service_urls, clipforge_home, tmp_path / "prefect")
    out = tmp_path / "out"
    p = clipforge(env, "run", str(media("corrupt_nomoov__androidx-media_sample_malformed_free_box"
                                        ".mp4")),
                  "--prompt", PROMPT, "--out", str(out))
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    failed = [ln for ln in p.stderr.splitlines() if ln.startswith("clipforge: failed:")]
    assert len(failed) == 1, p.stderr
    assert "corrupt_nomoov" in failed[0]  # names the file
    other = [ln for ln in p.stderr.splitlines()
             if ln.strip() and not ln.startswith(("clipforge: failed:", "["))]
    assert other == [], p.stderr
    rows = _jobs_for(job_store, out)
    assert rows and rows[0]["status"] == "failed" and rows[0]["error_code"] != "internal"


def test_four_runs_at_once_on_a_fresh_home_share_one_warm_server(tmp_path) -> None:
    """A fresh CLIPFORGE_HOME, no URLs: the first run starts PostgreSQL, Redis and the
    local Prefect server; four concurrent runs all succeed and leave their job rows;
    `clipforge services stop` stops all three; `services purge --yes` deletes their data
    (and refuses without --yes)."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLIPFORGE_", "PREFECT_"))}
    env.update(CLIPFORGE_HOME=str(home), PREFECT_HOME=str(home / "prefect"))
    speech = str(media(SPEECH))
    procs = [subprocess.Popen(
        [sys.executable, "-m", "clipforge_cli", "run", speech, "--prompt", f"{PROMPT} {i}",
         "--out", str(tmp_path / f"out{i}"), "--no-render"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, cwd=REPO) for i in range(4)]
    results = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=1200)
            results.append((p.returncode, stdout, stderr))
        assert [r[0] for r in results] == [0, 0, 0, 0], [r[2][-1500:] for r in results]
        assert all("ephemeral" not in r[2] for r in results), [r[2] for r in results]
        listed = clipforge(env, "jobs", "--json")
        assert listed.returncode == 0, listed.stderr
        jobs = json.loads(listed.stdout)
        assert sorted(j["status"] for j in jobs) == ["succeeded"] * 4
        status = clipforge(env, "services", "status")
        assert "prefect-server: running" in status.stdout, status.stdout
    finally:
        stopped = clipforge(env, "services", "stop", timeout=300)
        for p in procs:
            if p.poll() is None:
                p.kill()
        purged = purge_private_services(env)
    assert stopped.returncode == 0, stopped.stderr
    assert "prefect-server" in stopped.stdout and "postgresql" in stopped.stdout, stopped.stdout
    deadline = time.monotonic() + 60
    while prefect_processes(home / "prefect") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert prefect_processes(home / "prefect") == []
    assert purged.returncode == 0, purged.stderr
    assert "removed: " in purged.stdout and "postgres" in purged.stdout, purged.stdout
    assert not (home / "services.json").exists()
    refused = clipforge(env, "services", "purge")
    assert refused.returncode == 2 and "--yes" in refused.stderr, refused.stderr


def test_run_falls_back_to_ephemeral_mode_when_the_local_server_cannot_start(
        service_urls, job_store, tmp_path) -> None:
    import socket

    with socket.socket() as taken:  # the local server's port is taken: it cannot start
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = cli_environment(service_urls, tmp_path / "home", tmp_path / "prefect",
                              CLIPFORGE_PREFECT_PORT=str(port))
        env.pop("PREFECT_API_URL")
        out = tmp_path / "out"
        p = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out", str(out),
                      "--no-render")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "using Prefect's ephemeral mode" in p.stderr
    assert f"port {port}" in p.stderr  # the reason is named
    assert [r["status"] for r in _jobs_for(job_store, out)] == ["succeeded"]
