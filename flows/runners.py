"""Where a flow's mapped/submitted tasks run, and where results and cache locks live.

Task runner (``task_runner_from_env``), chosen by environment variables so the same
deployment runs on a laptop, on one big machine, or fans out to a Dask cluster:

- default: ``ThreadPoolTaskRunner(max_workers=4)`` (threads in the flow-run process);
- ``CLIPFORGE_DASK_ADDRESS=tcp://host:8786``: ``DaskTaskRunner(address=...)``, an
  existing cluster (``dask scheduler`` + ``dask worker`` on other machines);
- ``CLIPFORGE_DASK_LOCAL_WORKERS=N``: a ``LocalCluster`` of N worker processes with one
  thread each, started and stopped with each flow run.

Only ``.map``/``.submit`` go through the task runner; a task called directly runs in
the flow-run process whatever the runner. Dask needs every argument and result of a
submitted task to pickle (``clipforge.cost.JobBudget`` does, see there), and every Dask
worker needs a checkout of this repository on its ``sys.path``, the same environment,
and network access to the Prefect API, PostgreSQL and the LLM endpoint.

Shared results (``CLIPFORGE_SHARED_RESULTS=redis``, opt-in): persisted task results go
to a ``prefect_redis.RedisDatabase`` block (``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``) in the
Redis clipforge already runs, so a transcript computed on one worker machine is a cache
hit on another; ``shared_lock_manager()`` gives a ``prefect_redis.RedisLockManager`` on
the same Redis for cache policies that want ``SERIALIZABLE`` isolation (two workers do
not compute the same cache key at once). Prefect has no setting for a default lock
manager: it is configured per cache policy (``shared_cache_policy``).

Importing this module imports prefect but never dask or prefect_dask unless a Dask
mode is selected.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from prefect.task_runners import ThreadPoolTaskRunner

from clipforge.supervise.shared_results import (  # noqa: F401 - re-exported
    RESULTS_BLOCK_NAME,
    RESULTS_BLOCK_SLUG,
    RESULTS_BLOCK_TYPE,
    RESULTS_REDIS_URL_ENV,
    SHARED_RESULTS_ENV,
    STORAGE_BLOCK_SETTING,
    results_redis_url,
    shared_results_enabled,
    shared_results_env,
)
from tasks.policy import shared_cache_policy, shared_lock_manager  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from prefect.task_runners import TaskRunner

DASK_ADDRESS_ENV = "CLIPFORGE_DASK_ADDRESS"
DASK_LOCAL_WORKERS_ENV = "CLIPFORGE_DASK_LOCAL_WORKERS"
THREADS_ENV = "CLIPFORGE_TASK_THREADS"
DEFAULT_THREADS = 4


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r}: need at least 1")
    return value


def task_runner_mode(env: Mapping[str, str] | None = None) -> str:
    """``"threads"``, ``"dask-address"`` or ``"dask-local"``; raises ``ValueError`` on
    contradictory or malformed settings (before any cluster is touched)."""
    e = _env(env)
    address = (e.get(DASK_ADDRESS_ENV) or "").strip()
    local = (e.get(DASK_LOCAL_WORKERS_ENV) or "").strip()
    if address and local:
        raise ValueError(f"set {DASK_ADDRESS_ENV} (an existing cluster) or "
                         f"{DASK_LOCAL_WORKERS_ENV} (a local one), not both")
    if address:
        if not address.startswith(("tcp://", "tls://", "ucx://", "inproc://")) \
                or address.rstrip("/").endswith(":0"):
            raise ValueError(f"{DASK_ADDRESS_ENV}={address!r}: expected the scheduler's "
                             "address, e.g. tcp://10.0.0.5:8786")
        return "dask-address"
    if local:
        _positive_int(DASK_LOCAL_WORKERS_ENV, local)
        return "dask-local"
    return "threads"


def task_runner_from_env(env: Mapping[str, str] | None = None) -> TaskRunner[Any]:
    """The task runner the environment asks for (see the module docstring)."""
    e = _env(env)
    mode = task_runner_mode(e)
    if mode == "threads":
        raw = (e.get(THREADS_ENV) or "").strip()
        threads = _positive_int(THREADS_ENV, raw) if raw else DEFAULT_THREADS
        return ThreadPoolTaskRunner(max_workers=threads)
    from prefect_dask import DaskTaskRunner  # only now: dask is heavy and optional

    if mode == "dask-address":
        return DaskTaskRunner(address=e[DASK_ADDRESS_ENV].strip())
    n = _positive_int(DASK_LOCAL_WORKERS_ENV, e[DASK_LOCAL_WORKERS_ENV].strip())
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": n, "threads_per_worker": 1, "processes": True,
        "dashboard_address": None,  # no web server on a fixed port (8787)
    })


# --------------------------------------------------------------------------- shared results


def save_results_block(redis_url: str, name: str = RESULTS_BLOCK_NAME,
                       key_ttl: int | None = None) -> str:
    """Save (overwrite) a ``prefect_redis.RedisDatabase`` block on the current Prefect
    API; returns its slug for ``PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK``.

    ``redis_url``: ``redis://[user:pass@]host:port/db``, ``rediss://...``,
    ``redis+sentinel://...`` or ``unix:///path/redis.sock`` (kept verbatim as the
    block's ``connection_url``). ``key_ttl``: seconds each result key lives (default:
    forever; results can be large, so bound Redis memory with ``maxmemory`` or this).
    """
    from prefect_redis import RedisDatabase
    from pydantic import SecretStr

    block = RedisDatabase(connection_url=SecretStr(redis_url), key_ttl=key_ttl)
    block.save(name, overwrite=True)
    return f"{RedisDatabase.get_block_type_slug()}/{name}"


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.runners save-results-block REDIS_URL`` (used by ``clipforge up``
    with the worker's ``PREFECT_API_URL``): prints the block slug."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "save-results-block":
        print("usage: python -m flows.runners save-results-block REDIS_URL", file=sys.stderr)
        return 2
    print(save_results_block(args[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
