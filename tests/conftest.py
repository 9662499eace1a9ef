"""Shared test fixtures. Real media comes from ../shared (never copied into git)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLIPFORGE_SHARED", REPO.parent / "shared")).resolve()
MEDIA = SHARED / "media"
EVAL = SHARED / "eval"


def media(name: str) -> Path:
    """Path of a file in ../shared/media; fails (never skips) when it is missing."""
    path = MEDIA / name
    if not path.exists():
        pytest.fail(f"test media missing: {path} (CI needs ../shared beside the clone)")
    return path


def cli_environment(service_urls, clipforge_home: Path, prefect_home: Path,
                    **extra: str) -> dict[str, str]:
    """Environment for running the `clipforge` CLI in a subprocess against the session's
    private PostgreSQL/Redis, with its own Prefect home (and so its own task cache)."""
    env = dict(os.environ)
    env.update(
        CLIPFORGE_HOME=str(clipforge_home),
        CLIPFORGE_DATABASE_URL=service_urls.database_url,
        CLIPFORGE_REDIS_URL=service_urls.redis_url,
        PREFECT_HOME=str(prefect_home),
        **extra,
    )
    return env


def prefect_processes(prefect_home: Path) -> list[str]:
    """Live processes that run prefect with this PREFECT_HOME (a test's own only)."""
    found = []
    marker = f"PREFECT_HOME={prefect_home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"prefect" in cmd and marker in env.split(b"\0") and \
                stat[stat.rfind(")") + 2:][:1] not in ("Z", "X"):
            found.append(entry.name + ": " + cmd.replace(b"\0", b" ").decode(errors="replace"))
    return found


@pytest.fixture(scope="session")
def public_episode() -> Path:
    path = EVAL / "public_episode.mp4"
    if not path.exists():
        pytest.fail(f"eval episode missing: {path}")
    return path


# ---------------------------------------------------------------------------------------
# Services fixtures (clipforge.services / store / checkpoints). Appended section: a
# private PostgreSQL + Redis for the whole session under a tmp CLIPFORGE_HOME, always
# private (explicit None URLs beat CLIPFORGE_* env vars), stopped and their data
# (including /var/lib/postgresql/clipforge/<hash> when root) removed at the end.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clipforge_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cfhome")


@pytest.fixture(scope="session")
def service_urls(clipforge_home: Path):
    from clipforge.config import Settings
    from clipforge.services import ensure_services, purge_services

    settings = Settings(home=clipforge_home, database_url=None, redis_url=None)
    try:
        yield ensure_services(settings)
    finally:
        purge_services(settings)


@pytest.fixture(scope="session")
def job_store(service_urls):
    from clipforge.store import JobStore

    store = JobStore(service_urls.database_url, maxconn=4)
    store.migrate()
    try:
        yield store
    finally:
        store.close()
