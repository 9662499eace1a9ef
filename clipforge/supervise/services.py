"""Private PostgreSQL and Redis servers for a single-command install.

With no ``CLIPFORGE_DATABASE_URL`` / ``CLIPFORGE_REDIS_URL``, clipforge starts its own
servers from the system binaries, listening on Unix sockets only
(:mod:`~clipforge.supervise.postgres`, :mod:`~clipforge.supervise.redis_server`).
Where everything lives is recorded in ``<home>/services.json``. Concurrent callers
serialise on an ``fcntl.flock`` of ``<home>/services.lock``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clipforge.config import Settings
from clipforge.supervise import paths
from clipforge.supervise.postgres import ensure_postgres, pg_layout, pg_pid, stop_postgres
from clipforge.supervise.proc import locked, read_json, write_json
from clipforge.supervise.redis_server import ensure_redis, redis_layout, redis_pid, stop_redis


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


def _state_file(settings: Settings) -> Path:
    return paths.state_file(settings)


def _lock_file(settings: Settings) -> Path:
    return paths.home(settings) / "services.lock"


def _recorder(settings: Settings, key: str) -> Callable[[dict[str, str]], None]:
    """Records ``key`` in services.json (where a server lives, before it starts)."""

    def record(value: dict[str, str]) -> None:
        state = read_json(_state_file(settings))
        state[key] = value
        write_json(_state_file(settings), state)
    return record


def ensure_services(settings: Settings) -> ServiceUrls:
    """Return the URLs to use: ``settings`` URLs win; otherwise start or reuse private
    servers under ``settings.home``. Raises ServiceError with a remedy."""
    if settings.database_url and settings.redis_url:
        return ServiceUrls(settings.database_url, settings.redis_url)
    with locked(_lock_file(settings)):
        db = settings.database_url or ensure_postgres(settings,
                                                      _recorder(settings, "postgresql"))
        rd = settings.redis_url or ensure_redis(settings, _recorder(settings, "redis"))
    return ServiceUrls(db, rd)


def stop_services(settings: Settings) -> list[str]:
    """Stop the private servers started under ``settings.home``; return the names stopped
    (``"postgresql"``, ``"redis"``). Idempotent; never touches external servers."""
    if not paths.home(settings).exists():
        return []
    stopped = []
    with locked(_lock_file(settings)):
        if stop_postgres(settings):
            stopped.append("postgresql")
        if stop_redis(settings):
            stopped.append("redis")
    return stopped


def purge_services(settings: Settings) -> list[str]:
    """Stop the private servers and delete their data and sockets (the cluster dir, the
    Redis dir, the /tmp short-socket dir, services.json). Returns the paths removed."""
    home = paths.home(settings)
    if not home.exists():
        return []
    removed = []
    with locked(_lock_file(settings)):
        stop_postgres(settings)
        stop_redis(settings)
        pg, rd = pg_layout(settings), redis_layout(settings)
        for path in (pg.cluster_dir, rd.dir, paths.short_dir(paths.home_hash(settings)),
                     _state_file(settings)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                removed.append(str(path))
            elif path.exists() and path.parent == home:
                path.unlink()
                removed.append(str(path))
    return removed


def services_status(settings: Settings) -> dict[str, str]:
    """``{"postgresql": state, "redis": state, ...}`` where state is ``external``,
    ``running``, ``stopped`` or ``absent`` (never initialised); the ``*_url`` keys give
    the URL of a private server that exists."""
    status: dict[str, str] = {}
    if settings.database_url:
        status["postgresql"] = "external"
    else:
        pg = pg_layout(settings)
        if pg_pid(pg) is not None:
            status["postgresql"] = "running"
        elif (pg.data_dir / "PG_VERSION").exists():
            status["postgresql"] = "stopped"
        else:
            status["postgresql"] = "absent"
        if status["postgresql"] != "absent":
            status["postgresql_url"] = pg.dsn
    if settings.redis_url:
        status["redis"] = "external"
    else:
        rd = redis_layout(settings)
        if redis_pid(rd) is not None:
            status["redis"] = "running"
        elif rd.conf_file.exists():
            status["redis"] = "stopped"
        else:
            status["redis"] = "absent"
        if status["redis"] != "absent":
            status["redis_url"] = rd.url
    return status
