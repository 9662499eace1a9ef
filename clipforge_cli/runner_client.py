"""The warm runner's client side: standard library only (and :mod:`clipforge.homes`,
which is too), so that ``clipforge run`` reaches a warm runner before any heavy import.

A warm runner (:mod:`clipforge_cli.runner`, started by ``clipforge services start``) has
Prefect, the flows and the CLI already imported. For ``run`` and ``resume`` the
command line hands it its arguments, working directory, environment and its
stdin/stdout/stderr (passed as file descriptors over a Unix socket under
``CLIPFORGE_HOME``); the runner forks a child that runs the command exactly as this
process would have, on this terminal, and the child's exit code becomes this process's.
Ctrl-C and SIGTERM are passed on to the child's process group.

The runner is used only when it started from the same environment (the ``CLIPFORGE_*``,
``PREFECT_*``, thread, path and locale variables) and the code it imported is unchanged;
otherwise, or when it is absent or busy starting, the command runs in this process as
before. ``CLIPFORGE_RUNNER=off`` never uses it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clipforge import homes

RUNNER_ENV = "CLIPFORGE_RUNNER"  # "off": never hand a command to the warm runner
CHILD_ENV = "CLIPFORGE_RUNNER_CHILD"  # set in a runner's child (the summary says so)
IDLE_ENV = "CLIPFORGE_RUNNER_IDLE_S"  # idle exit of a runner a run started on its own
SERVED_COMMANDS = ("run", "resume")
CONNECT_TIMEOUT_S = 5.0
# for the runner's first reply: it forks at once, but a loaded machine can be slow, and a
# caller that gave up too early would run the command twice (the runner stops its child
# when the caller goes away, yet it may have started)
REPLY_TIMEOUT_S = 30.0
HEADER = struct.Struct("!I")
MAX_MESSAGE = 8 << 20
# variables that change what a run does or which code and binaries it uses
FINGERPRINT_PREFIXES = ("CLIPFORGE_", "PREFECT_", "HF_", "OMP_", "MKL_", "OPENBLAS_",
                        "NUMBA_", "CT2_", "PYTHON", "LD_", "LC_")
FINGERPRINT_KEYS = ("PATH", "HOME", "VIRTUAL_ENV", "LANG", "TZ", "DO_NOT_TRACK")
FINGERPRINT_IGNORED = (CHILD_ENV, RUNNER_ENV, IDLE_ENV)
CODE_DIRS = ("clipforge", "clipforge_cli", "flows", "tasks")
REPO_ROOT = Path(__file__).resolve().parents[1]

# set when a runner refused this command because the code changed (it is stopping): the
# entry point starts a fresh one once the command is done
STALE = False

# the environment this command started with, before Prefect's defaults were added
LAUNCH_ENV: dict[str, str] = dict(os.environ)


def disabled(env: Mapping[str, str]) -> bool:
    """``CLIPFORGE_RUNNER=off`` (or 0, no, false): never use or start a warm runner."""
    return env.get(RUNNER_ENV, "").lower() in ("off", "0", "no", "false")


def home_dir(env: Mapping[str, str]) -> Path:
    """``CLIPFORGE_HOME`` as the settings read it (default ``~/.clipforge``), resolved."""
    value = next((v for k, v in env.items() if k.upper() == "CLIPFORGE_HOME" and v), None)
    return Path(value or Path.home() / ".clipforge").expanduser().resolve()


def socket_path(home: Path) -> Path:
    """``<home>/runner.sock``, or ``/tmp/clipforge-<hash>/runner.sock`` when that is too
    long for a Unix socket (the same short folder the private Redis uses)."""
    path = home / "runner.sock"
    if len(str(path)) <= homes.SOCKET_PATH_MAX:
        return path
    return homes.short_dir(homes.digest(home)) / "runner.sock"


def env_fingerprint(env: Mapping[str, str]) -> str:
    """A hash of the variables that change what a run does (see the module docstring)."""
    keys = sorted(k for k in env if k not in FINGERPRINT_IGNORED and
                  (k.startswith(FINGERPRINT_PREFIXES) or k in FINGERPRINT_KEYS))
    blob = json.dumps([[k, env[k]] for k in keys] + [sys.executable])
    return hashlib.sha256(blob.encode()).hexdigest()


def code_stamp(root: Path = REPO_ROOT) -> str:
    """A hash of the path, size and modification time of every Python file of the
    project and of the installed-packages folder: an edit or an install changes it."""
    entries: list[str] = []
    for name in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for fn in sorted(filenames):
                if fn.endswith(".py"):
                    with contextlib.suppress(OSError):
                        st = os.stat(os.path.join(dirpath, fn))
                        entries.append(f"{dirpath}/{fn}:{st.st_size}:{st.st_mtime_ns}")
    for folder in sorted({p for p in sys.path if p.endswith("site-packages")}):
        with contextlib.suppress(OSError):
            entries.append(f"{folder}:{os.stat(folder).st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def send_message(sock: socket.socket, data: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(data).encode()
    payload = HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [payload], list(fds))
        if sent < len(payload):
            sock.sendall(payload[sent:])
    else:
        sock.sendall(payload)


def recv_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One length-prefixed JSON message (and up to ``max_fds`` descriptors); (None, [])
    when the peer closed first."""
    fds: list[int] = []
    if max_fds:
        data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 16, max_fds)
    else:
        data = sock.recv(1 << 16)
    buf = bytearray(data)
    if not buf:
        return None, fds
    while len(buf) < HEADER.size:
        more = sock.recv(1 << 16)
        if not more:
            return None, fds
        buf += more
    (size,) = HEADER.unpack(bytes(buf[:HEADER.size]))
    if size > MAX_MESSAGE:
        raise ValueError(f"runner message of {size} bytes")
    while len(buf) < HEADER.size + size:
        more = sock.recv(1 << 16)
        if not more:
            return None, fds
        buf += more
    return json.loads(bytes(buf[HEADER.size:HEADER.size + size])), fds


def _debug(msg: str) -> None:
    if os.environ.get("CLIPFORGE_DEBUG"):
        print(f"clipforge: {msg}", file=sys.stderr)


def run_in_runner(argv: Sequence[str]) -> int | None:
    """Hand the command to a warm runner; its exit code, or None to run it here."""
    global STALE
    if disabled(os.environ) or not argv or argv[0] not in SERVED_COMMANDS or \
            os.environ.get(CHILD_ENV):
        return None
    path = socket_path(home_dir(os.environ))
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(str(path))
            send_message(sock, {"argv": list(argv), "cwd": os.getcwd(),
                                "env": dict(os.environ),
                                "env_fingerprint": env_fingerprint(os.environ),
                                "code_stamp": code_stamp()}, [0, 1, 2])
            sock.settimeout(REPLY_TIMEOUT_S)
            reply, _ = recv_message(sock)
        except (OSError, ValueError) as exc:  # absent, starting, or a stale socket file
            _debug(f"warm runner not used ({exc})")
            return None
        if not reply or "pid" not in reply:
            reason = str((reply or {}).get("refused", "no reply"))
            _debug(f"warm runner not used ({reason})")
            STALE = reason.startswith("code changed")
            return None
        return _wait_for_child(sock, int(reply["pid"]))
    finally:
        sock.close()


def _wait_for_child(sock: socket.socket, pid: int) -> int:
    """Pass signals on to the child's process group until the runner reports its exit."""
    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, forward)
    sock.settimeout(None)
    while True:
        try:
            reply, _ = recv_message(sock)
            break
        except InterruptedError:
            continue
        except OSError:
            reply = None
            break
    if reply is None or "exit" not in reply:
        print(f"clipforge: the warm runner stopped during the run (see "
              f"{home_dir(os.environ) / 'runner.log'}); run it again, or set "
              f"{RUNNER_ENV}=off", file=sys.stderr)
        return 1
    return int(reply["exit"])
