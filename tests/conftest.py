"""Shared test fixtures. Real media comes from ../shared (never copied into git)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLIPFORGE_SHARED", REPO.parent / "shared")).resolve()
MEDIA = SHARED / "media"
EVAL = SHARED / "eval"

# A suite started in the background by a shell without job control (`make test &`, CI
# wrappers, nohup) inherits SIGINT ignored, and so would every clipforge process it
# starts: the Ctrl-C tests would send an interrupt nobody hears. A Python handler here is
# reset to the default on exec, so the processes the tests start hear Ctrl-C again.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def media(name: str) -> Path:
    """Path of a file in ../shared/media; fails (never skips) when it is missing."""
    path = MEDIA / name
    if not path.exists():
        pytest.fail(f"test media missing: {path} (CI needs ../shared beside the clone)")
    return path


CLI = [sys.executable, "-m", "clipforge_cli"]


def clipforge(env: dict[str, str], *args: str, timeout: float = 900
              ) -> subprocess.CompletedProcess[str]:
    """The real `clipforge` command in a subprocess (repo as cwd, no stdin), captured."""
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=REPO)


def cli_environment(service_urls, clipforge_home: Path, prefect_home: Path,
                    **extra: str) -> dict[str, str]:
    """Environment for running the `clipforge` CLI in a subprocess against the session's
    private PostgreSQL/Redis and its warm Prefect server (``service_urls.prefect_api_url``),
    with its own Prefect home (and so its own task cache)."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env.update(
        CLIPFORGE_HOME=str(clipforge_home),
        CLIPFORGE_DATABASE_URL=service_urls.database_url,
        CLIPFORGE_REDIS_URL=service_urls.redis_url,
        PREFECT_HOME=str(prefect_home),
    )
    env.update(extra)
    api = getattr(service_urls, "prefect_api_url", None)
    if api and "PREFECT_API_URL" not in extra:
        env["PREFECT_API_URL"] = api
    return env


def purge_private_services(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`clipforge services purge --yes` for a test's own CLIPFORGE_HOME: as root its
    PostgreSQL cluster lives under /var/lib/postgresql, which deleting the test folder
    would leave behind."""
    return clipforge(env, "services", "purge", "--yes", timeout=300)


def prefect_processes(prefect_home: Path) -> list[str]:
    """Live processes that run prefect with this PREFECT_HOME (a test's own only)."""
    from clipforge.supervise import proc

    found = []
    for pid in proc.all_pids():
        if pid == os.getpid():
            continue
        argv = proc.cmdline(pid)
        if "prefect" in " ".join(argv) and not proc.is_zombie(pid) and \
                proc.environ(pid).get("PREFECT_HOME") == str(prefect_home):
            found.append(f"{pid}: {' '.join(argv)}")
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


@dataclass(frozen=True)
class SessionServices:
    """The session's private PostgreSQL and Redis, and a warm Prefect server on them that
    the CLI tests talk to (started on first use, like `clipforge run` does)."""

    database_url: str
    redis_url: str
    settings: object

    @functools.cached_property
    def prefect_api_url(self) -> str:
        from clipforge.supervise.prefect_server import ensure_server

        return ensure_server(self.settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def service_urls(clipforge_home: Path):
    from clipforge.config import Settings
    from clipforge.supervise import ensure_services, purge_services
    from clipforge.supervise.prefect_server import stop_server

    settings = Settings(home=clipforge_home, database_url=None, redis_url=None)
    try:
        urls = ensure_services(settings)
        yield SessionServices(urls.database_url, urls.redis_url,
                              settings.model_copy(update={"database_url": urls.database_url,
                                                          "redis_url": urls.redis_url}))
    finally:
        stop_server(settings)
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
