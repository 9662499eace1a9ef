"""The local production stack: Prefect server + process work pool + one worker.

``up(settings)``:

1. ``ensure_services`` (private PostgreSQL + Redis unless ``CLIPFORGE_*_URL`` are set);
2. a database ``prefect`` in the same PostgreSQL server (created if missing), used by
   the Prefect server through ``postgresql+asyncpg`` (a Unix socket for the private
   cluster); ``PREFECT_API_DATABASE_CONNECTION_URL`` in the environment wins;
3. ``prefect server start`` on ``127.0.0.1:<port>`` in the background (own session),
   ``PREFECT_HOME=<home>/prefect``, log ``<home>/prefect-server.log``, pid file
   ``<home>/prefect-server.pid``; waits for ``/api/health``;
4. the ``clipforge`` process work pool (created if missing);
5. ``prefect deploy --all --prefect-file deployments/prefect.yaml`` from the checkout
   (``clip-video/clip-video`` on demand, ``clip-backlog/nightly-backlog`` nightly);
6. ``workers`` (default 1) ``prefect worker start --pool clipforge`` processes in the
   background; the first logs to ``<home>/prefect-worker.log`` with pid file
   ``<home>/prefect-worker.pid``, worker ``i >= 2`` to ``prefect-worker-<i>.log`` /
   ``prefect-worker-<i>.pid`` (names ``clipforge-<host>``, ``clipforge-<host>-<i>``).

Shared results (opt-in, ``shared_results="redis"`` or ``CLIPFORGE_SHARED_RESULTS=redis``):
a ``prefect_redis.RedisDatabase`` block on the clipforge Redis is saved on the server and the
workers (so their flow runs) get ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK`` for it; see
``clipforge.supervise.shared_results`` and ``flows.runners``.

Everything is recorded in ``<home>/prefect-stack.json``. ``up`` is idempotent: a
healthy server and live workers are reused (the deployments are re-applied, which is
cheap and picks up code changes; extra workers beyond ``workers`` are stopped). ``down``
stops every worker first, then the server
(a worker whose server is gone hangs on SIGTERM), then, if asked, the private
PostgreSQL/Redis. Calls serialise on ``fcntl.flock`` of ``<home>/prefect-stack.lock``.

This module imports prefect nowhere: it drives the ``prefect`` CLI and the REST API.
The server itself (paths, state, environment, start, ports): :mod:`.prefect_server`.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

import httpx

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.supervise import shared_results
from clipforge.supervise.prefect_procs import (
    is_prefect,
    prefect_argv,
    run_cli,
    spawn,
    stop_process,
)
from clipforge.supervise.prefect_server import (
    LOOPBACK,
    PORT_ENV,
    REPO_ROOT,
    Paths,
    client_env,
    free_port,
    healthy,
    lock,
    log_tail,
    prefect_database_url,
    prefect_db_url,
    public_api_url,
    read_state,
    server_step,
    stop_server,
    stop_workers,
    write_state,
)
from clipforge.supervise.proc import pid_alive, read_pid, try_waitpid
from clipforge.supervise.services import ensure_services, stop_services

# re-exported: callers and tests use them as ``prefect_stack.X``
__all__ = ["PORT_ENV", "down", "free_port", "online_workers", "prefect_database_url",
           "public_api_url", "status", "up", "worker_name"]

PREFECT_FILE = REPO_ROOT / "deployments" / "prefect.yaml"
WORK_POOL = "clipforge"
DEPLOYMENTS = ("clip-video/clip-video", "clip-backlog/nightly-backlog",
               "retrain-weights/weekly-retrain")
WORKER_READY_TIMEOUT_S = 60.0
MAX_WORKERS = 32
HEAVY_LIMIT = 2  # heavy task runs (decode/ASR/render) at once on this server


# --------------------------------------------------------------------------- steps


def _work_pool_status(api_url: str) -> str | None:
    try:
        resp = httpx.get(f"{api_url}/work_pools/{WORK_POOL}", timeout=5.0)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    return str(resp.json().get("status") or "")


def _ensure_work_pool(env: dict[str, str], api_url: str) -> bool:
    """Create the process work pool unless it exists; True if created."""
    if _work_pool_status(api_url) is not None:
        return False
    proc = run_cli(prefect_argv("work-pool", "create", WORK_POOL, "--type", "process"),
                    env, REPO_ROOT)
    if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
        raise ServiceError(f"`prefect work-pool create {WORK_POOL}` failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc.returncode == 0


def _ensure_heavy_limit(env: dict[str, str]) -> None:
    """A tag concurrency limit on heavy stages, so queued runs do not oversubscribe CPUs."""
    from tasks.policy import HEAVY_TAG

    proc = run_cli(prefect_argv("concurrency-limit", "create", HEAVY_TAG, str(HEAVY_LIMIT)),
                    env, REPO_ROOT)
    if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
        raise ServiceError(f"`prefect concurrency-limit create {HEAVY_TAG}` failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-800:]}")


def _deploy(env: dict[str, str]) -> None:
    if not PREFECT_FILE.exists():
        raise ServiceError(f"{PREFECT_FILE} is missing: `clipforge up` deploys from a "
                           "clipforge checkout")
    proc = run_cli(
        prefect_argv("--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)),
        env, REPO_ROOT,
    )
    if proc.returncode != 0:
        raise ServiceError("`prefect deploy --all` failed: "
                           f"{(proc.stdout + proc.stderr).strip()[-1500:]}")


def worker_name(index: int) -> str:
    """The name worker ``index`` (1-based) registers in the pool (unique per host)."""
    base = f"clipforge-{socket.gethostname()}"
    return base if index == 1 else f"{base}-{index}"


def _start_worker(paths: Paths, settings: Settings, api_url: str, index: int = 1,
                  extra_env: dict[str, str] | None = None, limit: int | None = None) -> int:
    env = client_env(paths, settings, api_url)
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # flow-run logs reach the UI
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")
    env.update(extra_env or {})
    pid_file, log = paths.worker_files(index)
    argv = prefect_argv("worker", "start", "--pool", WORK_POOL, "--type", "process",
                         "--name", worker_name(index))
    if limit is not None:
        argv += ["--limit", str(limit)]
    pid = spawn(argv, env, log, REPO_ROOT)
    pid_file.write_text(f"{pid}\n")
    return pid


def online_workers(api_url: str) -> set[str]:
    """Names of the workers the server sees ``ONLINE`` in the clipforge pool."""
    try:
        resp = httpx.post(f"{api_url}/work_pools/{WORK_POOL}/workers/filter", json={},
                          timeout=5.0)
    except httpx.HTTPError:
        return set()
    if resp.status_code != 200:
        return set()
    return {str(w.get("name")) for w in resp.json() if w.get("status") == "ONLINE"}


def _wait_workers_ready(paths: Paths, pids: dict[int, int], api_url: str) -> bool:
    """Until the pool is READY and every one of ``pids`` ({index: pid}) is ONLINE."""
    names = {worker_name(i) for i in pids}
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _work_pool_status(api_url) == "READY" and names <= online_workers(api_url):
            return True
        for index, pid in pids.items():
            if not pid_alive(pid):  # not is_prefect: see prefect_server.start_server
                try_waitpid(pid)
                log = paths.worker_files(index)[1]
                raise ServiceError(f"Prefect worker {index} exited during start-up; log "
                                   f"{log}: {log_tail(log)}")
        time.sleep(0.25)
    return False



def _shared_results_mode(requested: str | None) -> str | None:
    """``"redis"`` or None, from the argument or ``CLIPFORGE_SHARED_RESULTS``."""
    raw = requested if requested is not None else \
        os.environ.get(shared_results.SHARED_RESULTS_ENV)
    return "redis" if shared_results.shared_results_enabled(
        {shared_results.SHARED_RESULTS_ENV: raw or ""}) else None


def _shared_results_env(env: dict[str, str], redis_url: str) -> dict[str, str]:
    """Save the Redis result-storage block on the server; the workers' extra env."""
    proc = run_cli([sys.executable, "-m", "flows.runners", "save-results-block", redis_url],
                   env, REPO_ROOT)
    if proc.returncode != 0:
        raise ServiceError("saving the Redis result storage block failed: "
                           f"{(proc.stdout + proc.stderr).strip()[-800:]}")
    return shared_results.shared_results_env(redis_url)


# --------------------------------------------------------------------------- public API


def up(settings: Settings, *, with_metrics: bool = False, port: int | None = None,
       workers: int = 1, worker_limit: int | None = None,
       shared_results: str | None = None, listen: str = LOOPBACK) -> dict[str, Any]:
    """Start (or reuse) services, Prefect server, work pool, deployments and workers.

    ``port``: the server's port on 127.0.0.1 (default: ``CLIPFORGE_PREFECT_PORT``, the
    previous port, 4200, or any free port, in that order). ``workers``: process workers
    on the pool (each runs flow runs as subprocesses; more workers, more runs at once).
    ``worker_limit``: at most this many flow runs at once per worker (``--limit``;
    default: no limit), so runs spread over the workers instead of piling on one.
    ``shared_results``: ``"redis"`` keeps persisted task results in the clipforge Redis
    (default: ``CLIPFORGE_SHARED_RESULTS``; ``"off"`` disables). ``listen``: the
    server's bind address (default loopback only; ``0.0.0.0`` or a LAN address lets
    workers on other machines in: the Prefect API has no authentication unless
    ``PREFECT_SERVER_API_AUTH_STRING`` is set, so only on a trusted network). Returns
    ``api_url`` (for this machine), ``public_api_url`` (for others),
    ``ui_url``, pids, log paths, the deployments and whether things were reused.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ServiceError(f"workers={workers}: need 1 to {MAX_WORKERS}")
    if worker_limit is not None and worker_limit < 1:
        raise ServiceError(f"worker_limit={worker_limit}: need at least 1")
    results_mode = _shared_results_mode(shared_results)
    paths = Paths.of(settings)
    with lock(paths):
        paths.prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        urls = ensure_services(settings)
        db_url = prefect_db_url(urls.database_url)
        state, reused_server = server_step(paths, settings, db_url, port=port,
                                           with_metrics=with_metrics, listen=listen)
        api_url = str(state["api_url"])

        env = client_env(paths, settings, api_url)
        created_pool = _ensure_work_pool(env, api_url)
        _ensure_heavy_limit(env)
        _deploy(env)

        # "off" explicitly, so a caller's CLIPFORGE_SHARED_RESULTS=redis does not reach
        # the flow runs (Redis locks) without the result storage that goes with it
        worker_env: dict[str, str] = {"CLIPFORGE_SHARED_RESULTS": "off"}
        if results_mode == "redis":
            worker_env = _shared_results_env(env, urls.redis_url)
        # workers started with another results mode must restart to pick up the env
        same_mode = (state.get("shared_results") == results_mode
                     and state.get("worker_limit") == worker_limit)
        stop_workers(paths, keep=workers if (reused_server and same_mode) else 0)
        pids: dict[int, int] = {}
        reused: list[bool] = []
        for index in range(1, workers + 1):
            pid_file, _log = paths.worker_files(index)
            pid = read_pid(pid_file)
            if reused_server and same_mode and is_prefect(pid, "worker"):
                assert pid is not None
                reused.append(True)
            else:
                stop_process(pid or 0, "worker")
                pid = _start_worker(paths, settings, api_url, index, worker_env, worker_limit)
                reused.append(False)
            pids[index] = pid
        reused_worker = all(reused)
        state.update({
            "worker_pid": pids[1],
            "worker_pids": [pids[i] for i in sorted(pids)],
            "worker_logs": [str(paths.worker_files(i)[1]) for i in sorted(pids)],
            "worker_names": [worker_name(i) for i in sorted(pids)],
            "workers": workers,
            "worker_limit": worker_limit,
            "shared_results": results_mode,
        })
        if results_mode == "redis":
            state["results_storage_block"] = worker_env.get(
                "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK")
        else:
            state.pop("results_storage_block", None)
        write_state(paths, state)
        ready = _wait_workers_ready(paths, pids, api_url)

    result: dict[str, Any] = {
        **state,
        "reused_server": reused_server,
        "reused_worker": reused_worker,
        "created_work_pool": created_pool,
        "work_pool": WORK_POOL,
        "worker_ready": ready,
        "deployments": list(DEPLOYMENTS),
    }
    if with_metrics:
        result["metrics_url"] = f"{api_url}/metrics"
    return result


def down(settings: Settings, *, services: bool = False) -> list[str]:
    """Stop every worker, then the Prefect server, then (``services=True``) the private
    PostgreSQL/Redis. Returns what was stopped; idempotent."""
    stopped = stop_server(settings)
    if services:
        stopped.extend(stop_services(settings))
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    """What ``up`` recorded and whether each part is alive now."""
    paths = Paths.of(settings)
    state = read_state(paths)
    api_url = state.get("api_url")
    return {
        **state,
        "server_running": is_prefect(read_pid(paths.server_pid), "server"),
        "server_healthy": bool(api_url) and healthy(str(api_url)),
        "worker_running": is_prefect(read_pid(paths.worker_pid), "worker"),
        "workers_running": [
            read_pid(f) for _, f in paths.worker_pid_files()
            if is_prefect(read_pid(f), "worker")
        ],
    }
