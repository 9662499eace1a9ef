#!/usr/bin/env python3
"""Resume after a crash vs a full run, same input, same run of this script.

    .venv/bin/python bench/resume_bench.py [VIDEO]

1. a full run (empty cache) -> T_full;
2. a run killed (SIGKILL, whole process group) right after checkpoint ``edl_written``
   (so during render), then the same command again -> T_resume_render;
3. a run killed right after ``analysis_complete``, then again -> T_resume_select.
Each crashed run has its own empty Prefect cache, so only what the crashed attempt
finished can be reused. Private PostgreSQL/Redis under a temp CLIPFORGE_HOME.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.checkpoints import STAGES  # noqa: E402
from clipforge.config import Settings  # noqa: E402
from clipforge.store import JobStore  # noqa: E402
from clipforge.supervise import ensure_services, purge_services  # noqa: E402

VIDEO = REPO.parent / "shared" / "eval" / "public_episode.mp4"
PROMPT = "the software license permission notice"


def cli(env: dict[str, str], out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clipforge_cli", "run", str(VIDEO), "--prompt",
                             PROMPT, "--out", str(out)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def checkpoint(store: JobStore, out: Path) -> str | None:
    for job in store.list_jobs(limit=20):
        if job.get("output_dir") == str(out.resolve()):
            return job.get("checkpoint")
    return None


def crash_and_resume(env: dict[str, str], store: JobStore, out: Path, stage: str
                     ) -> tuple[float, float]:
    t0 = time.monotonic()
    p = cli(env, out)
    while True:
        cp = checkpoint(store, out)
        if cp and STAGES.index(cp) >= STAGES.index(stage):
            break
        if p.poll() is not None:
            raise SystemExit(f"run ended before {stage}: {p.stderr.read().decode()[-500:]}")
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    killed_after = time.monotonic() - t0
    t1 = time.monotonic()
    again = cli(env, out)
    if again.wait() != 0:
        raise SystemExit(again.stderr.read().decode()[-1000:])
    return killed_after, time.monotonic() - t1


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        settings = Settings(home=home, database_url=None, redis_url=None)
        urls = ensure_services(settings)
        store = JobStore(urls.database_url)
        store.migrate()
        base = {**os.environ, "CLIPFORGE_HOME": str(home),
                "CLIPFORGE_DATABASE_URL": urls.database_url,
                "CLIPFORGE_REDIS_URL": urls.redis_url}
        try:
            t0 = time.monotonic()
            full = cli({**base, "PREFECT_HOME": f"{tmp}/p-full"}, Path(tmp) / "full")
            if full.wait() != 0:
                raise SystemExit(full.stderr.read().decode()[-1000:])
            t_full = time.monotonic() - t0
            render = crash_and_resume({**base, "PREFECT_HOME": f"{tmp}/p-render"}, store,
                                      Path(tmp) / "render", "edl_written")
            select = crash_and_resume({**base, "PREFECT_HOME": f"{tmp}/p-select"}, store,
                                      Path(tmp) / "select", "analysis_complete")
        finally:
            store.close()
            purge_services(settings)
    print(f"full run (empty cache):                 {t_full:6.1f} s")
    print(f"killed during render after {render[0]:5.1f} s; resume: {render[1]:6.1f} s "
          f"({render[1] / t_full:.0%} of a full run)")
    print(f"killed after analysis after {select[0]:5.1f} s; resume: {select[1]:6.1f} s "
          f"({select[1] / t_full:.0%} of a full run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
