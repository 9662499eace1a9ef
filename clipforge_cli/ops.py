"""`clipforge up | down | enqueue`: the local production stack and the job backlog.

Hooked into ``clipforge_cli.main.build_parser`` with ``register(sub)``. Nothing here
imports prefect: ``up``/``down`` drive the ``prefect`` CLI in subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from clipforge.config import load_settings


def cmd_up(args: argparse.Namespace) -> int:
    from clipforge.supervise import prefect_stack as ops

    settings = load_settings()
    workers = args.workers
    monitoring: dict[str, str] = {}
    if args.metrics:  # before the workers start, so their flow runs push to the gateway
        from clipforge.supervise import monitoring as metrics_stack

        print("clipforge: starting Prometheus, the Pushgateway and `clipforge metrics` ...",
              file=sys.stderr)
        monitoring = metrics_stack.start(settings)
        os.environ.setdefault("CLIPFORGE_PUSHGATEWAY_URL", monitoring["pushgateway_url"])
    print(f"clipforge: starting PostgreSQL, Redis, the Prefect server and {workers} "
          f"worker{'s' if workers != 1 else ''} ...", file=sys.stderr)
    info = ops.up(settings, with_metrics=args.metrics, port=args.port, workers=workers,
                  worker_limit=args.worker_limit, shared_results=args.shared_results,
                  listen=args.listen)
    api = info["api_url"]
    home = info["prefect_home"]
    example = json.dumps({
        "video": "/abs/path/video.mp4", "prompt": "the part about pricing",
        "out_dir": "/abs/path/out", "target_seconds": 60, "aspect": "9:16"})
    print(f"Prefect UI:   {info['ui_url']}")
    print(f"API:          {api}")
    if info.get("listen", "127.0.0.1") != "127.0.0.1":
        print(f"other hosts:  PREFECT_API_URL={info['public_api_url']} prefect worker start "
              f"--pool {info['work_pool']}   (from a clipforge checkout)")
    print(f"server:       pid {info['server_pid']}"
          f"{' (reused)' if info['reused_server'] else ''}, log {info['server_log']}")
    pids = info.get("worker_pids") or [info["worker_pid"]]
    logs = info.get("worker_logs") or [info["worker_log"]]
    for i, (pid, log) in enumerate(zip(pids, logs, strict=False), start=1):
        label = "worker:" if len(pids) == 1 else f"worker {i}:"
        print(f"{label:<14}pid {pid}"
              f"{' (reused)' if info['reused_worker'] else ''}, pool {info['work_pool']}, "
              f"log {log}"
              f"{'' if info['worker_ready'] else ' (not ready yet: see its log)'}")
    print(f"database:     {info['database_url']}")
    if info.get("shared_results"):
        print(f"results:      {info['shared_results']} "
              f"({info.get('results_storage_block')})")
    if info.get("metrics_url"):
        print(f"metrics:      {info['metrics_url']} (Prefect server)")
    for name, url in monitoring.items():
        print(f"{name.removesuffix('_url') + ':':<14}{url}")
    print()
    print("Trigger a run: in the UI open Deployments > clip-video > Run > Custom run and "
          "fill in the form, or from a shell:")
    print(f"  export PREFECT_API_URL={api} PREFECT_HOME={shlex.quote(home)}")
    print(f"  prefect deployment run 'clip-video/clip-video' --params {shlex.quote(example)}")
    print("Queue jobs for the nightly backlog (02:00 UTC) and run it now:")
    print("  clipforge enqueue VIDEO --prompt '...' --out DIR")
    print("  prefect deployment run 'clip-backlog/nightly-backlog'")
    print("Stop: clipforge down   (add --services to stop PostgreSQL and Redis too)")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from clipforge.supervise import monitoring as metrics_stack
    from clipforge.supervise import prefect_stack as ops

    settings = load_settings()
    stopped = metrics_stack.stop(settings) + ops.down(settings, services=args.services)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_enqueue(args: argparse.Namespace) -> int:
    from clipforge.jobs import enqueue
    from clipforge.store import JobStore
    from clipforge.supervise import ensure_services
    from clipforge_cli.main import request_from_args

    request = request_from_args(args)
    if request is None:
        return 2
    video = Path(request.video).expanduser()
    if not video.is_file():
        print(f"clipforge: {video}: no such file. Check the path (relative paths are taken "
              "from the current directory).", file=sys.stderr)
        return 2
    settings = load_settings()
    urls = ensure_services(settings)
    store = JobStore(urls.database_url, maxconn=1, acquire_timeout=settings.db_acquire_timeout_s)
    try:
        store.migrate()
        job_id, created = enqueue(store, request.model_dump(mode="json"), settings,
                                  priority=args.priority, allow_duplicate=args.allow_duplicate)
    finally:
        store.close()
    if not created:
        print(f"job {job_id} with the same video and parameters is already queued or "
              "running; not queued again (--allow-duplicate to force)", file=sys.stderr)
    else:
        print(f"queued job {job_id} (priority {args.priority}); it runs with the nightly "
              "backlog or `prefect deployment run 'clip-backlog/nightly-backlog'`",
              file=sys.stderr)
    print(job_id)
    return 0


def _worker_count(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError(f"{value}: need 1 to 32 workers")
    return value


def register(subparsers: Any) -> None:
    """Add ``up``, ``down`` and ``enqueue`` to the ``clipforge`` sub-command parser."""
    u = subparsers.add_parser(
        "up", help="start PostgreSQL, Redis, the Prefect server + UI, deployments and "
        "workers")
    u.add_argument("--metrics", action="store_true",
                   help="also start Prometheus, the Pushgateway and `clipforge metrics` "
                   "(Debian packages, loopback) and serve the Prefect server's metrics")
    u.add_argument("--port", type=int, default=None,
                   help="Prefect server port on 127.0.0.1 (default: CLIPFORGE_PREFECT_PORT, "
                   "the previous port, 4200, or a free one)")
    u.add_argument("--workers", type=_worker_count, default=1, metavar="N",
                   help="process workers on the clipforge pool (default 1); each takes "
                   "flow runs, so N runs go at once")
    u.add_argument("--listen", default="127.0.0.1", metavar="HOST",
                   help="Prefect server bind address (default 127.0.0.1; 0.0.0.0 or a LAN "
                   "address lets workers on other machines connect: trusted networks only)")
    u.add_argument("--worker-limit", type=_worker_count, default=None, metavar="K",
                   help="at most K flow runs at once per worker (default: no limit)")
    u.add_argument("--shared-results", choices=("redis", "off"), default=None,
                   help="keep persisted task results (the cache) in the clipforge Redis so "
                   "workers on other machines share them (default: CLIPFORGE_SHARED_RESULTS)")
    u.set_defaults(func=cmd_up)

    d = subparsers.add_parser("down", help="stop the Prefect workers, then the server")
    d.add_argument("--services", action="store_true",
                   help="also stop the private PostgreSQL and Redis")
    d.set_defaults(func=cmd_down)

    e = subparsers.add_parser("enqueue", help="queue a job for the backlog flow; prints its id")
    e.add_argument("video")
    e.add_argument("--prompt", required=True, help="what to find, in plain language")
    e.add_argument("--out", required=True, help="output folder (edl.json, highlights.mp4)")
    e.add_argument("--target-seconds", type=float, default=60.0,
                   help="reel length (default 60)")
    e.add_argument("--clips", type=int, default=0, metavar="N",
                   help="N separate clips instead of one reel")
    e.add_argument("--priority", type=int, default=0, help="higher runs first (default 0)")
    from clipforge_cli.main import add_output_options

    add_output_options(e)
    e.add_argument("--no-render", action="store_true", help="write only the EDL")
    e.add_argument("--tonemap", action="store_true", help="tone-map HDR input to SDR BT.709")
    e.add_argument("--allow-duplicate", action="store_true",
                   help="queue even if the same job is already queued or running")
    e.set_defaults(func=cmd_enqueue)
