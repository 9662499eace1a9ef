"""Retry and concurrency policy shared by the tasks.

Transient failures (a database or Redis blip, an I/O or network error) are retried with
exponential backoff; bad input, a missing match, a configuration problem or a budget stop
never are — rerunning cannot fix them and would only cost time or money.

Importing this module does not import prefect (``flows/ops.py`` reads ``HEAVY_TAG``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from clipforge.errors import ClipforgeError, ServiceError
from clipforge.supervise.shared_results import (
    RESULTS_REDIS_URL_ENV,
    SHARED_RESULTS_ENV,
    results_redis_url,
    shared_results_enabled,
)

if TYPE_CHECKING:
    from prefect.cache_policies import CachePolicy
    from prefect.locking.protocol import LockManager

HEAVY_TAG = "clipforge-heavy"  # decode/ASR/render; `clipforge up` limits it per server
RETRIES = 2
RETRY_DELAYS = [2.0 * 2**i for i in range(RETRIES)]  # exponential backoff: 2 s, 4 s


def is_transient(exc: BaseException | None) -> bool:
    if isinstance(exc, ServiceError):
        return True
    if isinstance(exc, ClipforgeError):
        return False
    return isinstance(exc, OSError | TimeoutError)


def retry_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure looks transient."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException as err:  # the state may re-raise its exception
        exc = err
    return is_transient(exc if isinstance(exc, BaseException) else None)


def shared_lock_manager(env: Mapping[str, str] | None = None) -> LockManager | None:
    """A ``RedisLockManager`` on the shared-results Redis, or None when not opted in."""
    if not shared_results_enabled(env):
        return None
    url = results_redis_url(env)
    if not url:
        raise ValueError(f"{SHARED_RESULTS_ENV}=redis needs {RESULTS_REDIS_URL_ENV} or "
                         "CLIPFORGE_REDIS_URL")
    from prefect_redis.locking import RedisLockManager

    return RedisLockManager(connection_url=url)


def shared_cache_policy(policy: CachePolicy,
                        env: Mapping[str, str] | None = None) -> CachePolicy:
    """``policy`` with the Redis lock manager and ``SERIALIZABLE`` isolation when shared
    results are on (so two workers never compute one cache key at once); unchanged
    otherwise. Evaluated at import time of the module that defines the task."""
    manager = shared_lock_manager(env)
    if manager is None:
        return policy
    return policy.configure(lock_manager=manager, isolation_level="SERIALIZABLE")


def cached_by(key_fn: Any) -> CachePolicy:
    """The cache policy of a task keyed by ``key_fn``: with shared results on, two workers
    never compute one key at once (the Redis lock manager, see ``shared_cache_policy``)."""
    from prefect.cache_policies import CacheKeyFnPolicy

    return shared_cache_policy(CacheKeyFnPolicy(cache_key_fn=key_fn))
