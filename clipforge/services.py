"""Private PostgreSQL and Redis servers for a single-command install.

With no ``CLIPFORGE_DATABASE_URL`` / ``CLIPFORGE_REDIS_URL``, clipforge starts its own
servers from the system binaries, listening on Unix sockets only:

- PostgreSQL: a cluster with ``listen_addresses=''`` and trust auth on the local socket
  only. Run as root, the cluster lives under
  ``/var/lib/postgresql/clipforge/<hash>/`` (owned by the ``postgres`` user, 0700) and the
  server runs as ``postgres``; otherwise under ``<home>/postgres``.
- Redis: ``redis-server`` with ``port 0`` on ``<home>/redis/redis.sock``.

``<hash>`` is a short hash of the resolved ``settings.home``; it also picks the port
number (which, with no TCP listener, only names the socket file). Socket paths that
would be too long for ``sun_path`` fall back to ``/tmp/clipforge-<hash>/``. Where
everything lives is recorded in ``<home>/services.json``. Concurrent callers serialise
on an ``fcntl.flock`` of ``<home>/services.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from clipforge.config import Settings
from clipforge.errors import ServiceError

PG_DATABASE = "clipforge"
PG_SYSTEM_USER = "postgres"
PG_ROOT_BASE = Path("/var/lib/postgresql/clipforge")
PG_CONF_MARKER = "# --- clipforge: private server, Unix socket only ---"
PG_LIB_DIR = Path("/usr/lib/postgresql")  # Debian: <major>/bin/{initdb,pg_ctl,postgres}
REDIS_FALLBACK = Path("/usr/bin/redis-server")
POLL_S = 0.02  # readiness polls; never sleep longer than 50 ms per poll
PG_START_TIMEOUT_S = 30.0
PG_STOP_TIMEOUT_S = 30.0
REDIS_START_TIMEOUT_S = 10.0
REDIS_STOP_TIMEOUT_S = 10.0
SOCKET_PATH_MAX = 100  # sun_path is 108 bytes including the NUL; keep a margin
PG_APT = "apt-get install postgresql"
REDIS_APT = "apt-get install redis-server"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    redis_url: str


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _PgLayout:
    cluster_dir: Path  # removed by purge_services
    data_dir: Path
    socket_dir: Path
    log_file: Path
    port: int
    user: str  # database superuser, also the OS user running the server
    as_postgres: bool  # True when euid == 0: run the server as the postgres user

    @property
    def dsn(self) -> str:
        host = quote(str(self.socket_dir), safe="/")
        user = quote(self.user, safe="")
        return f"postgresql:///{PG_DATABASE}?host={host}&port={self.port}&user={user}"

    def admin_dsn(self) -> str:
        return f"dbname=postgres host={self.socket_dir} port={self.port} user={self.user}"


@dataclass(frozen=True)
class _RedisLayout:
    dir: Path
    socket: Path
    pid_file: Path
    log_file: Path
    conf_file: Path

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def _home(settings: Settings) -> Path:
    return Path(settings.home).expanduser().resolve()


def _hash(settings: Settings) -> str:
    return hashlib.sha256(str(_home(settings)).encode()).hexdigest()[:12]


def _port(digest: str) -> int:
    return 20000 + int(digest[:8], 16) % 30000


def _is_root() -> bool:
    return os.geteuid() == 0


def _short_dir(digest: str) -> Path:
    return Path(f"/tmp/clipforge-{digest}")


def _pg_layout(settings: Settings) -> _PgLayout:
    digest = _hash(settings)
    port = _port(digest)
    if _is_root():
        cluster = PG_ROOT_BASE / digest
        return _PgLayout(cluster, cluster / "data", cluster / "run", cluster / "postgres.log",
                         port, PG_SYSTEM_USER, True)
    cluster = _home(settings) / "postgres"
    socket_dir = cluster / "run"
    if len(str(socket_dir / f".s.PGSQL.{port}.lock")) > SOCKET_PATH_MAX:
        socket_dir = _short_dir(digest) / "pg"
    user = pwd.getpwuid(os.geteuid()).pw_name
    return _PgLayout(cluster, cluster / "data", socket_dir, cluster / "postgres.log",
                     port, user, False)


def _redis_layout(settings: Settings) -> _RedisLayout:
    d = _home(settings) / "redis"
    sock = d / "redis.sock"
    if len(str(sock)) > SOCKET_PATH_MAX:
        sock = _short_dir(_hash(settings)) / "redis.sock"
    return _RedisLayout(d, sock, d / "redis.pid", d / "redis.log", d / "redis.conf")


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(home / "services.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _postgres_ids() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise ServiceError(
            f"cannot start the private PostgreSQL as root: there is no '{PG_SYSTEM_USER}' "
            f"system user to run it (PostgreSQL refuses to run as root); remedy: {PG_APT} "
            "(creates the user), or set CLIPFORGE_DATABASE_URL to an existing server"
        ) from None
    return pw.pw_uid, pw.pw_gid


def _private_dir(path: Path, owner: tuple[int, int] | None = None) -> None:
    """Create ``path`` (0700, owned by ``owner`` or the caller) or check an existing one.

    Never changes permissions of a parent directory.
    """
    uid, gid = owner if owner else (os.geteuid(), os.getegid())
    try:
        path.mkdir(mode=0o700)
        if owner:
            os.chown(path, uid, gid)
        os.chmod(path, 0o700)
        return
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise ServiceError(
            f"private directory {path} exists but is not a 0700 directory owned by uid {uid} "
            f"(mode {oct(st.st_mode & 0o7777)}, uid {st.st_uid}); it may belong to someone "
            f"else; remedy: remove {path} or set CLIPFORGE_HOME to another directory"
        )


def _find_pg_bindir() -> Path:
    candidates = []
    for p in PG_LIB_DIR.glob("*/bin"):
        if (p / "pg_ctl").exists() and (p / "initdb").exists() and p.parent.name.isdigit():
            candidates.append(p)
    if candidates:
        return max(candidates, key=lambda p: int(p.parent.name))
    initdb = shutil.which("initdb")
    if initdb and (Path(initdb).parent / "pg_ctl").exists():
        return Path(initdb).parent
    raise ServiceError(
        "cannot start the private PostgreSQL: initdb/pg_ctl not found in "
        f"{PG_LIB_DIR}/*/bin or on PATH; remedy: {PG_APT}, "
        "or set CLIPFORGE_DATABASE_URL to an existing server"
    )


def _find_redis_server() -> str:
    path = shutil.which("redis-server") or (
        str(REDIS_FALLBACK) if os.access(REDIS_FALLBACK, os.X_OK) else None
    )
    if not path:
        raise ServiceError(
            "cannot start the private Redis: redis-server not found on PATH; "
            f"remedy: {REDIS_APT}, or set CLIPFORGE_REDIS_URL to an existing server"
        )
    return path


def _run_as_owner(argv: list[str], *, as_postgres: bool, timeout: float = 60.0,
                  check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as the ``postgres`` user when we are root."""
    if as_postgres:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        argv = [runuser, "-u", PG_SYSTEM_USER, "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, cwd="/", env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"running {argv[0]} failed: {exc}") from exc
    if check and proc.returncode != 0:
        raise ServiceError(
            f"{' '.join(argv)} exited with {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-800:]}"
        )
    return proc


def _pid_alive(pid: int, comm_prefix: str) -> bool:
    """True if ``pid`` runs a program named ``comm_prefix``* and is not a zombie (a
    daemon that exited waits for init to reap it, which can take a second here)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm = stat_line[stat_line.find("(") + 1 : stat_line.rfind(")")]
    state = stat_line[stat_line.rfind(")") + 2 :][:1]
    return comm.startswith(comm_prefix) and state not in ("Z", "X", "")


def _read_pid(path: Path) -> int | None:
    try:
        first = path.read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:])


def _state_file(settings: Settings) -> Path:
    return _home(settings) / "services.json"


def _read_state(settings: Settings) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_state_file(settings).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_state(settings: Settings, key: str, value: dict[str, str]) -> None:
    state = _read_state(settings)
    state[key] = value
    path = _state_file(settings)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_pid(lay: _PgLayout) -> int | None:
    pid = _read_pid(lay.data_dir / "postmaster.pid")
    if pid is not None and _pid_alive(pid, "postgres"):
        return pid
    return None


def _pg_connect_ok(lay: _PgLayout) -> bool:
    try:
        conn = psycopg2.connect(lay.admin_dsn(), connect_timeout=2)
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def _pg_wait_ready(lay: _PgLayout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen_pid = False
    start = time.monotonic()
    while True:
        if _pg_connect_ok(lay):
            return
        pid_file = lay.data_dir / "postmaster.pid"
        pid = _read_pid(pid_file)
        if pid is not None:
            seen_pid = True
            if not _pid_alive(pid, "postgres"):
                break
        elif seen_pid or time.monotonic() - start > 5.0:
            break  # the postmaster exited (or never started)
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    raise ServiceError(
        f"the private PostgreSQL in {lay.data_dir} did not become ready within {timeout:.0f}s; "
        f"log {lay.log_file}: {_tail(lay.log_file)}; remedy: read the log, "
        "run `clipforge services stop`, or set CLIPFORGE_DATABASE_URL"
    )


def _pg_conf_block(lay: _PgLayout) -> str:
    sock = str(lay.socket_dir).replace("'", "''")
    return (
        f"\n{PG_CONF_MARKER}\n"
        "listen_addresses = ''\n"
        f"port = {lay.port}\n"
        f"unix_socket_directories = '{sock}'\n"
        "unix_socket_permissions = 0700\n"
    )


def _pg_init(lay: _PgLayout, bindir: Path) -> None:
    owner = _postgres_ids() if lay.as_postgres else None
    if lay.as_postgres:
        PG_ROOT_BASE.parent.mkdir(parents=True, exist_ok=True)
        if not PG_ROOT_BASE.exists():
            with contextlib.suppress(FileExistsError):
                _private_dir(PG_ROOT_BASE, owner)
    else:
        lay.cluster_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _private_dir(lay.cluster_dir, owner)
    if lay.socket_dir.parent != lay.cluster_dir:  # the /tmp short-path fallback
        _private_dir(lay.socket_dir.parent)
    _private_dir(lay.socket_dir, owner)
    if (lay.data_dir / "PG_VERSION").exists():
        version = (lay.data_dir / "PG_VERSION").read_text().strip()
        if version != bindir.parent.name and bindir.parent.name.isdigit():
            raise ServiceError(
                f"the private PostgreSQL cluster {lay.data_dir} is version {version} but the "
                f"binaries in {bindir} are version {bindir.parent.name}; remedy: install "
                f"postgresql-{version}, or remove {lay.cluster_dir} (drops its data)"
            )
        return
    if lay.data_dir.exists():  # an interrupted initdb: not a cluster, nothing to keep
        shutil.rmtree(lay.data_dir)
    _run_as_owner(
        [str(bindir / "initdb"), "-D", str(lay.data_dir), "-U", lay.user, "-E", "UTF8",
         "--locale=C", "--auth-local=trust", "--auth-host=reject", "--no-instructions"],
        as_postgres=lay.as_postgres, timeout=120,
    )


def _pg_configure(lay: _PgLayout) -> None:
    """Append the Unix-socket-only settings unless present (also repairs a cluster whose
    first start was interrupted between initdb and this step)."""
    conf = lay.data_dir / "postgresql.conf"
    if PG_CONF_MARKER not in conf.read_text():
        with open(conf, "a") as fh:
            fh.write(_pg_conf_block(lay))


def _pg_start(lay: _PgLayout, bindir: Path) -> None:
    proc = _run_as_owner(
        [str(bindir / "pg_ctl"), "-D", str(lay.data_dir), "-l", str(lay.log_file), "-W",
         "start"],
        as_postgres=lay.as_postgres, check=False,
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"pg_ctl start for {lay.data_dir} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}; log {lay.log_file}: "
            f"{_tail(lay.log_file)}"
        )
    _pg_wait_ready(lay, PG_START_TIMEOUT_S)


def _pg_create_db(lay: _PgLayout) -> None:
    conn = psycopg2.connect(lay.admin_dsn(), connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE " + PG_DATABASE)  # constant identifier
    finally:
        conn.close()


def _ensure_postgres(settings: Settings) -> str:
    bindir = _find_pg_bindir()
    lay = _pg_layout(settings)
    _pg_init(lay, bindir)
    _pg_configure(lay)
    _write_state(settings, "postgresql", {
        "cluster_dir": str(lay.cluster_dir), "data_dir": str(lay.data_dir),
        "socket_dir": str(lay.socket_dir), "log_file": str(lay.log_file),
        "port": str(lay.port), "user": str(lay.user), "bindir": str(bindir),
        "run_as": PG_SYSTEM_USER if lay.as_postgres else lay.user, "url": lay.dsn,
    })
    if _pg_pid(lay) is not None:
        _pg_wait_ready(lay, PG_START_TIMEOUT_S)  # running (maybe still starting): reuse
    else:
        # a crash leaves postmaster.pid naming a dead pid: remove it (we hold the lock)
        # so that the readiness poll below only ever sees the new postmaster's pid
        (lay.data_dir / "postmaster.pid").unlink(missing_ok=True)
        _pg_start(lay, bindir)
    _pg_create_db(lay)
    return lay.dsn


def _stop_postgres(settings: Settings) -> bool:
    lay = _pg_layout(settings)
    pid = _pg_pid(lay)
    if pid is None:
        return False
    bindir = _find_pg_bindir()
    pg_ctl = str(bindir / "pg_ctl")
    _run_as_owner([pg_ctl, "-D", str(lay.data_dir), "-m", "fast", "-W", "stop"],
                  as_postgres=lay.as_postgres, check=False)
    if _wait_gone(pid, "postgres", PG_STOP_TIMEOUT_S):
        return True
    _run_as_owner([pg_ctl, "-D", str(lay.data_dir), "-m", "immediate", "-W", "stop"],
                  as_postgres=lay.as_postgres, check=False)
    if not _wait_gone(pid, "postgres", PG_STOP_TIMEOUT_S):
        raise ServiceError(f"the private PostgreSQL (pid {pid}) did not stop; remedy: kill {pid}")
    return True


def _pg_ctl(settings: Settings, *args: str) -> str:
    """Run ``pg_ctl -D <data> -l <log> <args>`` on the private cluster (as ``postgres``
    when root); for operators and tests, e.g. ``_pg_ctl(s, "-m", "fast", "restart")``."""
    lay = _pg_layout(settings)
    pg_ctl = str(_find_pg_bindir() / "pg_ctl")
    argv = [pg_ctl, "-D", str(lay.data_dir), "-l", str(lay.log_file), *args]
    return _run_as_owner(argv, as_postgres=lay.as_postgres).stdout


def _wait_gone(pid: int, comm: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid, comm):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


# --------------------------------------------------------------------------- Redis


def _redis_quote(value: Path) -> str:
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ServiceError(f"path {text!r} contains a newline; set CLIPFORGE_HOME to a plain path")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _redis_client(lay: _RedisLayout, timeout: float) -> redis.Redis:
    # no retries: a refused connection or a server going away must fail at once here
    return redis.Redis(unix_socket_path=str(lay.socket), socket_timeout=timeout,
                       socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))


def _redis_ping(lay: _RedisLayout) -> bool:
    client = _redis_client(lay, 1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _redis_pid(lay: _RedisLayout) -> int | None:
    pid = _read_pid(lay.pid_file)
    if pid is not None and _pid_alive(pid, "redis-server"):
        return pid
    return None


def _ensure_redis(settings: Settings) -> str:
    lay = _redis_layout(settings)
    _private_dir(lay.dir)
    if lay.socket.parent != lay.dir:
        _private_dir(lay.socket.parent)
    _write_state(settings, "redis", {
        "dir": str(lay.dir), "socket": str(lay.socket), "pid_file": str(lay.pid_file),
        "log_file": str(lay.log_file), "url": lay.url,
    })
    pid = _redis_pid(lay)
    if pid is not None:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if _redis_ping(lay):
                return lay.url
            time.sleep(POLL_S)
        raise ServiceError(
            f"the private Redis (pid {pid}) is running but does not answer PING on "
            f"{lay.socket}; log {lay.log_file}: {_tail(lay.log_file)}; "
            "remedy: `clipforge services stop`, then retry"
        )
    server = _find_redis_server()
    for stale in (lay.pid_file, lay.socket):  # a crashed server leaves these behind
        stale.unlink(missing_ok=True)
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
            f"redis-server exited with {rc}: {_tail(out)} {_tail(lay.log_file)}; "
            "remedy: read the log, or set CLIPFORGE_REDIS_URL"
        )
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while True:
        if _redis_ping(lay):
            return lay.url
        pid = _read_pid(lay.pid_file)
        if (pid is not None and not _pid_alive(pid, "redis-server")) or \
                time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    raise ServiceError(
        f"the private Redis did not answer PING on {lay.socket} within "
        f"{REDIS_START_TIMEOUT_S:.0f}s; log {lay.log_file}: {_tail(lay.log_file)}; "
        "remedy: read the log, or set CLIPFORGE_REDIS_URL"
    )


def _stop_redis(settings: Settings) -> bool:
    lay = _redis_layout(settings)
    pid = _redis_pid(lay)
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
    if not _wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, "redis-server", REDIS_STOP_TIMEOUT_S)
    lay.pid_file.unlink(missing_ok=True)
    lay.socket.unlink(missing_ok=True)
    return True


# --------------------------------------------------------------------------- public API


def ensure_services(settings: Settings) -> ServiceUrls:
    """Return the URLs to use: ``settings`` URLs win; otherwise start or reuse private
    servers under ``settings.home``. Raises ServiceError with a remedy."""
    if settings.database_url and settings.redis_url:
        return ServiceUrls(settings.database_url, settings.redis_url)
    with _locked(_home(settings)):
        db = settings.database_url or _ensure_postgres(settings)
        rd = settings.redis_url or _ensure_redis(settings)
    return ServiceUrls(db, rd)


def stop_services(settings: Settings) -> list[str]:
    """Stop the private servers started under ``settings.home``; return the names stopped
    (``"postgresql"``, ``"redis"``). Idempotent; never touches external servers."""
    home = _home(settings)
    if not home.exists():
        return []
    stopped = []
    with _locked(home):
        if _stop_postgres(settings):
            stopped.append("postgresql")
        if _stop_redis(settings):
            stopped.append("redis")
    return stopped


def purge_services(settings: Settings) -> list[str]:
    """Stop the private servers and delete their data and sockets (the cluster dir, the
    Redis dir, the /tmp short-socket dir, services.json). Returns the paths removed."""
    home = _home(settings)
    if not home.exists():
        return []
    removed = []
    with _locked(home):
        _stop_postgres(settings)
        _stop_redis(settings)
        pg, rd = _pg_layout(settings), _redis_layout(settings)
        for path in (pg.cluster_dir, rd.dir, _short_dir(_hash(settings)),
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
        pg = _pg_layout(settings)
        if _pg_pid(pg) is not None:
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
        rd = _redis_layout(settings)
        if _redis_pid(rd) is not None:
            status["redis"] = "running"
        elif rd.conf_file.exists():
            status["redis"] = "stopped"
        else:
            status["redis"] = "absent"
        if status["redis"] != "absent":
            status["redis_url"] = rd.url
    return status

