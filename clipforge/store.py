"""The job store: ``video_job`` rows, their ``job_checkpoint`` rows and the backlog.

Every query is parameterised. The pool and the migrations are in :mod:`clipforge.db`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from psycopg2.extensions import connection as Conn
from psycopg2.extras import Json

from clipforge.checkpoints import STAGES
from clipforge.config import Settings
from clipforge.db import (  # noqa: F401 - re-exported: callers know them as store.X
    SQL_DIR,
    BoundedPool,
    _migrate,
    migration_files,
    redact,
)

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "budget_exceeded")
FINAL_STATUSES = ("succeeded", "failed", "budget_exceeded")


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
