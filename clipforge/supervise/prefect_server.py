"""The Prefect server of the local production stack: paths, state, environment,
database URL, start, health, port choice, and stopping Prefect processes.

``prefect server start`` runs on ``127.0.0.1:<port>`` in the background (own session),
``PREFECT_HOME=<home>/prefect``, log ``<home>/prefect-server.log``, pid file
``<home>/prefect-server.pid``, on a database ``prefect`` in the clipforge PostgreSQL
server (``postgresql+asyncpg``). State: ``<home>/prefect-stack.json``; calls serialise on
``fcntl.flock`` of ``<home>/prefect-stack.lock``. Never imports prefect: it drives the
``prefect`` CLI. The work pool, deployments and workers: :mod:`.prefect_stack`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions

from clipforge.config import Settings
from clipforge.db import redact
from clipforge.errors import ServiceError
from clipforge.supervise import paths as _home_paths
from clipforge.supervise.postgres import ensure_database
from clipforge.supervise.prefect_procs import (
    CLIENT_RETRY_ENV,
    CLIENT_RETRY_EXTRA_CODES,
    is_prefect,
    prefect_argv,
    spawn,
    stop_process,
)
from clipforge.supervise.proc import (
    LOOPBACK,
    free_port,
    http_ok,
    locked,
    pid_alive,
    port_free,
    read_json,
    read_pid,
    tail,
    try_waitpid,
    write_json,
)
from clipforge.supervise.services import ensure_services

# a checkout: deployments/prefect.yaml sits beside the clipforge package
REPO_ROOT = _home_paths.REPO_ROOT
PREFECT_DATABASE = "prefect"
DEFAULT_PORT = 4200
PORT_ENV = "CLIPFORGE_PREFECT_PORT"
SERVER_START_TIMEOUT_S = 120.0
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # bind addresses meaning every interface
TAIL_LINES = 20


# --------------------------------------------------------------------------- paths, state


class Paths:
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

    @classmethod
    def of(cls, settings: Settings) -> Paths:
        return cls(_home_paths.home(settings))


@contextlib.contextmanager
def lock(paths: Paths) -> Iterator[None]:
    """Serialise stack operations of one home."""
    with locked(paths.lock):
        yield


def read_state(paths: Paths) -> dict[str, Any]:
    return read_json(paths.state)


def write_state(paths: Paths, state: dict[str, Any]) -> None:
    write_json(paths.state, state)


def log_tail(path: Path) -> str:
    return tail(path, TAIL_LINES)


# --------------------------------------------------------------------------- environment


def base_env(paths: Paths, settings: Settings) -> dict[str, str]:
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
    env.setdefault(CLIENT_RETRY_ENV, CLIENT_RETRY_EXTRA_CODES)
    # flow runs must see the same services as this call, not the caller's env vars
    for key, value in (("CLIPFORGE_DATABASE_URL", settings.database_url),
                       ("CLIPFORGE_REDIS_URL", settings.redis_url)):
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def client_env(paths: Paths, settings: Settings, api_url: str) -> dict[str, str]:
    env = base_env(paths, settings)
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
    from sqlalchemy.engine import URL  # only when starting a server (it imports slowly)

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



def prefect_db_url(database_url: str) -> str:
    """The Prefect server's database: ``PREFECT_API_DATABASE_CONNECTION_URL`` (or the
    ``SERVER`` spelling) from the environment, else the ``prefect`` database on the
    clipforge PostgreSQL server (created if missing)."""
    env_url = os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL") or \
        os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    if env_url:
        return env_url
    ensure_database(database_url, PREFECT_DATABASE,
                    remedy="create it, or set PREFECT_API_DATABASE_CONNECTION_URL")
    return prefect_database_url(database_url)


# --------------------------------------------------------------------------- server


def healthy(api_url: str, timeout: float = 2.0) -> bool:
    """True if the Prefect API at ``api_url`` answers ``/health``."""
    return http_ok(f"{api_url}/health", timeout)


def pick_port(requested: int | None, previous: int | None, host: str = LOOPBACK) -> int:
    if requested:
        if not port_free(requested, host):
            raise ServiceError(f"port {requested} on 127.0.0.1 is taken; remedy: pick another "
                               f"with --port or {PORT_ENV}")
        return requested
    env_port = os.environ.get(PORT_ENV)
    if env_port:
        try:
            return pick_port(int(env_port), None, host)
        except ValueError:
            raise ServiceError(f"{PORT_ENV}={env_port!r} is not a port number") from None
    for candidate in (previous, DEFAULT_PORT):
        if candidate and port_free(candidate, host):
            return candidate
    return free_port()


def local_host(listen: str) -> str:
    """The address this machine's own clients use for a server bound to ``listen``."""
    return LOOPBACK if listen in WILDCARD_HOSTS else listen


def public_api_url(listen: str, port: int) -> str:
    """The API URL for other machines: the bound address, or this host's name when the
    server listens on every interface."""
    host = socket.getfqdn() if listen in WILDCARD_HOSTS else listen
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/api"


def start_server(paths: Paths, settings: Settings, port: int, db_url: str,
                  with_metrics: bool, listen: str = LOOPBACK) -> int:
    env = base_env(paths, settings)
    env.pop("PREFECT_API_URL", None)
    env.pop("PREFECT_SERVER_DATABASE_CONNECTION_URL", None)
    env["PREFECT_API_DATABASE_CONNECTION_URL"] = db_url
    env.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    env["PREFECT_SERVER_METRICS_ENABLED"] = "true" if with_metrics else "false"
    env["PREFECT_UI_API_URL"] = (f"http://{LOOPBACK}:{port}/api" if listen == LOOPBACK
                                 else public_api_url(listen, port))
    argv = prefect_argv("server", "start", "--host", listen or "0.0.0.0",
                         "--port", str(port), "--analytics-off")
    pid = spawn(argv, env, paths.server_log, paths.home)
    paths.server_pid.write_text(f"{pid}\n")
    api_url = f"http://{local_host(listen)}:{port}/api"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while not healthy(api_url):
        # alive, not "is a prefect server": between fork and exec the child still shows
        # its parent's command line, a window a loaded machine makes long
        if not pid_alive(pid):
            try_waitpid(pid)
            raise ServiceError(
                f"the Prefect server exited during start-up; log {paths.server_log}: "
                f"{log_tail(paths.server_log)}"
            )
        if time.monotonic() > deadline:
            stop_process(pid, "server")
            raise ServiceError(
                f"the Prefect server did not answer {api_url}/health within "
                f"{SERVER_START_TIMEOUT_S:.0f}s; log {paths.server_log}: "
                f"{log_tail(paths.server_log)}"
            )
        time.sleep(0.25)
    return pid


# --------------------------------------------------------------------------- lifecycle


def stop_workers(paths: Paths, keep: int = 0) -> list[str]:
    """Stop every worker with an index above ``keep`` (all by default), highest first;
    remove their pid files. Returns what was stopped (``prefect-worker``,
    ``prefect-worker-2``, ...)."""
    stopped = []
    for index, pid_file in reversed(paths.worker_pid_files()):
        if index <= keep:
            continue
        pid = read_pid(pid_file)
        if pid and stop_process(pid, "worker"):
            stopped.append("prefect-worker" if index == 1 else f"prefect-worker-{index}")
        pid_file.unlink(missing_ok=True)
    return sorted(stopped, key=lambda name: int(name.rpartition("-")[2])
                  if name[-1].isdigit() else 1)


def server_step(paths: Paths, settings: Settings, db_url: str, *, port: int | None = None,
                with_metrics: bool = False, listen: str = LOOPBACK,
                match_config: bool = True) -> tuple[dict[str, Any], bool]:
    """Reuse the recorded server if it is healthy (and, with ``match_config``, has the
    asked metrics/port/listen settings), else (re)start it; record it in the state file.
    Call under :func:`lock`. Returns (state, reused)."""
    paths.prefect_home.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = read_state(paths)
    server_pid = read_pid(paths.server_pid)
    api_url = state.get("api_url")
    same_config = (state.get("metrics") == with_metrics and port in (None, state.get("port"))
                   and state.get("listen", LOOPBACK) == listen)
    reused = bool(api_url and is_prefect(server_pid, "server") and healthy(api_url)
                  and (same_config or not match_config))
    if reused and not match_config:
        return state, True
    if not reused:
        if is_prefect(server_pid, "server"):  # unhealthy or reconfigured: restart
            stop_workers(paths)  # a worker whose server is gone hangs on SIGTERM
            assert server_pid is not None
            stop_process(server_pid, "server")
        prev = state.get("port")
        host = local_host(listen)
        chosen = pick_port(port, prev if isinstance(prev, int) else None, host)
        try:
            server_pid = start_server(paths, settings, chosen, db_url, with_metrics, listen)
        except ServiceError:
            # another server took the port between the check and the bind (two homes
            # starting at once): a port nobody asked for is retried once on a free one
            if port is not None or os.environ.get(PORT_ENV) or port_free(chosen, host):
                raise
            chosen = free_port(host)
            server_pid = start_server(paths, settings, chosen, db_url, with_metrics, listen)
        api_url = f"http://{local_host(listen)}:{chosen}/api"
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
    write_state(paths, state)
    return state, reused


def ensure_server(settings: Settings) -> str:
    """The API URL of this home's Prefect server, started on the clipforge PostgreSQL if
    it does not run (no work pool or workers: ``clipforge up`` adds those). A healthy
    server is reused whatever ``up`` configured it with."""
    paths = Paths.of(settings)
    with lock(paths):
        state = read_state(paths)
        api_url = state.get("api_url")
        if api_url and is_prefect(read_pid(paths.server_pid), "server") and healthy(api_url):
            return str(api_url)
        urls = ensure_services(settings)
        prev_listen = state.get("listen")
        state, _ = server_step(paths, settings, prefect_db_url(urls.database_url),
                               with_metrics=bool(state.get("metrics", False)),
                               listen=prev_listen if isinstance(prev_listen, str) else LOOPBACK,
                               match_config=False)
        return str(state["api_url"])


def stop_server(settings: Settings) -> list[str]:
    """Stop every worker, then the Prefect server (``prefect-worker``...,
    ``prefect-server``); idempotent. The state keeps the port for the next start."""
    paths = Paths.of(settings)
    stopped: list[str] = []
    if not any(p.exists() for p in (paths.state, paths.server_pid, paths.worker_pid)) \
            and not paths.worker_pid_files():
        return stopped
    with lock(paths):
        state = read_state(paths)
        stopped.extend(stop_workers(paths))
        # a worker recorded in the state whose pid file is gone
        recorded = state.get("worker_pids") or [state.get("worker_pid")]
        for pid in recorded:
            if isinstance(pid, int) and stop_process(pid, "worker") \
                    and "prefect-worker" not in stopped:
                stopped.insert(0, "prefect-worker")
        server_pid = read_pid(paths.server_pid) or state.get("server_pid")
        if isinstance(server_pid, int) and stop_process(server_pid, "server"):
            stopped.append("prefect-server")
        paths.server_pid.unlink(missing_ok=True)
        if state:
            state.pop("worker_pid", None)
            state.pop("worker_pids", None)
            state.pop("server_pid", None)
            write_state(paths, state)  # keeps the port so the next `up` reuses it
    return stopped
