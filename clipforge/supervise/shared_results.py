"""Settings of shared task results in Redis (opt-in, ``CLIPFORGE_SHARED_RESULTS=redis``).

The prefect-free half of ``flows.runners``: names and environment only, so that
``clipforge up`` can prepare workers without importing prefect. Saving the block and
the lock manager stay in ``flows.runners``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SHARED_RESULTS_ENV = "CLIPFORGE_SHARED_RESULTS"
RESULTS_REDIS_URL_ENV = "CLIPFORGE_RESULTS_REDIS_URL"
RESULTS_BLOCK_NAME = "clipforge-results"
# prefect_redis.RedisDatabase: a WritableFileSystem registered through prefect-redis's
# ``prefect.collections`` entry point, so flow-run processes find its class when they
# load the block. (prefect.blocks.redis.RedisStorageContainer is not: its module is not
# imported by a flow-run process, and loading it fails with UnknownBlockType.)
RESULTS_BLOCK_TYPE = "redis-database"
RESULTS_BLOCK_SLUG = f"{RESULTS_BLOCK_TYPE}/{RESULTS_BLOCK_NAME}"
STORAGE_BLOCK_SETTING = "PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def shared_results_enabled(env: Mapping[str, str] | None = None) -> bool:
    raw = (_env(env).get(SHARED_RESULTS_ENV) or "").strip().lower()
    if raw in ("", "0", "off", "false", "no", "local"):
        return False
    if raw == "redis":
        return True
    raise ValueError(f"{SHARED_RESULTS_ENV}={raw!r}: expected 'redis' or unset")


def results_redis_url(env: Mapping[str, str] | None = None) -> str | None:
    """The Redis for shared results and locks: ``CLIPFORGE_RESULTS_REDIS_URL``, else
    ``CLIPFORGE_REDIS_URL``."""
    e = _env(env)
    return (e.get(RESULTS_REDIS_URL_ENV) or e.get("CLIPFORGE_REDIS_URL") or "").strip() or None


def shared_results_env(redis_url: str) -> dict[str, str]:
    """Environment for Prefect workers (and so their flow runs) using shared results.

    The block itself must be saved on the server first (``flows.runners``
    ``save_results_block``)."""
    return {
        SHARED_RESULTS_ENV: "redis",
        RESULTS_REDIS_URL_ENV: redis_url,
        STORAGE_BLOCK_SETTING: RESULTS_BLOCK_SLUG,
    }
