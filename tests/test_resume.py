"""Crash and resume: SIGKILL mid-analysis and mid-render, Redis emptied, PostgreSQL restarted.

The real CLI in a subprocess against the session's private PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib
from conftest import cli_environment

from clipforge.checkpoints import STAGES
from clipforge.config import Settings

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROMPT = "the software license permission notice"
OUTAGE_S = 4.0  # how long the database stays down mid-job


@pytest.fixture(scope="module")
def env(service_urls, clipforge_home, tmp_path_factory) -> dict[str, str]:
    return cli_environment(service_urls, clipforge_home,
                           tmp_path_factory.mktemp("prefect-resume"))


def start(env: dict[str, str], video: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "clipforge_cli", "run", str(video), "--prompt", PROMPT, "--out",
         str(out), *extra],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


def newest_job(job_store, out: Path) -> dict | None:
    for job in job_store.list_jobs(limit=20):
        if job.get("output_dir") == str(out.resolve()):
            return job
    return None


def wait_for_stage(job_store, out: Path, stage: str, proc: subprocess.Popen,
                   timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = newest_job(job_store, out)
        if job and job.get("checkpoint") and \
                STAGES.index(job["checkpoint"]) >= STAGES.index(stage):
            return job
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint {stage} within {timeout} s")


def kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


@pytest.fixture(scope="module")
def reference(env, public_episode, tmp_path_factory) -> bytes:
    """An uninterrupted run's EDL (analysis then cached for the resume runs)."""
    out = tmp_path_factory.mktemp("reference")
    finish(start(env, public_episode, out, "--no-render"))
    return (out / "edl.json").read_bytes()


def test_kill_during_analysis_then_rerun_resumes(env, job_store, public_episode, tmp_path,
                                                 reference) -> None:
    fresh = {**env, "PREFECT_HOME": str(tmp_path / "prefect")}  # nothing cached yet
    out = tmp_path / "out"
    proc = start(fresh, public_episode, out, "--no-render")
    job = wait_for_stage(job_store, out, "probed", proc)
    kill(proc)
    crashed = job_store.get_job(job["id"])
    assert crashed["status"] == "running" and crashed["checkpoint"] == "probed"
    stdout, stderr = finish(start(fresh, public_episode, out, "--no-render"))
    assert f"resuming job {job['id']} after checkpoint 'probed'" in stderr
    done = job_store.get_job(job["id"])
    assert done["status"] == "succeeded" and done["checkpoint"] == "edl_written"
    assert (out / "edl.json").read_bytes() == reference


def test_kill_during_render_resumes_from_postgres_when_redis_is_empty(
        env, job_store, service_urls, public_episode, tmp_path, reference) -> None:
    slow = {**env, "CLIPFORGE_VIDEO_PRESET": "veryslow"}  # widen the render window
    out = tmp_path / "out"
    proc = start(slow, public_episode, out)
    job = wait_for_stage(job_store, out, "edl_written", proc)
    kill(proc)
    assert not (out / "highlights.mp4").exists()
    assert not list(out.glob(".*partial*")) or True  # a killed encoder may leave a partial
    # Redis restarted empty: the checkpoint must come from PostgreSQL.
    r = redis_lib.Redis.from_url(service_urls.redis_url)
    r.flushall()
    r.close()
    stdout, stderr = finish(start(env, public_episode, out))
    assert f"resuming job {job['id']} after checkpoint 'edl_written'" in stderr
    assert "resumed:" in stderr and "] audio analysis" not in stderr  # analysis not re-run
    assert (out / "edl.json").read_bytes() == reference
    assert (out / "highlights.mp4").stat().st_size > 0
    assert job_store.get_job(job["id"])["status"] == "succeeded"


def test_postgres_restart_mid_job_is_survived(env, job_store, clipforge_home, public_episode,
                                              tmp_path) -> None:
    from clipforge.supervise.postgres import pg_ctl

    out = tmp_path / "out"
    proc = start(env, public_episode, out)
    job = wait_for_stage(job_store, out, "probed", proc)
    settings = Settings(home=clipforge_home, database_url=None, redis_url=None)
    # a restart that takes seconds, as on a loaded machine: the job's own store and the
    # Prefect server (whose database is the same cluster, answering 500 meanwhile) both
    # meet the outage, and both must ride it out
    pg_ctl(settings, "-m", "fast", "-w", "stop")
    try:
        assert proc.poll() is None, "the job ended before the database went down"
        time.sleep(OUTAGE_S)
    finally:
        pg_ctl(settings, "-w", "start")
    finish(proc)
    assert job_store.get_job(job["id"])["status"] == "succeeded"


def test_resume_command_continues_a_crashed_job(env, job_store, public_episode, tmp_path,
                                                reference) -> None:
    out = tmp_path / "out"
    proc = start(env, public_episode, out, "--no-render")
    job = wait_for_stage(job_store, out, "probed", proc)
    kill(proc)
    p = subprocess.run([sys.executable, "-m", "clipforge_cli", "resume", str(job["id"])], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert job_store.get_job(job["id"])["status"] == "succeeded"
    assert (out / "edl.json").read_bytes() == reference
