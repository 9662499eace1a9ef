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
``flows.runners``.

Everything is recorded in ``<home>/prefect-stack.json``. ``up`` is idempotent: a
healthy server and live workers are reused (the deployments are re-applied, which is
cheap and picks up code changes; extra workers beyond ``workers`` are stopped). ``down``
stops every worker first, then the server
(a worker whose server is gone hangs on SIGTERM), then, if asked, the private
PostgreSQL/Redis. Calls serialise on ``fcntl.flock`` of ``<home>/prefect-stack.lock``.

This module imports prefect nowhere: it drives the ``prefect`` CLI and the REST API.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql
from sqlalchemy.engine import URL

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.services import ensure_services, stop_services
from clipforge.store import redact

REPO_ROOT = Path(__file__).resolve().parents[1]
PREFECT_FILE = REPO_ROOT / "deployments" / "prefect.yaml"
WORK_POOL = "clipforge"
PREFECT_DATABASE = "prefect"
DEFAULT_PORT = 4200
PORT_ENV = "CLIPFORGE_PREFECT_PORT"
DEPLOYMENTS = ("clip-video/clip-video", "clip-backlog/nightly-backlog")
SERVER_START_TIMEOUT_S = 120.0
WORKER_READY_TIMEOUT_S = 60.0
MAX_WORKERS = 32
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 180.0
LOOPBACK = "127.0.0.1"
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bind addresses meaning every interface


# --------------------------------------------------------------------------- paths, state


def _home(settings: Settings) -> Path:
    return Path(settings.home).expanduser().resolve()


class _Paths:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.prefect_home = home / "prefect"
        self.state = home / "prefect-stack.json"
        self.lock = home / "prefect-stack.lock"
        self.server_log = home / "prefect-server.log"
        self.worker_log = home / "prefect-worker.log"
        self.server_pid = home / "prefect-server.pid"
        self.worker_pid = home / "prefect-worker.pid"

    def worker_files(self, index: int) -> tuple[Path, Path]:
        """(pid file, log) of worker ``index`` (1-based; worker 1 keeps the old names)."""
        if index == 1:
            return self.worker_pid, self.worker_log
        return (self.home / f"prefect-worker-{index}.pid",
                self.home / f"prefect-worker-{index}.log")

    def worker_pid_files(self) -> list[tuple[int, Path]]:
        """Every worker pid file present, as (index, path), in index order."""
        found = [(1, self.worker_pid)] if self.worker_pid.exists() else []
        for path in self.home.glob("prefect-worker-*.pid"):
            suffix = path.stem.removeprefix("prefect-worker-")
            if suffix.isdigit() and int(suffix) >= 2:
                found.append((int(suffix), path))
        return sorted(found)


@contextlib.contextmanager
def _locked(paths: _Paths) -> Iterator[None]:
    paths.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(paths.lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read_state(paths: _Paths) -> dict[str, Any]:
    try:
        data = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(paths: _Paths, state: dict[str, Any]) -> None:
    tmp = paths.state.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, paths.state)


def _tail(path: Path, n: int = 20) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in lines[-n:] if line.strip())


# --------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_zombie(pid: int) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line[stat_line.rfind(")") + 2 :][:1] in ("Z", "X", "")


def _is_prefect(pid: int | None, role: str) -> bool:
    """True if ``pid`` is a live ``prefect <role> start`` process (not a recycled pid)."""
    if not pid or pid <= 0:
        return False
    argv = _cmdline(pid)
    if not argv or _is_zombie(pid):
        return False
    text = " ".join(argv)
    return "prefect" in text and f"{role} start" in text


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _reap(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.poll()


def _group_members(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) == pgid and not _is_zombie(int(entry.name)):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from the ``ppid`` field of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat_line[stat_line.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_leftovers(pids: list[int]) -> None:
    """SIGINT (the flow records the job ``failed``/``interrupted``), then SIGTERM, then
    SIGKILL, the given processes that still run prefect code (flow-run processes a
    stopped worker left behind in their own session)."""
    def alive() -> list[int]:
        return [p for p in pids if not _is_zombie(p) and "prefect" in " ".join(_cmdline(p))]

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        left = alive()
        if not left:
            return
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        end = time.monotonic() + 10.0
        while alive() and time.monotonic() < end:
            for p in left:
                _try_waitpid(p)
            time.sleep(0.1)


def _stop_process(pid: int, role: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM a ``prefect <role> start`` process (its own session leader), wait, then
    SIGKILL it and whatever is left of its process group and descendants (flow runs,
    server services). Returns True if something was running."""
    if not _is_prefect(pid, role):
        return False
    try:
        pgid = os.getpgid(pid)
    except OSError:
        pgid = 0
    descendants = _descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_prefect(pid, role) and time.monotonic() < deadline:
        _try_waitpid(pid)
        time.sleep(0.1)
    if _is_prefect(pid, role):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # leftovers in the group (a flow run the worker started, server subprocesses)
    if pgid and pgid == pid:
        members = _group_members(pgid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not members:
                break
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, sig)
            end = time.monotonic() + 5.0
            while members and time.monotonic() < end:
                for member in members:
                    _try_waitpid(member)
                members = _group_members(pgid)
                time.sleep(0.05)
    _kill_leftovers(descendants)
    _try_waitpid(pid)
    return True


def _try_waitpid(pid: int) -> None:
    """Reap ``pid`` if it is our child (the process that called ``up`` may call
    ``down``); ignore it otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _prefect_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def _spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    with open(log, "ab") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fh,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return proc.pid


def _run_cli(argv: list[str], env: dict[str, str], cwd: Path,
             timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"`{' '.join(argv[2:])}` failed: {exc}") from exc


# --------------------------------------------------------------------------- environment


def _base_env(paths: _Paths, settings: Settings) -> dict[str, str]:
    """Environment for every Prefect subprocess: private PREFECT_HOME, offline, quiet."""
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "CLIPFORGE_HOME": str(paths.home),
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("PREFECT_PROFILE", None)
    # flow runs must see the same services as this call, not the caller's env vars
    for key, value in (("CLIPFORGE_DATABASE_URL", settings.database_url),
                       ("CLIPFORGE_REDIS_URL", settings.redis_url)):
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def _client_env(paths: _Paths, settings: Settings, api_url: str) -> dict[str, str]:
    env = _base_env(paths, settings)
    env["PREFECT_API_URL"] = api_url
    for key in ("PREFECT_API_DATABASE_CONNECTION_URL", "PREFECT_SERVER_DATABASE_CONNECTION_URL"):
        env.pop(key, None)
    return env


# --------------------------------------------------------------------------- database


def prefect_database_url(database_url: str, database: str = PREFECT_DATABASE) -> str:
    """The ``postgresql+asyncpg`` URL of ``database`` on the server of a libpq DSN.

    A Unix-socket host (``host=/dir``) goes into the query string, which SQLAlchemy's
    asyncpg dialect passes to ``asyncpg.connect``.
    """
    try:
        params = psycopg2.extensions.parse_dsn(database_url)
    except psycopg2.ProgrammingError as exc:
        raise ServiceError(f"cannot parse the PostgreSQL DSN {redact(database_url)}: {exc}"
                           ) from exc
    host = params.get("host") or None
    port = params.get("port") or None
    query: dict[str, str] = {}
    if host and host.startswith("/"):
        query["host"] = host
        if port:
            query["port"] = str(port)
        host, port = None, None
    url = URL.create(
        "postgresql+asyncpg",
        username=params.get("user") or None,
        password=params.get("password") or None,
        host=host,
        port=int(port) if port else None,
        database=database,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def _ensure_database(database_url: str, name: str = PREFECT_DATABASE) -> None:
    try:
        conn = psycopg2.connect(database_url, connect_timeout=10)
    except psycopg2.Error as exc:
        raise ServiceError(f"cannot reach PostgreSQL at {redact(database_url)}: {exc}") from exc
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                try:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg2.errors.DuplicateDatabase:
                    pass  # created concurrently
                except psycopg2.Error as exc:
                    raise ServiceError(
                        f"cannot create the database {name!r} for the Prefect server on "
                        f"{redact(database_url)}: {str(exc).strip()}; remedy: create it, "
                        "or set PREFECT_API_DATABASE_CONNECTION_URL"
                    ) from exc
    finally:
        conn.close()


# --------------------------------------------------------------------------- HTTP


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        resp = httpx.get(f"{api_url}/health", timeout=timeout)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


def _port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as uvicorn does: a port with only TIME_WAIT connections left is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pick_port(requested: int | None, previous: int | None, host: str = LOOPBACK) -> int:
    if requested:
        if not _port_free(requested, host):
            raise ServiceError(f"port {requested} on 127.0.0.1 is taken; remedy: pick another "
                               f"with --port or {PORT_ENV}")
        return requested
    env_port = os.environ.get(PORT_ENV)
    if env_port:
        try:
            return _pick_port(int(env_port), None, host)
        except ValueError:
            raise ServiceError(f"{PORT_ENV}={env_port!r} is not a port number") from None
    for candidate in (previous, DEFAULT_PORT):
        if candidate and _port_free(candidate, host):
            return candidate
    return free_port()


def _work_pool_status(api_url: str) -> str | None:
    try:
        resp = httpx.get(f"{api_url}/work_pools/{WORK_POOL}", timeout=5.0)
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        return None
    return str(resp.json().get("status") or "")


# --------------------------------------------------------------------------- steps


def _local_host(listen: str) -> str:
    """The address this machine's own clients use for a server bound to ``listen``."""
    return LOOPBACK if listen in WILDCARD_HOSTS else listen


def public_api_url(listen: str, port: int) -> str:
    """The API URL for other machines: the bound address, or this host's name when the
    server listens on every interface."""
    host = socket.getfqdn() if listen in WILDCARD_HOSTS else listen
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/api"


def _start_server(paths: _Paths, settings: Settings, port: int, db_url: str,
                  with_metrics: bool, listen: str = LOOPBACK) -> int:
    env = _base_env(paths, settings)
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = db_url
    env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    env["PREFECT_SERVER_METRICS_ENABLED"] = "true" if with_metrics else "false"
    env["PREFECT_UI_API_URL"] = (f"http://{LOOPBACK}:{port}/api" if listen == LOOPBACK
                                 else public_api_url(listen, port))
    argv = _prefect_argv("server", "start", "--host", listen or "0.0.0.0",
                         "--port", str(port), "--analytics-off")
    pid = _spawn(argv, env, paths.server_log, paths.home)
    paths.server_pid.write_text(f"{pid}\n")
    api_url = f"http://{_local_host(listen)}:{port}/api"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not _healthy(api_url):
        if not _is_prefect(pid, "server"):
            _try_waitpid(pid)
            raise ServiceError(
                f"the Prefect server exited during start-up; log {paths.server_log}: "
                f"{_tail(paths.server_log)}"
            )
        if time.monotonic() > deadline:
            _stop_process(pid, "server")
            raise ServiceError(
                f"the Prefect server did not answer {api_url}/health within "
                f"{SERVER_START_TIMEOUT_S:.0f}s; log {paths.server_log}: "
                f"{_tail(paths.server_log)}"
            )
        time.sleep(0.25)
    return pid


def _ensure_work_pool(env: dict[str, str], api_url: str) -> bool:
    """Create the process work pool unless it exists; True if created."""
    if _work_pool_status(api_url) is not None:
        return False
    proc = _run_cli(_prefect_argv("work-pool", "create", WORK_POOL, "--type", "process"),
                    env, REPO_ROOT)
    if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
        raise ServiceError(f"`prefect work-pool create {WORK_POOL}` failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-800:]}")
    return proc.returncode == 0


HEAVY_LIMIT = 2  # heavy task runs (decode/ASR/render) at once on this server


def _ensure_heavy_limit(env: dict[str, str]) -> None:
    """A tag concurrency limit on heavy stages, so queued runs do not oversubscribe CPUs."""
    from tasks.policy import HEAVY_TAG

    proc = _run_cli(_prefect_argv("concurrency-limit", "create", HEAVY_TAG, str(HEAVY_LIMIT)),
                    env, REPO_ROOT)
    if proc.returncode != 0 and "already exists" not in proc.stdout + proc.stderr:
        raise ServiceError(f"`prefect concurrency-limit create {HEAVY_TAG}` failed: "
                           f"{(proc.stderr or proc.stdout).strip()[-800:]}")


def _deploy(env: dict[str, str]) -> None:
    if not PREFECT_FILE.exists():
        raise ServiceError(f"{PREFECT_FILE} is missing: `clipforge up` deploys from a "
                           "clipforge checkout")
    proc = _run_cli(
        _prefect_argv("--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)),
        env, REPO_ROOT,
    )
    if proc.returncode != 0:
        raise ServiceError("`prefect deploy --all` failed: "
                           f"{(proc.stdout + proc.stderr).strip()[-1500:]}")


def worker_name(index: int) -> str:
    """The name worker ``index`` (1-based) registers in the pool (unique per host)."""
    base = f"clipforge-{socket.gethostname()}"
    return base if index == 1 else f"{base}-{index}"


def _start_worker(paths: _Paths, settings: Settings, api_url: str, index: int = 1,
                  extra_env: dict[str, str] | None = None, limit: int | None = None) -> int:
    env = _client_env(paths, settings, api_url)
    env["PREFECT_LOGGING_LEVEL"] = "INFO"  # flow-run logs reach the UI
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "5")
    env.update(extra_env or {})
    pid_file, log = paths.worker_files(index)
    argv = _prefect_argv("worker", "start", "--pool", WORK_POOL, "--type", "process",
                         "--name", worker_name(index))
    if limit is not None:
        argv += ["--limit", str(limit)]
    pid = _spawn(argv, env, log, REPO_ROOT)
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


def _wait_workers_ready(paths: _Paths, pids: dict[int, int], api_url: str) -> bool:
    """Until the pool is READY and every one of ``pids`` ({index: pid}) is ONLINE."""
    names = {worker_name(i) for i in pids}
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _work_pool_status(api_url) == "READY" and names <= online_workers(api_url):
            return True
        for index, pid in pids.items():
            if not _is_prefect(pid, "worker"):
                _try_waitpid(pid)
                log = paths.worker_files(index)[1]
                raise ServiceError(f"Prefect worker {index} exited during start-up; log "
                                   f"{log}: {_tail(log)}")
        time.sleep(0.25)
    return False


def _shared_results_mode(requested: str | None) -> str | None:
    """``"redis"`` or None, from the argument or ``CLIPFORGE_SHARED_RESULTS``."""
    from flows import runners  # imports prefect: only when asked

    raw = requested if requested is not None else os.environ.get(runners.SHARED_RESULTS_ENV)
    return "redis" if runners.shared_results_enabled(
        {runners.SHARED_RESULTS_ENV: raw or ""}) else None


def _shared_results_env(env: dict[str, str], redis_url: str) -> dict[str, str]:
    """Save the Redis result-storage block on the server; the workers' extra env."""
    from flows import runners

    proc = _run_cli([sys.executable, "-m", "flows.runners", "save-results-block", redis_url],
                    env, REPO_ROOT)
    if proc.returncode != 0:
        raise ServiceError("saving the Redis result storage block failed: "
                           f"{(proc.stdout + proc.stderr).strip()[-800:]}")
    return runners.shared_results_env(redis_url)


def _stop_workers(paths: _Paths, keep: int = 0) -> list[str]:
    """Stop every worker with an index above ``keep`` (all by default), highest first;
    remove their pid files. Returns what was stopped (``prefect-worker``,
    ``prefect-worker-2``, ...)."""
    stopped = []
    for index, pid_file in reversed(paths.worker_pid_files()):
        if index <= keep:
            continue
        pid = _read_pid(pid_file)
        if pid and _stop_process(pid, "worker"):
            stopped.append("prefect-worker" if index == 1 else f"prefect-worker-{index}")
        pid_file.unlink(missing_ok=True)
    return sorted(stopped, key=lambda name: int(name.rpartition("-")[2])
                  if name[-1].isdigit() else 1)


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
    paths = _Paths(_home(settings))
    with _locked(paths):
        paths.prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
        urls = ensure_services(settings)
        db_url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or \
            os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
        if not db_url:
            _ensure_database(urls.database_url)
            db_url = prefect_database_url(urls.database_url)
        state = _read_state(paths)

        server_pid = _read_pid(paths.server_pid)
        api_url = state.get("api_url")
        reused_server = bool(
            api_url and _is_prefect(server_pid, "server") and _healthy(api_url)
            and state.get("metrics") == with_metrics and (port in (None, state.get("port")))
            and state.get("listen", LOOPBACK) == listen
        )
        if not reused_server:
            if _is_prefect(server_pid, "server"):  # unhealthy or reconfigured: restart
                _stop_workers(paths)
                assert server_pid is not None
                _stop_process(server_pid, "server")
            prev = state.get("port")
            chosen = _pick_port(port, prev if isinstance(prev, int) else None,
                                _local_host(listen))
            server_pid = _start_server(paths, settings, chosen, db_url, with_metrics, listen)
            api_url = f"http://{_local_host(listen)}:{chosen}/api"
            state = {"api_url": api_url, "port": chosen, "listen": listen,
                     "public_api_url": public_api_url(listen, chosen)}
        assert api_url is not None and server_pid is not None
        state.update({
            "api_url": api_url, "ui_url": api_url.removesuffix("/api"),
            "server_pid": server_pid, "metrics": with_metrics,
            "prefect_home": str(paths.prefect_home),
            "server_log": str(paths.server_log), "worker_log": str(paths.worker_log),
            "database_url": redact(db_url), "repo": str(REPO_ROOT),
        })
        _write_state(paths, state)

        env = _client_env(paths, settings, api_url)
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
        _stop_workers(paths, keep=workers if (reused_server and same_mode) else 0)
        pids: dict[int, int] = {}
        reused: list[bool] = []
        for index in range(1, workers + 1):
            pid_file, _log = paths.worker_files(index)
            pid = _read_pid(pid_file)
            if reused_server and same_mode and _is_prefect(pid, "worker"):
                assert pid is not None
                reused.append(True)
            else:
                _stop_process(pid or 0, "worker")
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
        _write_state(paths, state)
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
    paths = _Paths(_home(settings))
    stopped: list[str] = []
    if not any(p.exists() for p in (paths.state, paths.server_pid, paths.worker_pid)) \
            and not paths.worker_pid_files():
        return stop_services(settings) if services else stopped
    with _locked(paths):
        state = _read_state(paths)
        stopped.extend(_stop_workers(paths))
        # a worker recorded in the state whose pid file is gone
        recorded = state.get("worker_pids") or [state.get("worker_pid")]
        for pid in recorded:
            if isinstance(pid, int) and _stop_process(pid, "worker") \
                    and "prefect-worker" not in stopped:
                stopped.insert(0, "prefect-worker")
        server_pid = _read_pid(paths.server_pid) or state.get("server_pid")
        if isinstance(server_pid, int) and _stop_process(server_pid, "server"):
            stopped.append("prefect-server")
        paths.server_pid.unlink(missing_ok=True)
        if state:
            state.pop("worker_pid", None)
            state.pop("worker_pids", None)
            state.pop("server_pid", None)
            _write_state(paths, state)  # keeps the port so the next `up` reuses it
    if services:
        stopped.extend(stop_services(settings))
    return stopped


def status(settings: Settings) -> dict[str, Any]:
    """What ``up`` recorded and whether each part is alive now."""
    paths = _Paths(_home(settings))
    state = _read_state(paths)
    api_url = state.get("api_url")
    return {
        **state,
        "server_running": _is_prefect(_read_pid(paths.server_pid), "server"),
        "server_healthy": bool(api_url) and _healthy(str(api_url)),
        "worker_running": _is_prefect(_read_pid(paths.worker_pid), "worker"),
        "workers_running": [
            _read_pid(f) for _, f in paths.worker_pid_files()
            if _is_prefect(_read_pid(f), "worker")
        ],
    }
