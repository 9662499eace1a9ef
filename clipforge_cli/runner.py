"""The warm runner: a process under ``CLIPFORGE_HOME`` that has already imported Prefect,
the flows and the command line, and forks a child per ``clipforge run``/``resume``.

A new prompt on an analysed video spends most of its wall time importing Prefect and the
flow modules (about a second on 2 cores). The runner pays that once: ``clipforge
services start`` starts it (and a run made in its own process on the private services
starts one that exits after ``CLIPFORGE_RUNNER_IDLE_S`` without a command), ``clipforge
services stop`` stops it, ``clipforge services status`` shows it. Each command runs
in a fresh child forked from the runner, so no run sees another's state, with the
caller's arguments, working directory, environment and terminal (see
:mod:`clipforge_cli.runner_client`). Nothing is loaded before the fork that starts
threads (models load in the child, when a run needs them).

The runner refuses a command whose environment differs from the one it started with and
exits when the project's code or installed packages change, so the caller runs it itself
and a stale runner never runs old code. Log: ``<home>/runner.log``.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from clipforge_cli import runner_client as rc

START_TIMEOUT_S = 60.0  # imports on a loaded 2-core machine
# A runner a run started on its own (not `services start`) exits after this long without
# a command; CLIPFORGE_RUNNER_IDLE_S overrides it (0: never).
AUTO_IDLE_S = 3600.0


def pid_file(home: Path) -> Path:
    """The pid of the runner holding the lock: written as it starts."""
    return home / "runner.pid"


def ready_file(home: Path) -> Path:
    """The same pid, written once the runner listens."""
    return home / "runner.ready"


def log_file(home: Path) -> Path:
    return home / "runner.log"


def lock_file(home: Path) -> Path:
    return home / "runner.lock"


def runner_pid(home: Path, *, ready: bool = True) -> int | None:
    """The pid of a live runner for ``home`` that listens (``ready=False``: or is still
    starting); None: none runs."""
    from clipforge.supervise.proc import cmdline, is_zombie, read_pid

    pid = read_pid(ready_file(home) if ready else pid_file(home))
    if pid is None or is_zombie(pid):
        return None
    argv = " ".join(cmdline(pid))
    return pid if "clipforge_cli.runner" in argv else None


# What `clipforge run` imports on its way to the flow (models load later, in the child):
# the library first (it never imports prefect, so this overlaps a Prefect server that
# `services start` is still starting), then Prefect, once its API URL is in the env.
LIBRARY = ("clipforge.analysis", "clipforge.visual", "clipforge.select", "clipforge.plan",
           "clipforge.render", "clipforge.deliver", "clipforge.context", "clipforge.jobs",
           "clipforge.metrics", "clipforge.clip_store", "clipforge_cli.main",
           "clipforge_cli.progress")
WITH_PREFECT = ("prefect.flow_engine", "prefect.task_engine", "flows.clip")


def _preload() -> None:
    """Import what a run imports, and point Prefect at its API, without starting threads."""
    for name in LIBRARY:
        importlib.import_module(name)
    from clipforge.config import load_settings
    from clipforge_cli.prefect_env import prepare_prefect

    prepare_prefect(load_settings())  # before prefect is imported, as a run does
    for name in WITH_PREFECT:
        importlib.import_module(name)


class Runner:
    def __init__(self, home: Path, idle_s: float = 0.0) -> None:
        self.home = home
        self.idle_s = idle_s  # exit after this long without a command (0: never)
        self.last_active = time.monotonic()
        self.launch_fingerprint = rc.env_fingerprint(os.environ)
        self.stamp = rc.code_stamp()
        self.launch_env = dict(os.environ)
        self.added_env: dict[str, str] = {}
        self.children: dict[int, socket.socket] = {}  # child pid -> its caller
        self.stopping = False
        self.inherited: list[int] = []  # the runner's own descriptors a child closes

    def log(self, msg: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} runner {os.getpid()}: {msg}", flush=True)

    def serve(self) -> int:
        with open(lock_file(self.home), "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.log("another runner holds the lock; exiting")
                return 0
            self.inherited.append(lock.fileno())
            pid_file(self.home).write_text(f"{os.getpid()}\n")
            t0 = time.monotonic()
            _preload()
            # what Prefect's defaults and the API URL added; children get the same
            self.added_env = {k: v for k, v in os.environ.items()
                              if self.launch_env.get(k) != v}
            path = rc.socket_path(self.home)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old_umask = os.umask(0o177)
            try:
                listener.bind(str(path))
            finally:
                os.umask(old_umask)
            listener.listen(16)
            ready_file(self.home).write_text(f"{os.getpid()}\n")
            self.log(f"ready in {time.monotonic() - t0:.1f} s on {path}")
            try:
                self._loop(listener)
            finally:
                listener.close()
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                for done in (ready_file(self.home), pid_file(self.home)):
                    with contextlib.suppress(FileNotFoundError):
                        done.unlink()
                self.log("stopped")
        return 0

    def _loop(self, listener: socket.socket) -> None:
        wake_r, wake_w = os.pipe()
        self.inherited += [wake_r, wake_w]
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.last_active = time.monotonic()  # idle time counts from ready, not from start
        while not self.stopping or self.children:
            if self.idle_s and not self.children and not self.stopping and \
                    time.monotonic() - self.last_active > self.idle_s:
                self.log(f"no command for {self.idle_s:.0f} s; exiting")
                self.stopping = True
                continue
            watched: list[Any] = [wake_r, *self.children.values()]
            if not self.stopping:
                watched.append(listener)
            try:
                ready, _, _ = select.select(watched, [], [], min(5.0, self.idle_s or 5.0))
            except InterruptedError:
                ready = []
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
            self._reap()
            if listener in ready and not self.stopping:
                self._accept(listener)
            for pid, conn in list(self.children.items()):
                if conn in ready:  # the caller went away (or sent something): stop its run
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGTERM)

    def _stop(self, *_: Any) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)

    def _reap(self) -> None:
        for pid, conn in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 1 << 8
            if not done:
                continue
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
            with contextlib.suppress(OSError):
                rc.send_message(conn, {"exit": code})
            conn.close()
            del self.children[pid]
            self.last_active = time.monotonic()

    def _accept(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(rc.CONNECT_TIMEOUT_S)
            request, fds = rc.recv_message(conn, max_fds=3)
            reason = self._refusal(request, fds)
            if reason:
                self.log(f"refused: {reason}")
                rc.send_message(conn, {"refused": reason})
                conn.close()
                if reason.startswith("code changed"):
                    self._stop()
                return
            assert request is not None
            pid = os.fork()
            if pid == 0:
                self._child(listener, conn, request, fds)  # never returns
            conn.settimeout(None)
            rc.send_message(conn, {"pid": pid})
            self.children[pid] = conn
            self.log(f"child {pid}: {' '.join(request['argv'][:2])}")
        except (OSError, ValueError) as exc:
            self.log(f"bad request: {exc}")
            conn.close()
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _refusal(self, request: dict[str, Any] | None, fds: list[int]) -> str:
        if request is None or len(fds) != 3:
            return "incomplete request"
        if request.get("code_stamp") != self.stamp:  # the caller stamps the code it runs
            return "code changed since the runner started"
        if request.get("env_fingerprint") != self.launch_fingerprint:
            return "environment differs from the runner's"
        if not request.get("argv") or request["argv"][0] not in rc.SERVED_COMMANDS:
            return "not a command the runner serves"
        return ""

    def _child(self, listener: socket.socket, conn: socket.socket, request: dict[str, Any],
               fds: list[int]) -> None:
        code = 1
        try:
            os.setpgid(0, 0)  # its own group: Ctrl-C reaches its FFmpeg children too
            for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.set_wakeup_fd(-1)
            listener.close()
            conn.close()
            for other in self.children.values():
                other.close()
            for fd in self.inherited:  # a child must not hold the runner's lock
                with contextlib.suppress(OSError):
                    os.close(fd)
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            fds.clear()
            atexit._clear()  # only what this run registers runs at its exit
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            os.environ.update(self.added_env)
            os.environ[rc.CHILD_ENV] = "1"
            sys.argv = ["clipforge", *request["argv"]]
            from clipforge_cli.main import main

            code = main(request["argv"])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            with contextlib.suppress(BaseException):
                atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(BaseException):
                    stream.flush()
            os._exit(code)


def auto_idle_seconds(env: dict[str, str]) -> float:
    """``CLIPFORGE_RUNNER_IDLE_S`` (a number of seconds) or :data:`AUTO_IDLE_S`."""
    try:
        return max(0.0, float(env.get(rc.IDLE_ENV, AUTO_IDLE_S)))
    except ValueError:
        return AUTO_IDLE_S


def spawn_runner(home: Path, env: dict[str, str], idle_s: float = 0.0) -> int | None:
    """Start a runner for ``home`` from ``env`` (the caller's own environment) unless one
    runs or ``CLIPFORGE_RUNNER=off``; returns the pid of the one starting or running.
    ``idle_s`` > 0: it exits after that long without a command."""
    if rc.disabled(env):
        return None
    pid = runner_pid(home, ready=False)
    if pid is not None:
        return pid
    with open(log_file(home), "ab") as fh:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "clipforge_cli.runner", "--idle-seconds", f"{idle_s:g}"],
            cwd=rc.REPO_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True)
    return proc.pid


def keep_warm(env: dict[str, str]) -> int | None:
    """A runner for the next command of a caller started from ``env`` (its home is
    ``env``'s), exiting after :func:`auto_idle_seconds` without one."""
    return spawn_runner(rc.home_dir(env), env, idle_s=auto_idle_seconds(env))


def wait_runner(home: Path, pid: int | None, wait: float = START_TIMEOUT_S) -> str:
    """Wait up to ``wait`` seconds for runner ``pid`` to listen; a status line."""
    from clipforge.supervise.proc import pid_alive, try_waitpid

    if pid is None:
        return f"off ({rc.RUNNER_ENV}=off)"
    deadline = time.monotonic() + wait
    while runner_pid(home) != pid and time.monotonic() < deadline:
        try_waitpid(pid)
        if not pid_alive(pid):
            return f"failed to start (see {log_file(home)})"
        time.sleep(0.05)
    if runner_pid(home) != pid:
        return f"starting (pid {pid}; runs use it once it is ready)"
    return f"running (pid {pid}, {rc.socket_path(home)})"


def runner_processes(home: Path) -> list[int]:
    """Every live runner process for ``home``: the one in the pid file and any other
    (one just spawned that has not written its pid yet, one that lost the lock)."""
    from clipforge.supervise.proc import all_pids, cmdline, environ, is_zombie

    found = []
    for pid in all_pids():
        if pid == os.getpid() or "clipforge_cli.runner" not in " ".join(cmdline(pid)) \
                or is_zombie(pid):
            continue
        env = environ(pid)
        with contextlib.suppress(OSError):
            if env and rc.home_dir(env) == home:
                found.append(pid)
    return found


def stop_runner(home: Path, timeout: float = 30.0) -> bool:
    """Stop the runner for ``home``, even one still starting (its children are asked to
    stop too); True if one ran."""
    from clipforge.supervise.proc import wait_gone

    pids = sorted(set(runner_processes(home)) |
                  ({p} if (p := runner_pid(home, ready=False)) else set()))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for pid in pids:
        if not wait_gone(pid, timeout=max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for left in (ready_file(home), pid_file(home)):  # a runner stopped while starting
        with contextlib.suppress(FileNotFoundError):
            left.unlink()
    return bool(pids)


def runner_status(home: Path) -> str:
    pid = runner_pid(home)
    if pid:
        return f"running (pid {pid})"
    starting = runner_pid(home, ready=False)
    return f"starting (pid {starting})" if starting else "stopped"


def _main() -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m clipforge_cli.runner")
    ap.add_argument("--idle-seconds", type=float, default=0.0)
    args = ap.parse_args()
    return Runner(rc.home_dir(os.environ), idle_s=max(0.0, args.idle_seconds)).serve()


if __name__ == "__main__":
    sys.exit(_main())
