"""The warm runner as a user meets it: `clipforge services start` starts it, `clipforge
run` hands it the command and gets the same result it would have made itself, Ctrl-C
reaches the run, a different environment or changed code is never served by it, and
`clipforge services stop` stops it. The real CLI in subprocesses, on the session's
PostgreSQL, Redis and Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_environment, clipforge, media, purge_private_services

from clipforge.supervise.proc import pid_alive
from clipforge_cli import runner

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEECH = "speech_en_11s__whisper_jfk.flac"
PROMPT = "ask not what your country can do for you"
MARK = "(warm runner)"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runner-home")


@pytest.fixture(scope="module")
def env(service_urls, home, tmp_path_factory) -> dict[str, str]:
    return cli_environment(service_urls, home, tmp_path_factory.mktemp("runner-prefect"))


@pytest.fixture(scope="module")
def warm(env, home):
    """`clipforge services start` (URLs given, so it only adds the runner), then stop."""
    started = clipforge(env, "services", "start", timeout=300)
    assert started.returncode == 0, started.stderr
    assert "runner:   running (pid" in started.stdout, started.stdout + started.stderr
    pid = runner.runner_pid(home)
    assert pid is not None
    yield pid
    stopped = clipforge(env, "services", "stop", timeout=300)  # whatever a test left
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(pid)
    assert not (home / "runner.sock").exists()


def test_a_run_through_the_runner_writes_the_same_edl_as_one_in_process(
        env, warm, home, tmp_path) -> None:
    off, on = tmp_path / "off", tmp_path / "on"
    here = clipforge({**env, "CLIPFORGE_RUNNER": "off"}, "run", str(media(SPEECH)),
                     "--prompt", PROMPT, "--out", str(off), "--no-render")
    assert here.returncode == 0, here.stderr
    assert MARK not in here.stdout
    served = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out", str(on),
                       "--no-render")
    assert served.returncode == 0, served.stderr
    assert MARK in served.stdout, served.stdout
    assert (on / "edl.json").read_bytes() == (off / "edl.json").read_bytes()
    assert "Highlights for" in served.stdout and f"EDL:   {on / 'edl.json'}" in served.stdout
    assert runner.runner_pid(home) == warm  # the runner itself lives on
    status = clipforge(env, "services", "status")
    assert f"runner: running (pid {warm})" in status.stdout, status.stdout


def test_a_failed_run_through_the_runner_fails_the_same_way(env, warm, job_store,
                                                           tmp_path) -> None:
    out = tmp_path / "out"
    bad = media("corrupt_nomoov__androidx-media_sample_malformed_free_box.mp4")
    p = clipforge(env, "run", str(bad), "--prompt", PROMPT, "--out", str(out))
    assert p.returncode == 2, p.stderr
    failed = [ln for ln in p.stderr.splitlines() if ln.startswith("clipforge: failed:")]
    assert len(failed) == 1 and "corrupt_nomoov" in failed[0], p.stderr
    assert "Traceback" not in p.stderr
    rows = [j for j in job_store.list_jobs(limit=500) if j["output_dir"] == str(out.resolve())]
    assert rows and rows[0]["status"] == "failed"


def interrupt_mid_run(env: dict[str, str], video: Path, out: Path, when: str
                      ) -> tuple[subprocess.Popen, str]:
    """Start a run, send SIGINT (Ctrl-C) once its stderr shows ``when``; (proc, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "clipforge_cli", "run", str(video), "--prompt", "the license",
         "--out", str(out)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the run is under way (its analysis is not cached)
        seen.append(line)
        if when in line:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc, "".join(seen) + err


def assert_interrupted(proc: subprocess.Popen, err: str, job_store, out: Path) -> None:
    """Exit 130 and one "interrupted" line, whatever Prefect or FFmpeg raised meanwhile;
    the job row says interrupted."""
    # 130, or death by SIGINT itself when the interrupt surfaced again while Python shut
    # down: a shell shows both as 130
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err)
    assert "clipforge: interrupted" in err and "internal error" not in err, err
    rows = [j for j in job_store.list_jobs(limit=500) if j["output_dir"] == str(out.resolve())]
    assert rows and rows[0]["status"] == "failed", rows
    assert rows[0]["error_code"] == "interrupted", rows[0]


def test_ctrl_c_reaches_the_run_in_the_runner(env, warm, home, job_store, public_episode,
                                              tmp_path) -> None:
    out = tmp_path / "out"
    proc, err = interrupt_mid_run(env, public_episode, out, "audio analysis (")
    children = [int(ln.split("child ")[1].split(":")[0])
                for ln in (home / "runner.log").read_text().splitlines() if " child " in ln]
    assert children, err
    child = children[-1]
    assert_interrupted(proc, err, job_store, out)
    deadline = time.monotonic() + 60
    while pid_alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(child)
    assert runner.runner_pid(home) == warm


def test_ctrl_c_as_a_task_starts_is_an_interrupt_not_an_internal_error(
        env, job_store, public_episode, tmp_path) -> None:
    """In its own process, Ctrl-C just as the first tasks start (where Prefect's engine
    can raise its own error from its clean-up)."""
    out = tmp_path / "out"
    proc, err = interrupt_mid_run({**env, "CLIPFORGE_RUNNER": "off"}, public_episode, out,
                                  "visual signals (")
    assert_interrupted(proc, err, job_store, out)


def test_a_different_environment_runs_in_its_own_process(env, warm, tmp_path) -> None:
    p = clipforge({**env, "CLIPFORGE_LOUDNESS_LUFS": "-16"}, "run", str(media(SPEECH)),
                  "--prompt", PROMPT, "--out", str(tmp_path / "out"), "--no-render")
    assert p.returncode == 0, p.stderr
    assert MARK not in p.stdout, p.stdout


def test_changed_code_is_never_run_by_a_stale_runner(env, warm, home, tmp_path) -> None:
    """Last in this module: the runner stops itself once the code it imported changes."""
    pid = runner.runner_pid(home)
    assert pid is not None
    code = REPO / "clipforge_cli" / "runner_client.py"
    before = code.stat()
    # an edit: the file's time moves (its bytes stay, and its time is put back at the end)
    os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    try:
        p = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out",
                      str(tmp_path / "out"), "--no-render")
        assert p.returncode == 0, p.stderr
        assert MARK not in p.stdout, p.stdout
        deadline = time.monotonic() + 60
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid)
        assert "refused: code changed" in (home / "runner.log").read_text()
        # the refused command started a fresh runner for the code as it is now
        deadline = time.monotonic() + 120
        while runner.runner_pid(home) in (None, pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        fresh = runner.runner_pid(home)
        assert fresh is not None and fresh != pid
        served = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out",
                           str(tmp_path / "again"), "--no-render")
        assert served.returncode == 0, served.stderr
        assert MARK in served.stdout, served.stdout
        started = clipforge(env, "services", "start", timeout=300)  # reuses it
        assert f"runner:   running (pid {fresh}," in started.stdout, started.stdout
        stopped = clipforge(env, "services", "stop", timeout=300)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped: runner" in stopped.stdout, stopped.stdout
        assert not pid_alive(fresh)
    finally:
        os.utime(code, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_first_run_on_private_services_keeps_a_runner_warm_until_idle(tmp_path) -> None:
    """No URLs, no `services start`: the first run starts the private services itself,
    runs in its own process and leaves a warm runner beside them; the next run uses it;
    idle for CLIPFORGE_RUNNER_IDLE_S, it exits; `services stop` stops the rest."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLIPFORGE_", "PREFECT_"))}
    env.update(CLIPFORGE_HOME=str(home), PREFECT_HOME=str(home / "prefect"),
               CLIPFORGE_RUNNER_IDLE_S="10")
    try:
        first = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out",
                          str(tmp_path / "first"), "--no-render")
        assert first.returncode == 0, first.stderr
        assert MARK not in first.stdout
        deadline = time.monotonic() + 120
        while runner.runner_pid(home) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        pid = runner.runner_pid(home)
        assert pid is not None, (home / "runner.log").read_text()
        second = clipforge(env, "run", str(media(SPEECH)), "--prompt", PROMPT, "--out",
                           str(tmp_path / "second"), "--no-render")
        assert second.returncode == 0, second.stderr
        assert MARK in second.stdout, second.stdout
        assert (tmp_path / "second" / "edl.json").read_bytes() == \
            (tmp_path / "first" / "edl.json").read_bytes()
        deadline = time.monotonic() + 120
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(pid)
        assert "no command for 10 s; exiting" in (home / "runner.log").read_text()
    finally:
        stopped = clipforge(env, "services", "stop", timeout=300)
        purge_private_services(env)
    assert stopped.returncode == 0, stopped.stderr
    assert "postgresql" in stopped.stdout, stopped.stdout
