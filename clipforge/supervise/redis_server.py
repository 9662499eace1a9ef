"""The private Redis: ``redis-server`` with ``port 0`` on ``<home>/redis/redis.sock``.

A socket path too long for ``sun_path`` falls back to ``/tmp/clipforge-<hash>/``.
Callers hold the services lock (:mod:`clipforge.supervise.services`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.supervise import paths
from clipforge.supervise.proc import POLL_S, pid_alive, read_pid, tail, wait_gone

REDIS_FALLBACK = Path("/usr/bin/redis-server")
REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 10.0
REDIS_APT = "apt-get install redis-server"


@dataclass(frozen=True)
class RedisLayout:
    dir: Path
    socket: Path
    pid_file: Path
    log_file: Path
    conf_file: Path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def redis_layout(settings: Settings) -> RedisLayout:
    """Where the private Redis of ``settings.home`` lives (nothing is created)."""
    d = paths.home(settings) / "redis"
    sock = d / "redis.sock"
    if len(str(sock)) > paths.SOCKET_PATH_MAX:
        sock = paths.short_dir(paths.home_hash(settings)) / "redis.sock"
    return RedisLayout(d, sock, d / "redis.pid", d / "redis.log", d / "redis.conf")


def find_redis_server() -> str:
    path = shutil.which("redis-server") or (
        str(REDIS_FALLBACK) if os.access(REDIS_FALLBACK, os.X_OK) else None
    )
    if not path:
        raise ServiceError(
            "cannot start the private Redis: redis-server not found on PATH; "
            f"remedy: {REDIS_APT}, or set CLIPFORGE_REDIS_URL to an existing server"
        )
    return path


def _redis_quote(value: Path) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ServiceError(f"path {text!r} contains a newline; set CLIPFORGE_HOME to a plain path")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redis_client(lay: RedisLayout, timeout: float) -> redis.Redis:
    # no retries: a refused connection or a server going away must fail at once here
    return redis.Redis(unix_socket_path=str(lay.socket), socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _redis_ping(lay: RedisLayout) -> bool:
    client = _redis_client(lay, 1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redis_pid(lay: RedisLayout) -> int | None:
    """The private server's pid if it runs."""
    pid = read_pid(lay.pid_file)
    return pid if pid is not None and pid_alive(pid, "redis-server") else None


def _write_conf(lay: RedisLayout) -> None:
    lay.conf_file.write_text(
        "# written by clipforge: private Redis, Unix socket only\n"
        "port 0\n"
        f"unixsocket {_redis_quote(lay.socket)}\n"
        "unixsocketperm 700\n"
        'save ""\n'
        "appendonly no\n"
        "daemonize yes\n"
        f"pidfile {_redis_quote(lay.pid_file)}\n"
        f"logfile {_redis_quote(lay.log_file)}\n"
        f"dir {_redis_quote(lay.dir)}\n"
    )


def ensure_redis(settings: Settings,
                 record: Callable[[dict[str, str]], None] | None = None) -> str:
    """Start (or reuse) the private Redis and return its URL. ``record`` gets the layout
    (for the state file) before the server starts."""
    lay = redis_layout(settings)
    paths.private_dir(lay.dir)
    if lay.socket.parent != lay.dir:
        paths.private_dir(lay.socket.parent)
    if record is not None:
        record({"dir": str(lay.dir), "socket": str(lay.socket), "pid_file": str(lay.pid_file),
                "log_file": str(lay.log_file), "url": lay.url})
    pid = redis_pid(lay)
    if pid is not None:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _redis_ping(lay):
                return lay.url
            time.sleep(POLL_S)
        raise ServiceError(
            f"the private Redis (pid {pid}) is running but does not answer PING on "
            f"{lay.socket}; log {lay.log_file}: {tail(lay.log_file)}; "
            "remedy: `clipforge services stop`, then retry"
        )
    server = find_redis_server()
    for stale in (lay.pid_file, lay.socket):  # a crashed server leaves these behind
        stale.unlink(missing_ok=True)
    _write_conf(lay)
    out = lay.dir / "redis-start.out"
    with open(out, "w") as fh:
        try:
            rc = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [server, str(lay.conf_file)], cwd=lay.dir, stdin=subprocess.DEVNULL,
                stdout=fh, stderr=subprocess.STDOUT, timeout=REDIS_START_TIMEOUT_S, check=False,
            ).returncode
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"starting {server} failed: {exc}; remedy: {REDIS_APT}") from exc
    if rc != 0:
        raise ServiceError(
            f"redis-server exited with {rc}: {tail(out)} {tail(lay.log_file)}; "
            "remedy: read the log, or set CLIPFORGE_REDIS_URL"
        )
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while True:
        if _redis_ping(lay):
            return lay.url
        pid = read_pid(lay.pid_file)
        if (pid is not None and not pid_alive(pid, "redis-server")) or \
                time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    raise ServiceError(
        f"the private Redis did not answer PING on {lay.socket} within "
        f"{REDIS_START_TIMEOUT_S:.0f}s; log {lay.log_file}: {tail(lay.log_file)}; "
        "remedy: read the log, or set CLIPFORGE_REDIS_URL"
    )


def stop_redis(settings: Settings) -> bool:
    """SHUTDOWN NOSAVE, then SIGTERM, then SIGKILL; True if it was running."""
    lay = redis_layout(settings)
    pid = redis_pid(lay)
    if pid is None:
        lay.socket.unlink(missing_ok=True)
        return False
    client = _redis_client(lay, 2.0)
    try:
        client.shutdown(nosave=True)
    except (redis.RedisError, OSError):
        pass
    finally:
        client.close()
    if not wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S)
    lay.pid_file.unlink(missing_ok=True)
    lay.socket.unlink(missing_ok=True)
    return True
