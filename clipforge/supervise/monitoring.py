"""The local monitoring loop for `clipforge up --metrics`: Debian's Prometheus and
Pushgateway plus the long-lived `clipforge metrics` server, on loopback, with the shipped
configuration (deployments/prometheus/prometheus.yml and alerts.yml).

State (pids, logs, Prometheus data) lives under ``CLIPFORGE_HOME/metrics/``. Never imports
prefect.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.supervise.paths import REPO_ROOT
from clipforge.supervise.proc import LOOPBACK, pid_alive, port_free, read_pid, wait_gone, wait_http

REPO = REPO_ROOT
PROM_CONFIG = REPO / "deployments" / "prometheus" / "prometheus.yml"
PROMETHEUS_PORT = 9090
PUSHGATEWAY_PORT = 9091
METRICS_PORT = 9464  # the scrape targets in prometheus.yml
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def _dir(settings: Settings) -> Path:
    d = Path(settings.home).expanduser() / "metrics"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _running(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process still runs."""
    pid = read_pid(pid_file)
    return pid if pid_alive(pid) else None


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ServiceError(f"`{name}` is not installed; remedy: "
                           f"apt-get install --no-install-recommends {package}")
    return path


def start(settings: Settings) -> dict[str, str]:
    """Start (or reuse) Pushgateway, the metrics server and Prometheus; return their URLs."""
    d = _dir(settings)
    procs = {
        "pushgateway": ([_binary("prometheus-pushgateway", "prometheus-pushgateway"),
                         f"--web.listen-address={LOOPBACK}:{PUSHGATEWAY_PORT}",
                         f"--persistence.file={d / 'pushgateway.db'}"],
                        PUSHGATEWAY_PORT, "/-/ready"),
        "metrics": ([sys.executable, "-m", "clipforge_cli.metrics", "--port", str(METRICS_PORT)],
                    METRICS_PORT, "/metrics"),
        "prometheus": ([_binary("prometheus", "prometheus"), f"--config.file={PROM_CONFIG}",
                        f"--storage.tsdb.path={d / 'prometheus-data'}",
                        f"--web.listen-address={LOOPBACK}:{PROMETHEUS_PORT}"],
                       PROMETHEUS_PORT, "/-/ready"),
    }
    env = {**os.environ, "CLIPFORGE_HOME": str(Path(settings.home).expanduser())}
    for name, (argv, port, ready) in procs.items():
        pid_file = d / f"{name}.pid"
        pid = _running(pid_file)
        if pid is None:
            if not port_free(port):
                raise ServiceError(f"port {LOOPBACK}:{port} for {name} is taken by another "
                                   "process; stop it, then run `clipforge up --metrics` again")
            with (d / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log,  # noqa: S603
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            pid_file.write_text(str(proc.pid))
            pid = proc.pid
        url = f"http://{LOOPBACK}:{port}{ready}"
        if not wait_http(url, READY_TIMEOUT_S, alive=functools.partial(pid_alive, pid)):
            raise ServiceError(f"{url} ({name}) did not answer within {READY_TIMEOUT_S:g} s; "
                               f"see {d / (name + '.log')}")
    return {
        "prometheus_url": f"http://{LOOPBACK}:{PROMETHEUS_PORT}",
        "pushgateway_url": f"http://{LOOPBACK}:{PUSHGATEWAY_PORT}",
        "metrics_url": f"http://{LOOPBACK}:{METRICS_PORT}/metrics",
    }


def stop(settings: Settings) -> list[str]:
    """Stop what :func:`start` started (idempotent); returns the names stopped."""
    d = _dir(settings)
    stopped = []
    for name in ("prometheus", "metrics", "pushgateway"):
        pid_file = d / f"{name}.pid"
        pid = _running(pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, timeout=STOP_TIMEOUT_S):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped
