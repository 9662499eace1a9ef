"""The local monitoring loop for `clipforge up --metrics`: Debian's Prometheus and
Pushgateway plus the long-lived `clipforge metrics` server, on loopback, with the shipped
configuration (deployments/prometheus/prometheus.yml and alerts.yml).

State (pids, logs, Prometheus data) lives under ``CLIPFORGE_HOME/metrics/``. Never imports
prefect.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from clipforge.config import Settings
from clipforge.errors import ServiceError

REPO = Path(__file__).resolve().parents[1]
PROM_CONFIG = REPO / "deployments" / "prometheus" / "prometheus.yml"
PROMETHEUS_PORT = 9090
PUSHGATEWAY_PORT = 9091
METRICS_PORT = 9464  # the scrape targets in prometheus.yml


def _dir(settings: Settings) -> Path:
    d = Path(settings.home).expanduser() / "metrics"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"{url} did not answer within {timeout:g} s; see the logs under "
                       "CLIPFORGE_HOME/metrics/")


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
                         f"--web.listen-address=127.0.0.1:{PUSHGATEWAY_PORT}",
                         f"--persistence.file={d / 'pushgateway.db'}"],
                        PUSHGATEWAY_PORT, "/-/ready"),
        "metrics": ([sys.executable, "-m", "flows.cli_metrics", "--port", str(METRICS_PORT)],
                    METRICS_PORT, "/metrics"),
        "prometheus": ([_binary("prometheus", "prometheus"), f"--config.file={PROM_CONFIG}",
                        f"--storage.tsdb.path={d / 'prometheus-data'}",
                        f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"],
                       PROMETHEUS_PORT, "/-/ready"),
    }
    env = {**os.environ, "CLIPFORGE_HOME": str(Path(settings.home).expanduser())}
    for name, (argv, port, ready) in procs.items():
        pid_file = d / f"{name}.pid"
        if _read_pid(pid_file) is None:
            if not _port_free(port):
                raise ServiceError(f"port 127.0.0.1:{port} for {name} is taken by another "
                                   "process; stop it, then run `clipforge up --metrics` again")
            with (d / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log,  # noqa: S603
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
            pid_file.write_text(str(proc.pid))
        _wait_http(f"http://127.0.0.1:{port}{ready}")
    return {
        "prometheus_url": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        "pushgateway_url": f"http://127.0.0.1:{PUSHGATEWAY_PORT}",
        "metrics_url": f"http://127.0.0.1:{METRICS_PORT}/metrics",
    }


def stop(settings: Settings) -> list[str]:
    """Stop what :func:`start` started (idempotent); returns the names stopped."""
    d = _dir(settings)
    stopped = []
    for name in ("prometheus", "metrics", "pushgateway"):
        pid_file = d / f"{name}.pid"
        pid = _read_pid(pid_file)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped
