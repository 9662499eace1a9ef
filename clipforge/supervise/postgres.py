"""The private PostgreSQL cluster: layout, initdb, start, stop, ``pg_ctl``, databases.

A cluster with ``listen_addresses=''`` and trust auth on the local socket only. Run as
root, it lives under ``/var/lib/postgresql/clipforge/<name>/`` (owned by the
``postgres`` user, 0700) and the server runs as ``postgres``; otherwise under
``<home>/postgres``. The root cluster is outside the home, so deleting a home does not
delete it: ``<name>`` is ``<hash>-<random>``, recorded in ``<home>/services.json`` when
the cluster is made, and a new home at the same path gets a new, empty cluster rather than
the data of the one that was deleted. ``<hash>`` (see :mod:`clipforge.supervise.paths`)
picks the port number, which, with no TCP listener, only names the socket file (in the
cluster's own ``run`` folder as root). Callers hold the services lock
(:mod:`clipforge.supervise.services`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
import psycopg2.errors
from psycopg2 import sql

from clipforge.config import Settings
from clipforge.db import redact
from clipforge.errors import ServiceError
from clipforge.supervise import paths
from clipforge.supervise.proc import (
    POLL_S,
    pid_alive,
    read_json,
    read_pid,
    tail,
    wait_gone,
    write_json,
)

PG_DATABASE = "clipforge"
PG_SYSTEM_USER = "postgres"
PG_ROOT_BASE = Path("/var/lib/postgresql/clipforge")
PG_CONF_MARKER = "# --- clipforge: private server, Unix socket only ---"
PG_LIB_DIR = Path("/usr/lib/postgresql")  # Debian: <major>/bin/{initdb,pg_ctl,postgres}
PG_START_TIMEOUT_S = 30.0
PG_STOP_TIMEOUT_S = 30.0
PG_APT = "apt-get install postgresql"
# a root cluster's folder name: <hash>-<random>, or <hash> alone (made before the random part)
_CLUSTER_NAME = re.compile(r"[0-9a-f]{12}(-[0-9a-f]{16})?")


@dataclass(frozen=True)
class PgLayout:
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


def _port(digest: str) -> int:
    return 20000 + int(digest[:8], 16) % 30000


def _root_cluster_name(settings: Settings, digest: str, *, create: bool) -> str | None:
    """The folder name of the home's cluster under :data:`PG_ROOT_BASE`, from the
    ``cluster_dir`` that ``services.json`` records. None when it records none (and
    ``create`` is False); with ``create`` a new name is chosen and recorded."""
    state_path = paths.state_file(settings)
    state = read_json(state_path)
    recorded = state.get("postgresql")
    cluster_dir = recorded.get("cluster_dir") if isinstance(recorded, dict) else None
    if cluster_dir is not None:
        path = Path(str(cluster_dir))
        if (path.parent != PG_ROOT_BASE or not _CLUSTER_NAME.fullmatch(path.name)
                or not path.name.startswith(digest)):
            raise ServiceError(
                f"{state_path} names the PostgreSQL cluster {str(cluster_dir)[:80]!r}, which "
                f"is not one of this home's ({PG_ROOT_BASE}/{digest}-<16 hex digits>); "
                f"remedy: restore the file, or remove {state_path} (the home then gets a new, "
                "empty database)"
            )
        return path.name
    if not create:
        return None
    name = f"{digest}-{secrets.token_hex(8)}"
    state["postgresql"] = {"cluster_dir": str(PG_ROOT_BASE / name)}
    state_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(state_path, state)  # before initdb: an interrupted start keeps its name
    return name


def pg_layout(settings: Settings, *, create: bool = False) -> PgLayout:
    """Where the private cluster of ``settings.home`` lives. Nothing is created unless
    ``create``; then, as root, the home's cluster name is chosen and recorded (before
    that, the layout names a cluster that does not exist)."""
    digest = paths.home_hash(settings)
    if os.geteuid() == 0:
        name = _root_cluster_name(settings, digest, create=create) or f"{digest}-unset"
        cluster = PG_ROOT_BASE / name
        return PgLayout(cluster, cluster / "data", cluster / "run", cluster / "postgres.log",
                        _port(digest), PG_SYSTEM_USER, True)
    port = _port(digest)
    cluster = paths.home(settings) / "postgres"
    socket_dir = cluster / "run"
    if len(str(socket_dir / f".s.PGSQL.{port}.lock")) > paths.SOCKET_PATH_MAX:
        socket_dir = paths.short_dir(digest) / "pg"
    user = pwd.getpwuid(os.geteuid()).pw_name
    return PgLayout(cluster, cluster / "data", socket_dir, cluster / "postgres.log",
                    port, user, False)


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


def find_pg_bindir() -> Path:
    """The newest Debian PostgreSQL ``bin`` folder, else ``initdb``'s on PATH."""
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


def pg_pid(lay: PgLayout) -> int | None:
    """The postmaster's pid if it runs."""
    pid = read_pid(lay.data_dir / "postmaster.pid")
    return pid if pid is not None and pid_alive(pid, "postgres") else None


def _pg_connect_ok(lay: PgLayout) -> bool:
    try:
        conn = psycopg2.connect(lay.admin_dsn(), connect_timeout=2)
    except psycopg2.OperationalError:
        return False
    conn.close()
    return True


def _pg_wait_ready(lay: PgLayout, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen_pid = False
    start = time.monotonic()
    while True:
        if _pg_connect_ok(lay):
            return
        pid = read_pid(lay.data_dir / "postmaster.pid")
        if pid is not None:
            seen_pid = True
            if not pid_alive(pid, "postgres"):
                break
        elif seen_pid or time.monotonic() - start > 5.0:
            break  # the postmaster exited (or never started)
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    raise ServiceError(
        f"the private PostgreSQL in {lay.data_dir} did not become ready within {timeout:.0f}s; "
        f"log {lay.log_file}: {tail(lay.log_file)}; remedy: read the log, "
        "run `clipforge services stop`, or set CLIPFORGE_DATABASE_URL"
    )


def _pg_conf_block(lay: PgLayout) -> str:
    sock = str(lay.socket_dir).replace("'", "''")
    return (
        f"\n{PG_CONF_MARKER}\n"
        "listen_addresses = ''\n"
        f"port = {lay.port}\n"
        f"unix_socket_directories = '{sock}'\n"
        "unix_socket_permissions = 0700\n"
    )


def _pg_init(lay: PgLayout, bindir: Path) -> None:
    owner = _postgres_ids() if lay.as_postgres else None
    if lay.as_postgres:
        PG_ROOT_BASE.parent.mkdir(parents=True, exist_ok=True)
        if not PG_ROOT_BASE.exists():
            with contextlib.suppress(FileExistsError):
                paths.private_dir(PG_ROOT_BASE, owner)
    else:
        lay.cluster_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths.private_dir(lay.cluster_dir, owner)
    if lay.socket_dir.parent != lay.cluster_dir:  # the /tmp short-path fallback
        paths.private_dir(lay.socket_dir.parent)
    paths.private_dir(lay.socket_dir, owner)
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


def _pg_configure(lay: PgLayout) -> None:
    """Append the Unix-socket-only settings unless present (also repairs a cluster whose
    first start was interrupted between initdb and this step)."""
    conf = lay.data_dir / "postgresql.conf"
    if PG_CONF_MARKER not in conf.read_text():
        with open(conf, "a") as fh:
            fh.write(_pg_conf_block(lay))


def _pg_start(lay: PgLayout, bindir: Path) -> None:
    proc = _run_as_owner(
        [str(bindir / "pg_ctl"), "-D", str(lay.data_dir), "-l", str(lay.log_file), "-W",
         "start"],
        as_postgres=lay.as_postgres, check=False,
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"pg_ctl start for {lay.data_dir} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}; log {lay.log_file}: "
            f"{tail(lay.log_file)}"
        )
    _pg_wait_ready(lay, PG_START_TIMEOUT_S)


def ensure_database(dsn: str, name: str, *, connect_timeout: int = 10,
                    remedy: str = "create it, or grant CREATEDB to the user") -> bool:
    """Create database ``name`` on the server of ``dsn`` unless it exists (a concurrent
    creation is fine). Returns True if this call created it. The one place clipforge
    creates databases (its own on the private cluster, the Prefect server's)."""
    try:
        conn = psycopg2.connect(dsn, connect_timeout=connect_timeout)
    except psycopg2.Error as exc:
        raise ServiceError(f"cannot reach PostgreSQL at {redact(dsn)}: {exc}") from exc
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is not None:
                return False
            try:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.errors.DuplicateDatabase:
                return False  # created concurrently
            except psycopg2.Error as exc:
                raise ServiceError(
                    f"cannot create the database {name!r} on {redact(dsn)}: "
                    f"{str(exc).strip()}; remedy: {remedy}"
                ) from exc
            return True
    finally:
        conn.close()


def ensure_postgres(settings: Settings,
                    record: Callable[[dict[str, str]], None] | None = None) -> str:
    """Initialise, configure and start (or reuse) the private cluster; create the
    ``clipforge`` database; return its DSN. ``record`` gets the layout (for the state
    file) before the server starts."""
    bindir = find_pg_bindir()
    lay = pg_layout(settings, create=True)
    _pg_init(lay, bindir)
    _pg_configure(lay)
    if record is not None:
        record({
            "cluster_dir": str(lay.cluster_dir), "data_dir": str(lay.data_dir),
            "socket_dir": str(lay.socket_dir), "log_file": str(lay.log_file),
            "port": str(lay.port), "user": str(lay.user), "bindir": str(bindir),
            "run_as": PG_SYSTEM_USER if lay.as_postgres else lay.user, "url": lay.dsn,
        })
    if pg_pid(lay) is not None:
        _pg_wait_ready(lay, PG_START_TIMEOUT_S)  # running (maybe still starting): reuse
    else:
        # a crash leaves postmaster.pid naming a dead pid: remove it (we hold the lock)
        # so that the readiness poll below only ever sees the new postmaster's pid
        (lay.data_dir / "postmaster.pid").unlink(missing_ok=True)
        _pg_start(lay, bindir)
    ensure_database(lay.admin_dsn(), PG_DATABASE, connect_timeout=5)
    return lay.dsn


def stop_postgres(settings: Settings) -> bool:
    """Stop the private cluster (fast, then immediate); True if it was running."""
    lay = pg_layout(settings)
    pid = pg_pid(lay)
    if pid is None:
        return False
    pg_ctl_bin = str(find_pg_bindir() / "pg_ctl")
    _run_as_owner([pg_ctl_bin, "-D", str(lay.data_dir), "-m", "fast", "-W", "stop"],
                  as_postgres=lay.as_postgres, check=False)
    if wait_gone(pid, "postgres", PG_STOP_TIMEOUT_S):
        return True
    _run_as_owner([pg_ctl_bin, "-D", str(lay.data_dir), "-m", "immediate", "-W", "stop"],
                  as_postgres=lay.as_postgres, check=False)
    if not wait_gone(pid, "postgres", PG_STOP_TIMEOUT_S):
        raise ServiceError(f"the private PostgreSQL (pid {pid}) did not stop; remedy: kill {pid}")
    return True


def pg_ctl(settings: Settings, *args: str) -> str:
    """Run ``pg_ctl -D <data> -l <log> <args>`` on the private cluster (as ``postgres``
    when root); for operators and tests, e.g. ``pg_ctl(s, "-m", "fast", "restart")``."""
    lay = pg_layout(settings)
    argv = [str(find_pg_bindir() / "pg_ctl"), "-D", str(lay.data_dir), "-l",
            str(lay.log_file), *args]
    return _run_as_owner(argv, as_postgres=lay.as_postgres).stdout
