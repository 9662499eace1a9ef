"""`clipforge metrics`: the long-lived Prometheus endpoint of a clipforge worker host.

Serves ``/metrics`` from :data:`clipforge.metrics.REGISTRY` (default
``127.0.0.1:9464``, scraped by ``deployments/prometheus/prometheus.yml``) and every
``--interval`` seconds (15) refreshes, from PostgreSQL:

- ``clipforge_queue_length`` (``JobStore.queue_length``),
- ``clipforge_last_job_finished_timestamp_seconds`` and
  ``clipforge_oldest_queued_job_timestamp_seconds`` (``ClipforgeBacklogStalled``).

The endpoint comes up first and stays up while the database is unreachable (the gauges
keep their last values; each new error is printed once to stderr), so Prometheus can
tell "process down" (``up == 0``) from "database down". SIGTERM / SIGINT stop it
cleanly (exit 0). Hooked into ``clipforge_cli`` with ``cli_metrics.register(sub)``; also
runnable as ``python -m clipforge_cli.metrics [--port P] [--addr A]``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

DEFAULT_PORT = 9464
DEFAULT_ADDR = "127.0.0.1"
DEFAULT_INTERVAL_S = 15.0

class _Refresher:
    """Opens the job store lazily (retrying on the next tick) and refreshes the gauges."""

    def __init__(self) -> None:
        self._store: Any = None
        self._last_error: str | None = None

    def _open(self) -> Any:
        from clipforge.config import load_settings
        from clipforge.store import JobStore
        from clipforge.supervise import ensure_services

        settings = load_settings()
        urls = ensure_services(settings)
        store = JobStore(urls.database_url, maxconn=1,
                         acquire_timeout=settings.db_acquire_timeout_s)
        try:
            store.migrate()  # idempotent: the queue query needs video_job
        except BaseException:
            store.close()
            raise
        return store

    def refresh(self) -> bool:
        """One refresh; True when the gauges were updated."""
        from clipforge import metrics

        try:
            if self._store is None:
                self._store = self._open()
            n = self._store.queue_length()
            last_finished, oldest_queued = self._store.backlog_times()
        except Exception as exc:  # keep serving; report each new error once
            msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if msg != self._last_error:
                print(f"clipforge metrics: cannot refresh the queue gauges from PostgreSQL "
                      f"(will retry): {msg}", file=sys.stderr, flush=True)
                self._last_error = msg
            self.close()
            return False
        metrics.set_queue_length(n)
        metrics.set_backlog_times(last_finished, oldest_queued)
        if self._last_error is not None:
            print("clipforge metrics: PostgreSQL reachable again", file=sys.stderr, flush=True)
            self._last_error = None
        return True

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                pass  # closing a broken pool must not stop the loop


def run(port: int = DEFAULT_PORT, addr: str = DEFAULT_ADDR,
        interval: float = DEFAULT_INTERVAL_S, stop: threading.Event | None = None) -> int:
    """Serve ``/metrics`` and refresh the gauges until ``stop`` is set (or SIGTERM/SIGINT
    when called from the main thread). Returns the exit code (0)."""
    from clipforge import metrics
    from clipforge.errors import ServiceError

    if not interval > 0:
        raise ValueError(f"--interval must be > 0 seconds, got {interval!r}")
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)

    try:
        server, thread = metrics.serve(port, addr=addr)
    except OSError as exc:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        raise ServiceError(f"cannot serve /metrics on {addr}:{port}: {exc.strerror or exc}; "
                           "remedy: stop what uses that port or pick another with --port"
                           ) from exc
    bound = server.server_address[1]
    print(f"clipforge metrics: serving http://{addr}:{bound}/metrics "
          f"(queue gauges refreshed every {interval:g}s)", file=sys.stderr, flush=True)
    refresher = _Refresher()
    try:
        while not stop.is_set():
            refresher.refresh()
            stop.wait(interval)
    finally:
        refresher.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("clipforge metrics: stopped", file=sys.stderr, flush=True)
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    return run(port=args.port, addr=args.addr, interval=args.interval)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve /metrics on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--addr", default=DEFAULT_ADDR,
                   help=f"address to bind (default {DEFAULT_ADDR})")
    p.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL_S,
                   help=f"seconds between queue refreshes (default {DEFAULT_INTERVAL_S:g})")
    p.set_defaults(func=cmd_metrics)


def register(subparsers: Any) -> None:
    """Add ``metrics`` to the ``clipforge`` sub-command parser."""
    p = subparsers.add_parser(
        "metrics", help="serve Prometheus /metrics and refresh the job-queue gauges (long-lived)")
    _add_arguments(p)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="clipforge metrics",
                                description=(__doc__ or "").splitlines()[0])
    _add_arguments(p)
    args = p.parse_args(argv)
    from clipforge.errors import ClipforgeError

    try:
        return int(args.func(args))
    except ClipforgeError as exc:
        print(f"clipforge: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
