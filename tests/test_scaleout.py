"""Scale-out: task runners from the environment, Dask fan-out, several Prefect workers.

- ``flows.runners``: modes, validation, and importing it does not import dask.
- ``JobBudget`` pickles (Dask ships it to worker processes): a bound ``JobStore.add_cost``
  becomes a DSN-only ``StoreCostRecord`` that still books the job row.
- A two-process Dask ``LocalCluster`` (``CLIPFORGE_DASK_LOCAL_WORKERS=2``) under
  ``prefect_test_harness``: a CPU task mapped over 4 items (results in order, at least
  two worker processes) and the real ``llm_chunk_task`` fanned out against the fake LLM
  with a budget booking to PostgreSQL from the Dask workers.
- ``up(workers=2, worker_limit=1)``: two workers on the pool, two ``clip-video`` runs
  triggered at once both COMPLETE on different workers, shared results in Redis, then
  ``down`` leaves no process.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import httpx
import pytest
import redis
from conftest import media, prefect_processes
from fake_llm import FakeLlm

from clipforge.config import Settings
from clipforge.cost import JobBudget, StoreCostRecord
from clipforge.llm import ChunkText
from clipforge.store import JobStore
from clipforge.supervise import ServiceUrls, ensure_services, purge_services
from clipforge.supervise import prefect_stack as ops
from flows import runners

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SPEECH = "speech_en_11s__whisper_jfk.flac"
PROMPT = "ask not what your country can do for you"
RUN_TIMEOUT_S = 150.0
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
DASK_VARS = (runners.DASK_ADDRESS_ENV, runners.DASK_LOCAL_WORKERS_ENV, runners.THREADS_ENV)


# --------------------------------------------------------------------------- runners


def test_task_runner_modes_and_validation() -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    default = runners.task_runner_from_env({})
    assert isinstance(default, ThreadPoolTaskRunner) and default._max_workers == 4
    assert runners.task_runner_from_env({runners.THREADS_ENV: "2"})._max_workers == 2  # type: ignore[attr-defined]
    assert runners.task_runner_mode({runners.DASK_ADDRESS_ENV: "tcp://10.0.0.5:8786"}) == \
        "dask-address"
    assert runners.task_runner_mode({runners.DASK_LOCAL_WORKERS_ENV: "3"}) == "dask-local"
    for bad in ({runners.DASK_ADDRESS_ENV: "tcp://h:1", runners.DASK_LOCAL_WORKERS_ENV: "2"},
                {runners.DASK_ADDRESS_ENV: "tcp://127.0.0.1:0"},
                {runners.DASK_ADDRESS_ENV: "10.0.0.5:8786"},
                {runners.DASK_LOCAL_WORKERS_ENV: "0"},
                {runners.DASK_LOCAL_WORKERS_ENV: "two"}):
        with pytest.raises(ValueError):
            runners.task_runner_from_env(bad)

    from prefect_dask import DaskTaskRunner

    remote = runners.task_runner_from_env({runners.DASK_ADDRESS_ENV: "tcp://10.0.0.5:8786"})
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"
    local = runners.task_runner_from_env({runners.DASK_LOCAL_WORKERS_ENV: "2"})
    assert isinstance(local, DaskTaskRunner) and local.address is None
    assert {k: local.cluster_kwargs[k] for k in ("n_workers", "threads_per_worker",
                                                  "processes")} == {
        "n_workers": 2, "threads_per_worker": 1, "processes": True}


def test_importing_runners_does_not_import_dask() -> None:
    code = ("import sys, flows.runners as r; r.task_runner_from_env({}); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed', 'prefect_dask')); assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k not in DASK_VARS}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_shared_results_settings() -> None:
    assert not runners.shared_results_enabled({})
    assert not runners.shared_results_enabled({runners.SHARED_RESULTS_ENV: "off"})
    assert runners.shared_results_enabled({runners.SHARED_RESULTS_ENV: "Redis"})
    with pytest.raises(ValueError):
        runners.shared_results_enabled({runners.SHARED_RESULTS_ENV: "s3"})
    env = runners.shared_results_env("redis://10.0.0.5:6379/0")
    from prefect_redis import RedisDatabase

    assert env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"] == \
        f"{RedisDatabase.get_block_type_slug()}/clipforge-results"
    assert runners.shared_lock_manager({}) is None

    from prefect.cache_policies import INPUTS
    from prefect_redis.locking import RedisLockManager

    policy = runners.shared_cache_policy(INPUTS, env)
    assert isinstance(policy.lock_manager, RedisLockManager)
    assert str(policy.isolation_level).endswith("SERIALIZABLE")
    assert runners.shared_cache_policy(INPUTS, {}) is INPUTS


def test_cli_up_options() -> None:
    import argparse

    from clipforge_cli import ops as cli_ops

    parser = argparse.ArgumentParser(prog="clipforge")
    cli_ops.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["up", "--workers", "3", "--worker-limit", "1",
                              "--shared-results", "redis", "--listen", "0.0.0.0"])
    assert (args.workers, args.worker_limit, args.shared_results, args.listen) == (
        3, 1, "redis", "0.0.0.0")
    args = parser.parse_args(["up"])
    assert (args.workers, args.worker_limit, args.shared_results, args.listen) == (
        1, None, None, "127.0.0.1")
    for bad in (["up", "--workers", "0"], ["up", "--workers", "x"],
                ["up", "--shared-results", "s3"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


# --------------------------------------------------------------------------- pickling


def test_job_budget_pickles_and_books_through_the_dsn(job_store: JobStore) -> None:
    job_id = job_store.create_job(job_key=f"scaleout-{time.time_ns()}", prompt="p",
                                  source="s.mp4", parameters={})
    budget = JobBudget(job_id, 1.0, record=job_store.add_cost)
    budget.charge("prov", "m", 1, 1, 0.25)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(budget))
        assert isinstance(copy._record, StoreCostRecord)
        assert copy._record.dsn == job_store.pool.dsn
        assert copy.spent_usd == 0.25 and copy.limit_usd == 1.0
    copy = pickle.loads(pickle.dumps(budget))
    assert copy.charge("prov", "m", 1, 1, 0.5) == pytest.approx(0.75)  # the row's total
    assert budget.charge("prov", "m", 1, 1, 0.0) == pytest.approx(0.75)  # sees the copy
    # the other arguments of llm_chunk_task pickle too
    chunk = ChunkText(0, 1_000_000, ((0, 1_000_000, "hello"),))
    settings = Settings(llm_base_url="http://127.0.0.1:9/v1", llm_model="m")
    assert pickle.loads(pickle.dumps(chunk)) == chunk
    assert pickle.loads(cloudpickle.dumps(settings)) == settings


# --------------------------------------------------------------------------- Dask


def _cpu(x: int) -> tuple[int, int]:
    end = time.monotonic() + 0.4  # long enough that the scheduler uses both workers
    n = 0
    while time.monotonic() < end:
        n += 1
    return x * x, os.getpid()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One temporary Prefect server (``prefect_test_harness``) for this module's flows,
    with PREFECT_HOME in a temporary folder."""
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_HOME", str(home))
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        mp.setenv("DO_NOT_TRACK", "1")
        for var in ("PREFECT_API_URL", "PREFECT_PROFILE", *DASK_VARS):
            mp.delenv(var, raising=False)
        with prefect_test_harness(server_startup_timeout=180):
            yield home


def test_cache_in_redis_with_redis_locks(harness: Path, service_urls: ServiceUrls) -> None:
    """The shared-results pieces on the real (Unix-socket) Redis: a result storage block
    saved on the server, a cached task whose records and SERIALIZABLE locks live in
    Redis, and a cache hit from a second flow run."""
    from prefect import flow, task
    from prefect.cache_policies import INPUTS
    from prefect_redis import RedisDatabase

    env = runners.shared_results_env(service_urls.redis_url)
    name = f"scaleout-{time.time_ns()}"
    slug = runners.save_results_block(service_urls.redis_url, name=name)
    assert slug == f"redis-database/{name}"
    storage = RedisDatabase.load(name)
    calls: list[int] = []

    @task(cache_policy=runners.shared_cache_policy(INPUTS, env), result_storage=storage,
          persist_result=True)
    def square(x: int, nonce: str) -> int:
        calls.append(x)
        return x * x

    @flow(name="scaleout-cache")
    def twice(x: int) -> list[Any]:
        return [square(x, name, return_state=True) for _ in range(2)]

    first = twice(7)
    second = twice(7)
    assert [s.result() for s in first + second] == [49] * 4
    assert [s.name for s in first + second] == ["Completed", "Cached", "Cached", "Cached"]
    assert calls == [7]
    client = redis.Redis.from_url(service_urls.redis_url)
    try:
        keys = [k for k in client.scan_iter(count=1000) if not k.startswith(b"clipforge:")]
    finally:
        client.close()
    assert keys and not [k for k in keys if k.startswith(b"lock:")], keys  # locks released


def test_dask_local_cluster_fans_out(harness: Path, job_store: JobStore,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect import flow, task, unmapped
    from prefect_dask import DaskTaskRunner

    from tasks.stages import llm_chunk_task

    monkeypatch.setenv(runners.DASK_LOCAL_WORKERS_ENV, "2")
    runner = runners.task_runner_from_env()
    assert isinstance(runner, DaskTaskRunner)
    cpu_task = task(name="cpu")(_cpu)
    job_id = job_store.create_job(job_key=f"scaleout-dask-{time.time_ns()}", prompt="p",
                                  source="s.mp4", parameters={})
    chunks = [ChunkText(i * 10_000_000, (i + 1) * 10_000_000,
                        ((i * 10_000_000, i * 10_000_000 + 5_000_000, f"sentence {i}"),))
              for i in range(4)]

    @task(name="select-like")
    def select_like(settings: Settings, budget: JobBudget) -> list[Any]:
        # as tasks.stages.select_task: called directly in the flow, it maps the chunks
        # through the flow's task runner
        picks = llm_chunk_task.map(chunks, prompt=unmapped(PROMPT),
                                   settings=unmapped(settings), budget=unmapped(budget))
        return [f.result() for f in picks]

    @flow(name="scaleout-dask", task_runner=runner)
    def fan_out(items: list[int], settings: Settings, budget: JobBudget
                ) -> tuple[list[tuple[int, int]], list[Any]]:
        squares = cpu_task.map(items)
        return [f.result() for f in squares], select_like(settings, budget)

    with FakeLlm() as fake:
        settings = Settings(llm_base_url=fake.base_url, llm_model="m",
                            llm_price_in_per_1k=1.0, llm_price_out_per_1k=2.0)
        budget = JobBudget(job_id, 5.0, record=job_store.add_cost)
        t0 = time.monotonic()
        squares, picks = fan_out([1, 2, 3, 4], settings, budget)
        took = time.monotonic() - t0
        requests = len(fake.requests)
    assert [s for s, _ in squares] == [1, 4, 9, 16]
    pids = {p for _, p in squares}
    assert len(pids) >= 2 and os.getpid() not in pids, pids
    assert picks == [[], [], [], []] and requests == 4
    # each call: 10 prompt + 5 completion tokens at $1/$2 per 1k, booked from Dask workers
    job = job_store.get_job(job_id)
    assert job is not None and float(job["cost_usd"]) == pytest.approx(4 * 0.02)
    # charged on pickled copies in the Dask workers, never on this process's object
    assert budget.spent_usd == 0.0
    print(f"\ndask fan-out flow: {took:.1f}s, worker pids {sorted(pids)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_existing_dask_cluster_by_address(harness: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """``CLIPFORGE_DASK_ADDRESS`` against a cluster started with the ``dask`` CLI, as on
    other machines: a scheduler and two single-thread workers with fixed listen
    addresses (never port 0), the checkout on their PYTHONPATH."""
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    dask_cli = str(Path(sys.executable).with_name("dask"))
    port = ops.free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO)])}
    for var in DASK_VARS:
        env.pop(var, None)
    logs = [tmp_path / f"dask-{n}.log" for n in ("scheduler", "w1", "w2")]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs[0], "wb") as fh:
            procs.append(subprocess.Popen(
                [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--no-dashboard"], env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT))
        workers = []
        for log in logs[1:]:
            with open(log, "wb") as fh:
                worker = subprocess.Popen(
                    [dask_cli, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                     "--no-nanny", "--no-dashboard",
                     "--listen-address", f"tcp://127.0.0.1:{ops.free_port()}"],
                    env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)
            procs.append(worker)
            workers.append(worker)
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout=60) as client:
            client.wait_for_workers(2, timeout=60)

        monkeypatch.setenv(runners.DASK_ADDRESS_ENV, f"tcp://127.0.0.1:{port}")
        runner = runners.task_runner_from_env()
        assert isinstance(runner, DaskTaskRunner)
        cpu_task = task(name="cpu-remote")(_cpu)

        @flow(name="scaleout-dask-address", task_runner=runner)
        def remote(items: list[int]) -> list[tuple[int, int]]:
            return [f.result() for f in cpu_task.map(items)]

        got = remote([5, 6, 7, 8])
        assert [v for v, _ in got] == [25, 36, 49, 64]
        assert {p for _, p in got} == {w.pid for w in workers}
    except BaseException:
        for log in logs:
            print(log.name, log.read_text(errors="replace")[-2000:] if log.exists() else "")
        raise
    finally:
        for proc in reversed(procs):  # workers first, then the scheduler
            _stop(proc)


# --------------------------------------------------------------------------- two workers


def _run_deployment(env: dict[str, str], params: dict[str, Any]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "prefect", "deployment", "run", "clip-video/clip-video",
         "--params", json.dumps(params)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", proc.stdout)
    assert match, proc.stdout
    return match.group(1)


def _wait_runs(api: str, run_ids: list[str], logs: list[Path]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    done: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline and len(done) < len(run_ids):
        for run_id in run_ids:
            if run_id in done:
                continue
            run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
            state = (run.get("state") or {}).get("type")
            if state in FINAL:
                assert state == "COMPLETED", (
                    f"{run_id} ended {state}: {(run.get('state') or {}).get('message')}\n"
                    + "\n".join(p.read_text(errors="replace")[-3000:] for p in logs))
                done[run_id] = run
        time.sleep(1.0)
    if len(done) < len(run_ids):
        pytest.fail(f"runs not finished after {RUN_TIMEOUT_S:.0f}s: "
                    f"{set(run_ids) - set(done)}\n"
                    + "\n".join(p.read_text(errors="replace")[-3000:] for p in logs))
    return done


def test_two_workers_run_two_deployments_at_once(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    speech = str(media(SPEECH))
    home = tmp_path_factory.mktemp("scalehome")
    work = tmp_path_factory.mktemp("scaleout")
    monkeypatch.setenv("CLIPFORGE_HOME", str(home))
    for var in ("CLIPFORGE_DATABASE_URL", "CLIPFORGE_REDIS_URL", "PREFECT_API_URL",
                "PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_PROFILE", ops.PORT_ENV,
                runners.SHARED_RESULTS_ENV, *DASK_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "2")
    settings = Settings(home=home, database_url=None, redis_url=None)
    prefect_home = home / "prefect"
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        info = ops.up(settings, port=ops.free_port(), workers=2, worker_limit=1,
                      shared_results="redis", listen="0.0.0.0")
        timings["up"] = time.monotonic() - t0
        api = info["api_url"]
        assert info["worker_ready"], info
        assert api.startswith("http://127.0.0.1:") and info["listen"] == "0.0.0.0"
        assert info["public_api_url"].endswith(f":{info['port']}/api")
        assert "127.0.0.1" not in info["public_api_url"]
        assert len(info["worker_pids"]) == 2 and len(set(info["worker_pids"])) == 2
        assert info["worker_pids"][1] == int((home / "prefect-worker-2.pid").read_text())
        assert info["results_storage_block"] == runners.RESULTS_BLOCK_SLUG
        names = set(info["worker_names"])
        assert names <= ops.online_workers(api)
        blocks = httpx.post(f"{api}/block_documents/filter", timeout=10, json={}).json()
        assert "clipforge-results" in {b["name"] for b in blocks}

        env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_HOME": str(prefect_home)}
        outs = [work / "a", work / "b"]
        t1 = time.monotonic()
        run_ids = [_run_deployment(env, {
            "video": speech, "prompt": PROMPT, "out_dir": str(out), "render": False})
            for out in outs]
        logs = [Path(p) for p in info["worker_logs"]]
        runs = _wait_runs(api, run_ids, logs)
        timings["two runs"] = time.monotonic() - t1
        assert all((out / "edl.json").is_file() for out in outs)
        # each run was started by a different worker (--limit 1 each). Both workers may
        # try to submit one run ("submitting flow run"); the loser's submission is
        # aborted, so the marker is the winner's "submitted to infrastructure".
        texts = [p.read_text(errors="replace") for p in logs]
        takers = [[i for i, text in enumerate(texts)
                   if f"Flow run '{runs[run_id]['name']}' submitted to infrastructure" in text]
                  for run_id in run_ids]
        assert sorted(t[0] for t in takers if len(t) == 1) == [0, 1], takers
        # the persisted results (transcript etc.) live in Redis, not under PREFECT_HOME
        local = prefect_home / "storage"
        assert not (local.exists() and any(local.iterdir())), list(local.iterdir())
        urls: ServiceUrls = ensure_services(settings)
        client = redis.Redis.from_url(urls.redis_url)
        try:
            prefect_keys = [k for k in client.scan_iter(count=1000)
                            if not k.startswith(b"clipforge:")]
        finally:
            client.close()
        assert prefect_keys, "no Prefect result records in Redis"
        assert names <= ops.online_workers(api)  # both still online after the runs

        t2 = time.monotonic()
        stopped = ops.down(settings)
        timings["down"] = time.monotonic() - t2
        assert stopped == ["prefect-worker", "prefect-worker-2", "prefect-server"]
        assert prefect_processes(prefect_home) == []
        assert ops.down(settings) == []
        print("\ntimings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    finally:
        ops.down(settings, services=True)
        purge_services(settings)  # as root the cluster is outside the test's folder
