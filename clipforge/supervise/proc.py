"""Process and file helpers shared by every supervisor in :mod:`clipforge.supervise`.

One implementation each of: an ``fcntl.flock`` context manager, pid files, ``/proc``
parsing (state, comm, cmdline, ppid), waiting for a process to go, the tail of a log,
port checks and waiting for an HTTP endpoint. Linux only (``/proc``).
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
POLL_S = 0.02  # liveness polls; never sleep longer than 50 ms per poll
_DEAD_STATES = ("Z", "X", "")  # zombie, dead, or unreadable


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (its folder is created 0700)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_pid(path: Path) -> int | None:
    """The first whitespace-separated token of ``path`` as a pid, or None."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def _stat(pid: int) -> tuple[str, list[str]] | None:
    """(comm, fields after comm) of ``/proc/<pid>/stat``, or None when it is gone."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return line[line.find("(") + 1 : line.rfind(")")], line[line.rfind(")") + 2 :].split()


def proc_state(pid: int) -> str:
    """The one-letter state of ``pid`` (``R``, ``S``, ``Z``...), ``""`` when gone."""
    st = _stat(pid)
    return st[1][0] if st and st[1] else ""


def is_zombie(pid: int) -> bool:
    """True if ``pid`` is a zombie, dead, or gone (so: not running)."""
    return proc_state(pid) in _DEAD_STATES


def pid_alive(pid: int | None, comm_prefix: str = "") -> bool:
    """True if ``pid`` runs a program whose name starts with ``comm_prefix`` and is not a
    zombie (a daemon that exited waits for init to reap it, which can take a second)."""
    if not pid or pid <= 0:
        return False
    st = _stat(pid)
    if st is None or not st[1] or st[1][0] in _DEAD_STATES:
        return False
    return st[0].startswith(comm_prefix)


def ppid(pid: int) -> int | None:
    st = _stat(pid)
    return int(st[1][1]) if st and len(st[1]) > 1 and st[1][1].isdigit() else None


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid`` (empty when it is gone or a kernel thread)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environ(pid: int) -> dict[str, str]:
    """The environment ``pid`` started with (empty when unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {k: v for k, _, v in pairs}


def all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def wait_gone(pid: int, comm_prefix: str = "", timeout: float = 10.0) -> bool:
    """Wait until ``pid`` no longer runs ``comm_prefix``*; False on timeout."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid, comm_prefix):
        if time.monotonic() > deadline:
            return False
        try_waitpid(pid)  # reap it if it is our child
        time.sleep(POLL_S)
    return True


def tail(path: Path, n: int = 15) -> str:
    """The last ``n`` non-blank lines of a log joined by `` | `` (``(no log)`` if none)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join([line.strip() for line in lines if line.strip()][-n:])


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically, mode 0600."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def port_free(port: int, host: str = LOOPBACK) -> bool:
    """True if a server could bind ``host:port`` now.

    Binds with ``SO_REUSEADDR``, as uvicorn, Prometheus and most servers do, so a port
    with only ``TIME_WAIT`` connections left counts as free; a port with a listener (or
    bound by another socket) does not. This is the one port check: "can a server bind
    here", not "does something answer here".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel considers free on ``host`` now (racy by nature)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True if ``GET url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (OSError, ValueError, http.client.HTTPException):
        return False


def wait_http(url: str, timeout: float, *, alive: Callable[[], bool] | None = None,
              poll_s: float = 0.2) -> bool:
    """Poll ``url`` until it answers 200 (True), ``timeout`` passes or ``alive()``
    returns False (False). ``alive``: optional callable telling the server still runs."""
    deadline = time.monotonic() + timeout
    while True:
        if http_ok(url):
            return True
        if (alive is not None and not alive()) or time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (from the ``ppid`` field of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for child in all_pids():
        parent = ppid(child)
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    pids = []
    for pid in all_pids():
        try:
            if os.getpgid(pid) == pgid and not is_zombie(pid):
                pids.append(pid)
        except OSError:
            continue
    return pids


def try_waitpid(pid: int) -> None:
    """Reap ``pid`` if it is our child; ignore it otherwise."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
