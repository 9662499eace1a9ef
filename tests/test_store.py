"""JobStore and BoundedPool against the real private PostgreSQL."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg2
import pytest

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.store import BoundedPool, JobStore, migration_files
from clipforge.supervise import ServiceUrls, postgres


def _admin(url: str):  # type: ignore[no-untyped-def]
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def test_migrations_apply_once(job_store: JobStore) -> None:
    assert [v for v, _ in migration_files()][0] == "001_jobs"
    assert job_store.migrate() == []  # the fixture already applied everything
    with job_store.pool.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in cur.fetchall()] == [v for v, _ in migration_files()]


def test_concurrent_migrators_on_a_fresh_database(service_urls: ServiceUrls) -> None:
    admin = _admin(service_urls.database_url)
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS clipforge_migtest")
        cur.execute("CREATE DATABASE clipforge_migtest")
    url = service_urls.database_url.replace("///clipforge?", "///clipforge_migtest?")
    stores = [JobStore(url, maxconn=1) for _ in range(4)]
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def run(store: JobStore) -> None:
        try:
            applied.append(store.migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not errors
        assert sorted(applied, key=len) == [[], [], [], [v for v, _ in migration_files()]]
        assert stores[0].migrate() == []
    finally:
        for s in stores:
            s.close()
        with admin.cursor() as cur:
            cur.execute("DROP DATABASE clipforge_migtest")
        admin.close()


def test_job_lifecycle(job_store: JobStore) -> None:
    key = f"lifecycle-{time.time_ns()}"
    first = job_store.create_job(job_key=key, prompt="the part about pricing",
                                 source="/m/a.mp4", parameters={"target_s": 60},
                                 source_sha256="ab" * 32)
    job = job_store.get_job(first)
    assert job is not None
    assert job["status"] == "running" and job["started_at"] and job["finished_at"] is None
    assert job["parameters"] == {"target_s": 60} and job["cost_usd"] == 0.0
    assert job_store.find_unfinished(key)["id"] == first  # type: ignore[index]

    job_store.record_checkpoint(first, "probed", 0.4, {"duration": 447.7})
    job_store.record_checkpoint(first, "analysis_complete", 12.5)
    job_store.record_checkpoint(first, "probed", 0.5, {"duration": 447.7})  # upsert
    assert [c["stage"] for c in job_store.checkpoints(first)] == ["analysis_complete", "probed"]
    assert job_store.get_job(first)["checkpoint"] == "probed"  # type: ignore[index]

    job_store.finish_job(first, status="failed", error_code="render_failed", error="boom",
                         source_duration=447.7, processing_seconds=20.0)
    done = job_store.get_job(first)
    assert done is not None
    assert (done["status"], done["error_code"], done["error"]) == ("failed", "render_failed",
                                                                   "boom")
    assert done["source_duration"] == 447.7 and done["finished_at"]
    assert job_store.find_unfinished(key) is None

    second = job_store.create_job(job_key=key, prompt="p", source="/m/a.mp4", parameters={},
                                  status="queued")
    assert job_store.get_job(second)["started_at"] is None  # type: ignore[index]
    assert job_store.find_unfinished(key)["id"] == second  # type: ignore[index]
    ids = [j["id"] for j in job_store.list_jobs(limit=2)]
    assert ids[0] == second
    assert set(job_store.list_jobs(limit=1)[0]) >= {
        "id", "status", "checkpoint", "prompt", "source", "error_code", "error",
        "source_duration", "processing_seconds", "cost_usd", "created_at", "started_at",
        "finished_at", "parameters"}
    assert job_store.get_job(10**12) is None


def test_invalid_input_is_refused_and_leaves_the_pool_usable(job_store: JobStore) -> None:
    job_id = job_store.create_job(job_key="bad", prompt="p", source="s", parameters={})
    for _ in range(2 * job_store.pool.maxconn):
        with pytest.raises(ValueError, match="unknown stage"):
            job_store.record_checkpoint(job_id, "nonsense")
        with pytest.raises(ValueError, match="no job"):
            job_store.record_checkpoint(10**12, "probed")
        with pytest.raises(ValueError, match="finished job"):
            job_store.finish_job(job_id, status="running")
    with pytest.raises(ValueError):
        job_store.create_job(job_key="bad", prompt="p", source="s", parameters={},
                             status="succeeded")
    # parameters are data, never SQL
    evil = job_store.create_job(job_key="k'; DROP TABLE video_job; --", prompt="'); --",
                                source="s", parameters={"q": "'; --"})
    assert job_store.get_job(evil)["prompt"] == "'); --"  # type: ignore[index]


def test_sixteen_threads_share_a_pool_of_four(service_urls: ServiceUrls) -> None:
    store = JobStore(service_urls.database_url, maxconn=4, acquire_timeout=30)
    store.migrate()  # does not rely on another test having migrated the database
    errors: list[BaseException] = []
    ids: list[int] = []
    lock = threading.Lock()

    def cycle(n: int) -> None:
        try:
            job_id = store.create_job(job_key=f"par-{n}", prompt="p", source="s",
                                      parameters={"n": n})
            for stage in ("probed", "analysis_complete", "highlights_generated"):
                store.record_checkpoint(job_id, stage, 0.1, {"n": n})
            store.finish_job(job_id, status="succeeded", processing_seconds=0.3)
            with lock:
                ids.append(job_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cycle, args=(n,)) for n in range(16)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not any(t.is_alive() for t in threads), "deadlock: threads still running"
        assert not errors, errors
        elapsed = time.monotonic() - started
        assert len(ids) == 16 and elapsed < 60
        print(f"16 job cycles through a pool of 4: {elapsed:.2f} s")
        for job_id in ids:
            job = store.get_job(job_id)
            assert job is not None and job["status"] == "succeeded"
            assert len(store.checkpoints(job_id)) == 3
    finally:
        store.close()


def test_pool_exhaustion_raises_service_error(service_urls: ServiceUrls) -> None:
    pool = BoundedPool(1, 1, service_urls.database_url, acquire_timeout=0.1)
    try:
        held = pool.getconn()
        started = time.monotonic()
        with pytest.raises(ServiceError, match=r"pool exhausted after 0.1s"):
            pool.getconn()
        assert time.monotonic() - started < 2
        pool.putconn(held)
        with pool.connection() as conn, conn.cursor() as cur:  # the slot came back
            cur.execute("SELECT 1")
    finally:
        pool.close()

    store = JobStore(service_urls.database_url, maxconn=1, acquire_timeout=0.05)
    try:
        held = store.pool.getconn()
        with pytest.raises(ServiceError, match="exhausted"):
            store.list_jobs()
        store.pool.putconn(held)
        store.list_jobs(limit=1)
    finally:
        store.close()


def test_unreachable_server_is_a_service_error(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="cannot reach PostgreSQL"):
        JobStore(f"postgresql:///clipforge?host={tmp_path}&port=1", maxconn=1)


def test_operations_survive_a_postgres_restart(service_urls: ServiceUrls,
                                               clipforge_home: Path) -> None:
    settings = Settings(home=clipforge_home, database_url=None, redis_url=None)
    store = JobStore(service_urls.database_url, maxconn=3)
    try:
        job_id = store.create_job(job_key="restart", prompt="p", source="s", parameters={})
        warm = [store.pool.getconn() for _ in range(3)]  # three idle pooled connections
        for conn in warm:
            store.pool.putconn(conn)
        postgres.pg_ctl(settings, "-m", "fast", "-w", "restart")
        store.record_checkpoint(job_id, "probed")  # stale pooled connection: retried
        assert store.get_job(job_id)["checkpoint"] == "probed"  # type: ignore[index]

        postgres.pg_ctl(settings, "-m", "fast", "-w", "restart")
        with store.pool.connection() as conn, conn.cursor() as cur:  # pre-ping replaces it
            cur.execute("SELECT checkpoint FROM video_job WHERE id = %s", (job_id,))
            assert cur.fetchone() == ("probed",)
    finally:
        store.close()
