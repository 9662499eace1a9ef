"""The job backlog in ``video_job``: enqueue, claim (FOR UPDATE SKIP LOCKED), start."""

from __future__ import annotations

from typing import Any

from .store import JobStore


def enqueue(
    store: JobStore,
    *,
    job_key: str,
    prompt: str,
    source: str,
    parameters: dict[str, Any],
    priority: int = 0,
    output_dir: str | None = None,
) -> int:
    """Add a queued job; a worker (the nightly backlog flow) runs it later."""
    return store.create_job(
        job_key=job_key,
        prompt=prompt,
        source=source,
        parameters=parameters,
        status="queued",
        priority=priority,
        output_dir=output_dir,
    )


def claim_next(store: JobStore) -> dict[str, Any] | None:
    """Atomically take the next queued job (priority, then age) and mark it running.

    ``FOR UPDATE SKIP LOCKED`` lets any number of workers claim concurrently without
    taking the same job twice or waiting on each other.
    """

    def work(conn: Any) -> dict[str, Any] | None:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE video_job SET status = 'running', started_at = now()"
                " WHERE id = (SELECT id FROM video_job WHERE status = 'queued'"
                "             ORDER BY priority DESC, created_at, id"
                "             FOR UPDATE SKIP LOCKED LIMIT 1)"
                " RETURNING id"
            )
            row = cur.fetchone()
        return {"id": int(row[0])} if row else None

    claimed = store.pool.run(work)
    return store.get_job(claimed["id"]) if claimed else None


def mark_running(store: JobStore, job_id: int) -> None:
    """A job row handed to a flow (claimed, or resumed) becomes running again."""

    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE video_job SET status = 'running',"
                " started_at = COALESCE(started_at, now()), finished_at = NULL,"
                " error_code = NULL, error = NULL WHERE id = %s",
                (job_id,),
            )
            if cur.rowcount != 1:
                raise ValueError(f"no job {job_id}")

    store.pool.run(work)


def queue_length(store: JobStore) -> int:
    def work(conn: Any) -> int:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM video_job WHERE status = 'queued'")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    return int(store.pool.run(work))


def set_runner(store: JobStore, job_id: int, runner: str) -> None:
    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE video_job SET runner = %s WHERE id = %s", (runner, job_id))

    store.pool.run(work)


def get_runner(store: JobStore, job_id: int) -> str | None:
    def work(conn: Any) -> str | None:
        with conn.cursor() as cur:
            cur.execute("SELECT runner FROM video_job WHERE id = %s", (job_id,))
            row = cur.fetchone()
        return str(row[0]) if row and row[0] else None

    return store.pool.run(work)


def this_runner() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def runner_alive(runner: str | None) -> bool:
    """Whether the process that ran a job is still alive (only knowable on this host)."""
    import os
    import socket

    if not runner or ":" not in runner:
        return False
    host, _, pid_s = runner.rpartition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    pid = int(pid_s)
    if pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError, PermissionError):
        return False
