"""PostgreSQL plumbing: a bounded connection pool and the numbered migrations.

- :class:`BoundedPool` wraps psycopg2's ``ThreadedConnectionPool`` with a semaphore so
  callers wait (up to ``acquire_timeout``) instead of getting ``PoolError``, and drops
  connections broken by a server restart, retrying the operation once.
- Migrations are ``sql/NNN_*.sql`` applied in order, each once, recorded in
  ``schema_migrations``, under a transaction-scoped advisory lock.

The stores (``clipforge.store.JobStore``, ``clipforge.clip_store.ClipStore``) hold the SQL.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool
from psycopg2.extensions import connection as Conn

from clipforge.errors import ServiceError

# Installed: the migrations ship inside the package (clipforge/sql); in a checkout they
# are the repository's sql/ folder.
_PACKAGED_SQL = Path(__file__).resolve().parent / "sql"
_CHECKOUT_SQL = Path(__file__).resolve().parent.parent / "sql"
SQL_DIR = _PACKAGED_SQL if _PACKAGED_SQL.is_dir() else _CHECKOUT_SQL
MIGRATION_RE = re.compile(r"^(\d{3})_[A-Za-z0-9_]+\.sql$")
MIGRATION_LOCK_KEY = 0x636C6970666F7267 & 0x7FFFFFFFFFFFFFFF  # "clipforg"
BROKEN = (psycopg2.OperationalError, psycopg2.InterfaceError)

T = TypeVar("T")


def redact(dsn: str) -> str:
    """The DSN without a password, for error messages."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn)


class BoundedPool:
    """A thread-safe connection pool where callers wait for a free connection.

    At most ``maxconn`` connections exist; ``minconn`` are opened at once; idle
    connections (up to ``maxconn``) are kept for reuse.
    """

    def __init__(self, minconn: int, maxconn: int, dsn: str, *,
                 acquire_timeout: float = 30.0, reconnect_timeout: float = 15.0) -> None:
        if maxconn < 1 or not 0 <= minconn <= maxconn:
            raise ValueError(f"need 0 <= minconn <= maxconn >= 1, got {minconn}, {maxconn}")
        self.dsn = dsn
        self.maxconn = maxconn
        self.acquire_timeout = acquire_timeout
        self.reconnect_timeout = reconnect_timeout
        self._sem = threading.BoundedSemaphore(maxconn)
        try:
            self._pool = psycopg2.pool.ThreadedConnectionPool(minconn, maxconn, dsn)
        except psycopg2.Error as exc:
            raise self._unreachable(exc) from exc
        # psycopg2 closes idle connections beyond minconn on putconn; keep them warm.
        self._pool.minconn = maxconn

    def _unreachable(self, exc: BaseException) -> ServiceError:
        return ServiceError(
            f"cannot reach PostgreSQL at {redact(self.dsn)}: "
            f"{str(exc).strip() or type(exc).__name__}; remedy: start it "
            "(`clipforge services start`) or fix CLIPFORGE_DATABASE_URL"
        )

    def getconn(self) -> Conn:
        """Take a connection, waiting up to ``acquire_timeout`` for a free one."""
        if not self._sem.acquire(timeout=self.acquire_timeout):
            raise ServiceError(
                f"PostgreSQL connection pool exhausted after {self.acquire_timeout:g}s: all "
                f"{self.maxconn} connections stayed busy; remedy: raise "
                "CLIPFORGE_DB_POOL_MAX or CLIPFORGE_DB_ACQUIRE_TIMEOUT_S, or find the "
                "caller holding connections"
            )
        try:
            conn: Conn = self._connect()
            if conn.closed:  # dropped while idle: replace it
                self._pool.putconn(conn, close=True)
                conn = self._connect()
        except BaseException:
            self._sem.release()
            raise
        return conn

    def _connect(self) -> Conn:
        """``getconn`` that rides out a server restart: a refused or shutting-down
        server is retried with backoff for up to ``reconnect_timeout`` seconds."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.05
        while True:
            try:
                conn: Conn = self._pool.getconn()
                return conn
            except psycopg2.pool.PoolError:
                raise
            except psycopg2.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise self._unreachable(exc) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except psycopg2.Error as exc:
                raise self._unreachable(exc) from exc

    def putconn(self, conn: Conn, *, close: bool = False) -> None:
        """Give a connection back (``close=True`` discards it); frees a slot."""
        try:
            self._pool.putconn(conn, close=close or bool(conn.closed))
        finally:
            self._sem.release()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection for one transaction: commit on success, roll back on error.

        The connection is pinged (``SELECT 1``) on checkout; if that finds it broken (the
        server restarted) it is discarded and replaced once by a fresh one. A connection
        that breaks inside the block is discarded and the error propagates: use
        :meth:`run` to retry the work itself.
        """
        conn = self.getconn()
        try:  # pre-ping: a server restart leaves pooled connections dead
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except BROKEN:
            self.putconn(conn, close=True)
            self._discard_idle()  # the others came from the same dead server
            conn = self.getconn()
        try:
            yield conn
            conn.commit()
        except BaseException:
            broken = bool(conn.closed)  # e.g. the server went away mid-block
            if not broken:
                with contextlib.suppress(psycopg2.Error):
                    conn.rollback()
            self.putconn(conn, close=broken)
            raise
        self.putconn(conn)

    def run(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn(conn)`` in one transaction; if the connection turns out broken (the
        server restarted) before commit, discard it and run ``fn`` once more on a fresh
        connection; a deadlock/serialisation victim is also retried once. A connection
        lost during COMMIT is not retried (the outcome is unknown)."""
        for attempt in (1, 2):
            conn = self.getconn()
            stage = "work"
            try:
                result = fn(conn)
                stage = "commit"
                conn.commit()
            except BROKEN as exc:
                lost = bool(conn.closed)
                if not lost:
                    with contextlib.suppress(psycopg2.Error):
                        conn.rollback()
                self.putconn(conn, close=lost)
                if lost:
                    self._discard_idle()  # the others came from the same dead server
                retryable = lost or isinstance(exc, psycopg2.extensions.TransactionRollbackError)
                if retryable and stage == "work" and attempt == 1:
                    continue  # server restarted (or deadlock victim): once more, fresh
                if lost and stage == "commit":
                    raise ServiceError(
                        f"PostgreSQL connection lost during COMMIT ({exc}); the transaction "
                        "may or may not have been applied; remedy: check the job row and "
                        "retry"
                    ) from exc
                if lost:
                    raise self._unreachable(exc) from exc
                raise
            except BaseException:
                if conn.closed:
                    self.putconn(conn, close=True)
                else:
                    with contextlib.suppress(psycopg2.Error):
                        conn.rollback()
                    self.putconn(conn)
                raise
            self.putconn(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _discard_idle(self) -> None:
        """Close every idle pooled connection (after one was found dead, e.g. a server
        restart), so that a retry gets a fresh connection."""
        pool = self._pool
        with pool._lock:
            idle, pool._pool = list(pool._pool), []
        for conn in idle:
            with contextlib.suppress(psycopg2.Error):
                conn.close()

    def close(self) -> None:
        if not self._pool.closed:
            self._pool.closeall()


# --------------------------------------------------------------------------- migrations


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[str, Path]]:
    """``[(version, path)]`` sorted; version is the file stem, e.g. ``001_jobs``."""
    found: dict[str, Path] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        m = MIGRATION_RE.match(path.name)
        if not m:
            raise ValueError(f"migration {path} is not named NNN_name.sql")
        if m.group(1) in found:
            raise ValueError(f"two migrations numbered {m.group(1)}: {found[m.group(1)]}, {path}")
        found[m.group(1)] = path
    return [(p.stem, p) for _, p in sorted(found.items())]


def _migrate(conn: Conn, sql_dir: Path) -> list[str]:
    applied: list[str] = []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, path in migration_files(sql_dir):
            if version in done:
                continue
            cur.execute(path.read_text())  # no parameters: '%' needs no escaping
            cur.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, now())",
                (version,),
            )
            applied.append(version)
    return applied


# --------------------------------------------------------------------------- job store

