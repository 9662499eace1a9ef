"""How the command line reaches Prefect: the one place that prepares its environment.

``clipforge run`` talks to a warm local Prefect server (one of clipforge's private
services, on the private PostgreSQL, started on first use and reused), so a run starts in
about a second and appears in the UI. ``PREFECT_API_URL`` set by the user wins. When the
local server cannot start, the run falls back to Prefect's ephemeral mode and says so.
``CLIPFORGE_PREFECT=ephemeral`` asks for ephemeral mode outright.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from clipforge.config import Settings
from clipforge.errors import ServiceError
from clipforge.supervise.prefect_procs import CLIENT_RETRY_ENV, CLIENT_RETRY_EXTRA_CODES

MODE_ENV = "CLIPFORGE_PREFECT"
# Ephemeral mode's own start-up wait; a loaded 2-core machine needs far more than the
# default 20 s (the engine polls, so an idle machine does not wait longer).
EPHEMERAL_STARTUP_TIMEOUT_S = "300"


def _defaults(home: Path) -> None:
    """Quiet, offline, private Prefect defaults; anything the user set wins."""
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                          EPHEMERAL_STARTUP_TIMEOUT_S)
    # ride out a restart of the server's PostgreSQL (see prefect_procs)
    os.environ.setdefault(CLIENT_RETRY_ENV, CLIENT_RETRY_EXTRA_CODES)


def prepare_prefect(settings: Settings) -> str | None:
    """Point this process's Prefect client at an API before prefect is imported; returns
    the API URL (None: ephemeral mode)."""
    _defaults(Path(settings.home).expanduser())
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if os.environ.get(MODE_ENV, "").lower() == "ephemeral":
        return None
    from clipforge.supervise.prefect_server import ensure_server

    try:
        api_url = ensure_server(settings)
    except ServiceError as exc:
        print(f"clipforge: the local Prefect server is unavailable ({exc.one_line()}); "
              "using Prefect's ephemeral mode for this run", file=sys.stderr)
        return None
    os.environ["PREFECT_API_URL"] = api_url
    return api_url


def quiet_expected_failures() -> None:
    """An expected failure prints its one-line reason, nothing else: Prefect's own
    tracebacks of a failed task or flow stay out of the terminal unless CLIPFORGE_DEBUG
    is set (the reason is on the job row and in the Prefect UI)."""
    if os.environ.get("CLIPFORGE_DEBUG"):
        return
    os.environ["PREFECT_LOGGING_LEVEL"] = os.environ.get("PREFECT_LOGGING_LEVEL_CLI", "CRITICAL")
    # EventsWorker/APILogWorker: Prefect's background senders (loggers outside "prefect")
    # warn "Still processing items" when they drain at exit on a busy machine
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.engine",
                 "EventsWorker", "APILogWorker"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def without_heartbeats() -> Any:
    """A settings context for a flow run the command line runs in its own process: no
    flow-run heartbeats. Their thread sleeps in 1 s steps and is joined when the run ends,
    which added up to a second to every run; a command-line run that dies is taken over
    by the next one through its job row (``clipforge.jobs``), not through heartbeats.
    Runs that workers execute (deployments, the backlog) keep them."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})
