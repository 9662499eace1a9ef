"""Retry and concurrency policy shared by the tasks.

Transient failures (a database or Redis blip, an I/O or network error) are retried with
exponential backoff; bad input, a missing match, a configuration problem or a budget stop
never are — rerunning cannot fix them and would only cost time or money.

Importing this module does not import prefect (``flows/ops.py`` reads ``HEAVY_TAG``).
"""

from __future__ import annotations

from typing import Any

from clipforge.errors import ClipforgeError, ServiceError

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
