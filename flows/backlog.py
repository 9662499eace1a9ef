"""The backlog flow: run queued jobs (``clipforge enqueue``) one after another.

Deployed as ``clip-backlog/nightly-backlog`` (cron ``0 2 * * *`` UTC). Each job is
claimed with ``claim_next`` (``FOR UPDATE SKIP LOCKED``: priority, then age), so any
number of backlog runs or workers can drain the queue together without taking a job
twice. Every job runs as a ``clip-video`` subflow with its ``job_id``; a job that fails
is recorded ``failed`` by the clip flow itself and the next one still runs.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from pydantic import ValidationError

from clipforge.config import load_settings
from clipforge.store import JobStore
from clipforge.supervise import ensure_services
from flows.clip import clip_job
from flows.params import ClipRequest

REQUEST_FIELDS = frozenset(ClipRequest.model_fields)


def request_for_job(job: dict[str, Any]) -> ClipRequest:
    """The ``ClipRequest`` that runs a claimed job row.

    The row's ``source`` and ``output_dir`` win over the stored parameters (they are what
    the job was enqueued for); unknown keys in ``parameters`` are ignored.
    """
    params = {k: v for k, v in (job.get("parameters") or {}).items() if k in REQUEST_FIELDS}
    params["video"] = job["source"]
    if job.get("output_dir"):
        params["out_dir"] = job["output_dir"]
    params.setdefault("prompt", job.get("prompt"))
    params["job_id"] = int(job["id"])
    return ClipRequest(**params)


@flow(name="clip-backlog", validate_parameters=True)
def run_backlog(max_jobs: int = 10) -> list[int]:
    """Claim and run up to ``max_jobs`` queued jobs; return the ids processed (succeeded
    or failed, in claim order)."""
    logger = get_run_logger()
    settings = load_settings()
    urls = ensure_services(settings)
    store = JobStore(urls.database_url, maxconn=2, acquire_timeout=settings.db_acquire_timeout_s)
    processed: list[int] = []
    try:
        store.migrate()
        while len(processed) < max_jobs:
            job = store.claim_next()
            if job is None:
                break
            job_id = int(job["id"])
            processed.append(job_id)
            try:
                request = request_for_job(job)
            except (ValidationError, KeyError, TypeError) as exc:
                # bad stored parameters: the clip flow never starts, so record it here
                store.finish_job(job_id, status="failed", error_code="invalid_parameters",
                                 error=f"stored parameters are not a valid request: {exc}"[:2000])
                logger.error("job %s: invalid stored parameters: %s", job_id, exc)
                continue
            state = clip_job(request, return_state=True)
            if state.is_completed():
                logger.info("job %s succeeded", job_id)
            else:
                logger.warning("job %s ended %s: %s", job_id, state.name, state.message)
    finally:
        store.close()
    logger.info("backlog: processed %d job(s): %s", len(processed), processed)
    return processed
