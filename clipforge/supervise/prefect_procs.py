"""Prefect processes: spawning them in their own session, running the ``prefect`` CLI,
recognising a live ``prefect <role> start`` by its command line, and stopping one with
whatever it left behind (flow-run processes, server subprocesses)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from clipforge.errors import ServiceError
from clipforge.supervise.proc import cmdline, descendants, group_members, is_zombie, try_waitpid

STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 180.0
# A Prefect server answers 500 while its PostgreSQL restarts (pool pre-ping finds the
# server gone); Prefect's client retries only 429/502/503 by default, so a task asking
# for a concurrency slot in that window failed its whole job. Every Prefect client
# clipforge starts also retries 500, with the client's back-off (2, 4, 8, 16, 32 s).
CLIENT_RETRY_ENV = "PREFECT_CLIENT_RETRY_EXTRA_CODES"
CLIENT_RETRY_EXTRA_CODES = "500"


def is_prefect(pid: int | None, role: str) -> bool:
    """True if ``pid`` is a live ``prefect <role> start`` process (not a recycled pid)."""
    if not pid or pid <= 0:
        return False
    argv = cmdline(pid)
    if not argv or is_zombie(pid):
        return False
    text = " ".join(argv)
    return "prefect" in text and f"{role} start" in text


def _kill_leftovers(pids: list[int]) -> None:
    """SIGINT (the flow records the job ``failed``/``interrupted``), then SIGTERM, then
    SIGKILL, the given processes that still run prefect code (flow-run processes a
    stopped worker left behind in their own session)."""
    def alive() -> list[int]:
        return [p for p in pids if not is_zombie(p) and "prefect" in " ".join(cmdline(p))]

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        left = alive()
        if not left:
            return
        for p in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        end = time.monotonic() + 10.0
        while alive() and time.monotonic() < end:
            for p in left:
                try_waitpid(p)
            time.sleep(0.1)


def stop_process(pid: int, role: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM a ``prefect <role> start`` process (its own session leader), wait, then
    SIGKILL it and whatever is left of its process group and descendants (flow runs,
    server services). Returns True if something was running."""
    if not is_prefect(pid, role):
        return False
    try:
        pgid = os.getpgid(pid)
    except OSError:
        pgid = 0
    kids = descendants(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_prefect(pid, role) and time.monotonic() < deadline:
        try_waitpid(pid)
        time.sleep(0.1)
    if is_prefect(pid, role):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # leftovers in the group (a flow run the worker started, server subprocesses)
    if pgid and pgid == pid:
        members = group_members(pgid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not members:
                break
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, sig)
            end = time.monotonic() + 5.0
            while members and time.monotonic() < end:
                for member in members:
                    try_waitpid(member)
                members = group_members(pgid)
                time.sleep(0.05)
    _kill_leftovers(kids)
    try_waitpid(pid)
    return True


def prefect_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> int:
    with open(log, "ab") as fh:
        fh.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=fh,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    return proc.pid


def run_cli(argv: list[str], env: dict[str, str], cwd: Path,
             timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"`{' '.join(argv[2:])}` failed: {exc}") from exc
