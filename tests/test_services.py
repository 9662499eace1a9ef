"""Private PostgreSQL and Redis: start, reuse, stop, stale pid files, concurrency."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import psycopg2
import pytest
import redis

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.supervise import (
    ServiceUrls,
    ensure_services,
    paths,
    postgres,
    purge_services,
    redis_server,
    services_status,
    stop_services,
)

ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[1]


def _settings(home: Path, **kw: str | None) -> Settings:
    kw.setdefault("database_url", None)
    kw.setdefault("redis_url", None)
    return Settings(home=home, **kw)  # type: ignore[arg-type]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _pg_query(url: str, sql: str) -> object:
    conn = psycopg2.connect(url, connect_timeout=5)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


def test_private_services_answer_on_unix_sockets_only(
    service_urls: ServiceUrls, clipforge_home: Path
) -> None:
    settings = _settings(clipforge_home)
    assert _pg_query(service_urls.database_url, "SHOW listen_addresses") == ""
    assert _pg_query(service_urls.database_url, "SELECT current_database()") == "clipforge"
    assert service_urls.redis_url.startswith("unix://")
    client = redis.Redis.from_url(service_urls.redis_url)
    try:
        assert client.ping()
        assert client.config_get("port")["port"] == "0"
    finally:
        client.close()

    state = json.loads((clipforge_home / "services.json").read_text())
    assert state["postgresql"]["url"] == service_urls.database_url
    assert state["redis"]["url"] == service_urls.redis_url
    data_dir = Path(state["postgresql"]["data_dir"])
    sock_dir = Path(state["postgresql"]["socket_dir"])
    if ROOT:
        name = Path(state["postgresql"]["cluster_dir"]).name
        assert name.startswith(paths.home_hash(settings) + "-")
        assert data_dir == Path("/var/lib/postgresql/clipforge") / name / "data"
        assert data_dir.stat().st_uid == pwd.getpwnam("postgres").pw_uid
        assert stat.S_IMODE(data_dir.parent.stat().st_mode) == 0o700
    else:
        assert data_dir == clipforge_home.resolve() / "postgres" / "data"
    assert stat.S_IMODE(sock_dir.stat().st_mode) == 0o700
    redis_sock = Path(state["redis"]["socket"])
    assert stat.S_IMODE(redis_sock.parent.stat().st_mode) == 0o700
    assert services_status(settings) == {
        "postgresql": "running", "postgresql_url": service_urls.database_url,
        "redis": "running", "redis_url": service_urls.redis_url,
    }


def test_second_call_reuses_running_servers(
    service_urls: ServiceUrls, clipforge_home: Path
) -> None:
    settings = _settings(clipforge_home)
    lay = postgres.pg_layout(settings)
    pid_before = postgres.pg_pid(lay)
    again = ensure_services(settings)
    # reused, not restarted (a wall-clock bound would flake on a loaded machine)
    assert (again.database_url, again.redis_url) == (service_urls.database_url,
                                                     service_urls.redis_url)
    assert postgres.pg_pid(lay) == pid_before


def test_urls_from_settings_win_and_nothing_starts(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home", database_url="postgresql://db.example/x",
                         redis_url="redis://cache.example:6379/0")
    urls = ensure_services(settings)
    assert urls == ServiceUrls("postgresql://db.example/x", "redis://cache.example:6379/0")
    assert not (tmp_path / "home").exists()
    assert services_status(settings) == {"postgresql": "external", "redis": "external"}
    assert stop_services(settings) == []


def test_missing_binaries_name_the_apt_remedy(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "PG_LIB_DIR", tmp_path / "no-postgresql")
    monkeypatch.setattr(redis_server, "REDIS_FALLBACK", tmp_path / "no-redis-server")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ServiceError, match="apt-get install postgresql"):
        ensure_services(_settings(tmp_path / "h1", redis_url="redis://x"))
    with pytest.raises(ServiceError, match="apt-get install redis-server"):
        ensure_services(_settings(tmp_path / "h2", database_url="postgresql://x"))


def test_lifecycle_concurrent_start_stop_stale_pids_long_home(tmp_path: Path) -> None:
    """A fresh home with a path too long for sun_path: concurrent starters share one
    server pair; stop is idempotent; stale pid files after a crash are replaced; data
    survives restarts; purge removes everything."""
    home = tmp_path / ("x" * 60) / ("y" * 60)
    settings = _settings(home)
    rd = redis_server.redis_layout(settings)
    pg = postgres.pg_layout(settings)  # before the first start: names no cluster yet
    try:
        # -- concurrent first start (two processes, three threads): one initdb, same URLs
        script = (
            "import sys; from clipforge.config import Settings; "
            "from clipforge.supervise import ensure_services; "
            "u = ensure_services(Settings(home=sys.argv[1], database_url=None, "
            "redis_url=None)); print(u.database_url); print(u.redis_url)"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        procs = [subprocess.Popen([sys.executable, "-c", script, str(home)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        results: list[ServiceUrls] = []
        errors: list[BaseException] = []

        def start() -> None:
            try:
                results.append(ensure_services(settings))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            results.append(ServiceUrls(*out.split()))
        assert not errors and len(results) == 5 and len(set(results)) == 1
        urls = results[0]
        pg = postgres.pg_layout(settings)
        # the socket falls back to a short private dir under /tmp
        assert rd.socket == Path(f"/tmp/clipforge-{paths.home_hash(settings)}/redis.sock")
        assert urls.redis_url == f"unix://{rd.socket}"
        assert len(str(rd.socket)) < 100
        with psycopg2.connect(urls.database_url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE keepme (v int); INSERT INTO keepme VALUES (7)")
        conn.close()

        # -- stop is idempotent
        pid_file_text = (pg.data_dir / "postmaster.pid").read_text()
        assert sorted(stop_services(settings)) == ["postgresql", "redis"]
        assert stop_services(settings) == []
        assert services_status(settings)["postgresql"] == "stopped"
        assert services_status(settings)["redis"] == "stopped"

        # -- a crash leaves stale pid files (and a stale socket): start again cleanly
        dead = _dead_pid()
        stale_pg = str(dead) + "\n" + pid_file_text.split("\n", 1)[1]
        (pg.data_dir / "postmaster.pid").write_text(stale_pg)
        if ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(pg.data_dir / "postmaster.pid", pw.pw_uid, pw.pw_gid)
        rd.pid_file.write_text(f"{dead}\n")
        rd.socket.write_text("")
        assert services_status(settings)["postgresql"] == "stopped"
        assert ensure_services(settings) == urls
        assert _pg_query(urls.database_url, "SELECT v FROM keepme") == 7
        client = redis.Redis.from_url(urls.redis_url)
        assert client.ping()
        client.close()
    finally:
        removed = purge_services(settings)
    assert str(pg.cluster_dir) in removed
    assert not pg.cluster_dir.exists() and not rd.dir.exists()
    assert not rd.socket.parent.exists()
    assert services_status(settings) == {"postgresql": "absent", "redis": "absent"}
    assert stop_services(settings) == []


def test_a_new_home_at_a_deleted_homes_path_starts_with_an_empty_database(
        tmp_path: Path) -> None:
    """As root the cluster lives outside the home: a home deleted without `purge` and made
    again at the same path must not see the old home's jobs (CI met exactly this: a
    fresh pytest folder of an earlier run's number listed that run's jobs as its own)."""
    home = tmp_path / "home"
    settings = _settings(home)
    old = None
    try:
        urls = ensure_services(settings)
        old = postgres.pg_layout(settings)
        conn = psycopg2.connect(urls.database_url, connect_timeout=5)
        with conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE left_behind (v int)")
        conn.close()
        assert "postgresql" in stop_services(settings)
        shutil.rmtree(home)  # the user deletes the home, not the cluster
        again = ensure_services(settings)
        new = postgres.pg_layout(settings)
        assert new.cluster_dir != old.cluster_dir or not ROOT
        assert _pg_query(again.database_url, "SELECT to_regclass('left_behind')::text") is None
        assert services_status(settings)["postgresql"] == "running"
    finally:
        purge_services(settings)
        if old is not None and old.cluster_dir.exists():
            shutil.rmtree(old.cluster_dir)


def test_the_cluster_name_is_recorded_once_kept_and_checked(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "home")
    digest = paths.home_hash(settings)
    assert postgres._root_cluster_name(settings, digest, create=False) is None
    assert not (tmp_path / "home").exists()  # asking creates nothing
    name = postgres._root_cluster_name(settings, digest, create=True)
    assert name is not None and name.startswith(digest + "-") and len(name) == 12 + 1 + 16
    assert postgres._root_cluster_name(settings, digest, create=True) == name
    assert postgres._root_cluster_name(settings, digest, create=False) == name
    state = tmp_path / "home" / "services.json"
    assert json.loads(state.read_text())["postgresql"]["cluster_dir"] == \
        str(postgres.PG_ROOT_BASE / name)
    state.write_text(json.dumps(
        {"postgresql": {"cluster_dir": str(postgres.PG_ROOT_BASE / "../../etc")}}))
    with pytest.raises(ServiceError, match="services.json.*remove"):
        postgres._root_cluster_name(settings, digest, create=False)
    # a home whose services.json names the cluster made before names had a random part
    state.write_text(json.dumps(
        {"postgresql": {"cluster_dir": str(postgres.PG_ROOT_BASE / digest)}}))
    assert postgres._root_cluster_name(settings, digest, create=False) == digest
    assert postgres._root_cluster_name(settings, digest, create=True) == digest
    assert json.loads(state.read_text())["postgresql"]["cluster_dir"] == \
        str(postgres.PG_ROOT_BASE / digest)
