"""The job store: the one module that talks to PostgreSQL.

- :class:`BoundedPool` wraps psycopg2's ``ThreadedConnectionPool`` with a semaphore so
  callers wait (up to ``acquire_timeout``) instead of getting ``PoolError``, and drops
  connections broken by a server restart, retrying the operation once.
- Migrations are ``sql/NNN_*.sql`` applied in order, each once, recorded in
  ``schema_migrations``, under a transaction-scoped advisory lock.
- :class:`JobStore` holds ``video_job`` rows and their ``job_checkpoint`` rows. All SQL
  is parameterised.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.pool
from psycopg2.extensions import connection as Conn
from psycopg2.extras import Json

from clipforge.checkpoints import STAGES
from clipforge.config import Settings
from clipforge.errors import ServiceError

# Installed: the migrations ship inside the package (clipforge/sql); in a checkout they
# are the repository's sql/ folder.
_PACKAGED_SQL = Path(__file__).resolve().parent / "sql"
_CHECKOUT_SQL = Path(__file__).resolve().parent.parent / "sql"
SQL_DIR = _PACKAGED_SQL if _PACKAGED_SQL.is_dir() else _CHECKOUT_SQL
MIGRATION_RE = re.compile(r"^(\d{3})_[A-Za-z0-9_]+\.sql$")
MIGRATION_LOCK_KEY = 0x636C6970666F7267 & 0x7FFFFFFFFFFFFFFF  # "clipforg"
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "budget_exceeded")
FINAL_STATUSES = ("succeeded", "failed", "budget_exceeded")
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

_SELECT_JOB = (
    "SELECT id, job_key, status, checkpoint, prompt, source, source_sha256, parameters,"
    " priority, error_code, error, source_duration, processing_seconds, cost_usd, output_dir,"
    " created_at, started_at, finished_at FROM video_job"
)
_JOB_KEYS = tuple(
    c.strip() for c in _SELECT_JOB.removeprefix("SELECT ").split(" FROM ")[0].split(",")
)


def _job_row(row: tuple[Any, ...]) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for key, value in zip(_JOB_KEYS, row, strict=True):
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = float(value)
        job[key] = value
    return job


class JobStore:
    """Jobs and their stage checkpoints in PostgreSQL."""

    def __init__(self, dsn: str, *, maxconn: int = 4, acquire_timeout: float = 30.0,
                 sql_dir: Path = SQL_DIR) -> None:
        self.sql_dir = sql_dir
        self.pool = BoundedPool(1, maxconn, dsn, acquire_timeout=acquire_timeout)

    @classmethod
    def from_settings(cls, settings: Settings, dsn: str) -> JobStore:
        """A store sized by ``settings.db_pool_max`` / ``db_acquire_timeout_s``; ``dsn``
        is ``ensure_services(settings).database_url``."""
        return cls(dsn, maxconn=settings.db_pool_max,
                   acquire_timeout=settings.db_acquire_timeout_s)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the versions applied now (``[]`` if none)."""
        return self.pool.run(lambda conn: _migrate(conn, self.sql_dir))

    def create_job(self, *, job_key: str, prompt: str, source: str, parameters: dict[str, Any],
                   status: str = "running", source_sha256: str | None = None,
                   output_dir: str | None = None, priority: int = 0) -> int:
        if status not in ("queued", "running"):
            raise ValueError(f"a new job is 'queued' or 'running', not {status!r}")

        def work(conn: Conn) -> int:
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO video_job (job_key, status, prompt, source, source_sha256,"
                    " parameters, priority, output_dir, started_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                    " CASE WHEN %s = 'running' THEN now() END)"
                    " RETURNING id",
                    (job_key, status, prompt, source, source_sha256, Json(parameters),
                     priority, output_dir, status),
                )
                row = cur.fetchone()
                assert row is not None
                return int(row[0])

        return self.pool.run(work)

    def record_checkpoint(self, job_id: int, stage: str, seconds: float | None = None,
                          detail: dict[str, Any] | None = None) -> None:
        """Upsert the stage's row in job_checkpoint and set video_job.checkpoint."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")

        def work(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.execute("UPDATE video_job SET checkpoint = %s WHERE id = %s RETURNING id",
                            (stage, job_id))
                if cur.fetchone() is None:
                    raise ValueError(f"no job with id {job_id}")
                cur.execute(
                    "INSERT INTO job_checkpoint (job_id, stage, seconds, detail, reached_at)"
                    " VALUES (%s, %s, %s, %s, clock_timestamp())"
                    " ON CONFLICT (job_id, stage) DO UPDATE SET seconds = EXCLUDED.seconds,"
                    " detail = EXCLUDED.detail, reached_at = EXCLUDED.reached_at",
                    (job_id, stage, seconds, Json(detail or {})),
                )

        self.pool.run(work)

    def finish_job(self, job_id: int, *, status: str, error_code: str | None = None,
                   error: str | None = None, source_duration: float | None = None,
                   processing_seconds: float | None = None) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"a finished job is one of {FINAL_STATUSES}, not {status!r}")

        def work(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE video_job SET status = %s, error_code = %s, error = %s,"
                    " source_duration = COALESCE(%s, source_duration),"
                    " processing_seconds = COALESCE(%s, processing_seconds),"
                    " finished_at = now() WHERE id = %s RETURNING id",
                    (status, error_code, error, source_duration, processing_seconds, job_id),
                )
                if cur.fetchone() is None:
                    raise ValueError(f"no job with id {job_id}")

        self.pool.run(work)

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        def work(conn: Conn) -> dict[str, Any] | None:
            with conn.cursor() as cur:
                cur.execute(_SELECT_JOB + " WHERE id = %s", (job_id,))
                row = cur.fetchone()
                return _job_row(row) if row else None

        return self.pool.run(work)

    def list_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        def work(conn: Conn) -> list[dict[str, Any]]:
            with conn.cursor() as cur:
                cur.execute(_SELECT_JOB + " ORDER BY created_at DESC, id DESC LIMIT %s",
                            (limit,))
                return [_job_row(r) for r in cur.fetchall()]

        return self.pool.run(work)

    def checkpoints(self, job_id: int) -> list[dict[str, Any]]:
        """``[{stage, seconds, detail, reached_at}]`` in the order reached."""
        def work(conn: Conn) -> list[dict[str, Any]]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT stage, seconds, detail, reached_at FROM job_checkpoint"
                    " WHERE job_id = %s ORDER BY reached_at, stage",
                    (job_id,),
                )
                return [
                    {"stage": s, "seconds": sec, "detail": d, "reached_at": r.isoformat()}
                    for s, sec, d, r in cur.fetchall()
                ]

        return self.pool.run(work)

    def find_unfinished(self, job_key: str) -> dict[str, Any] | None:
        """The newest job with this key that is still queued or running."""
        def work(conn: Conn) -> dict[str, Any] | None:
            with conn.cursor() as cur:
                cur.execute(
                    _SELECT_JOB + " WHERE job_key = %s AND status IN ('queued', 'running')"
                    " ORDER BY created_at DESC, id DESC LIMIT 1",
                    (job_key,),
                )
                row = cur.fetchone()
                return _job_row(row) if row else None

        return self.pool.run(work)

    def add_cost(self, job_id: int, usd: float) -> float:
        """Add ``usd`` to the job's ``cost_usd`` and return the new total (the one writer
        is ``clipforge.cost.JobBudget``, via its ``record`` callback)."""
        if not usd >= 0 or usd == float("inf"):
            raise ValueError(f"a cost is a finite USD amount >= 0, got {usd!r}")

        def work(conn: Conn) -> float:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE video_job SET cost_usd = cost_usd + %s::numeric WHERE id = %s"
                    " RETURNING cost_usd",
                    (usd, job_id),
                )
                row = cur.fetchone()
                if row is None:
                    raise ValueError(f"no job with id {job_id}")
                return float(row[0])

        return self.pool.run(work)

    # ----------------------------------------------------------------- the backlog

    def claim_next(self) -> dict[str, Any] | None:
        """Atomically take the next queued job (priority, then age) and mark it running.

        ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim concurrently without
        taking the same job twice or waiting on each other.
        """

        def work(conn: Conn) -> int | None:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE video_job SET status = 'running', started_at = now()"
                    " WHERE id = (SELECT id FROM video_job WHERE status = 'queued'"
                    "             ORDER BY priority DESC, created_at, id"
                    "             FOR UPDATE SKIP LOCKED LIMIT 1)"
                    " RETURNING id"
                )
                row = cur.fetchone()
            return int(row[0]) if row else None

        claimed = self.pool.run(work)
        return self.get_job(claimed) if claimed is not None else None

    def mark_running(self, job_id: int) -> None:
        """A job row handed to a flow (claimed, or resumed) becomes running again."""

        def work(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.execute(
                    "UPDATE video_job SET status = 'running',"
                    " started_at = COALESCE(started_at, now()), finished_at = NULL,"
                    " error_code = NULL, error = NULL WHERE id = %s",
                    (job_id,),
                )
                if cur.rowcount != 1:
                    raise ValueError(f"no job {job_id}")

        self.pool.run(work)

    def queue_length(self) -> int:
        def work(conn: Conn) -> int:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM video_job WHERE status = 'queued'")
                row = cur.fetchone()
            return int(row[0]) if row else 0

        return int(self.pool.run(work))

    def backlog_times(self) -> tuple[float | None, float | None]:
        """``(newest finished_at, oldest queued created_at)`` as Unix seconds (None: none)."""

        def work(conn: Conn) -> tuple[float | None, float | None]:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT extract(epoch FROM (SELECT max(finished_at) FROM video_job"
                    "                            WHERE finished_at IS NOT NULL)),"
                    "       extract(epoch FROM (SELECT min(created_at) FROM video_job"
                    "                            WHERE status = 'queued'))"
                )
                row = cur.fetchone()
            if not row:
                return None, None
            return (float(row[0]) if row[0] is not None else None,
                    float(row[1]) if row[1] is not None else None)

        return self.pool.run(work)

    def set_runner(self, job_id: int, runner: str) -> None:
        def work(conn: Conn) -> None:
            with conn.cursor() as cur:
                cur.execute("UPDATE video_job SET runner = %s WHERE id = %s", (runner, job_id))

        self.pool.run(work)

    def get_runner(self, job_id: int) -> str | None:
        def work(conn: Conn) -> str | None:
            with conn.cursor() as cur:
                cur.execute("SELECT runner FROM video_job WHERE id = %s", (job_id,))
                row = cur.fetchone()
            return str(row[0]) if row and row[0] else None

        return self.pool.run(work)
