"""`clipforge eval TRUTH.json`: the real pipeline over every case of a truth file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow

from clipforge.audio import decode_mono_16k
from clipforge.config import load_settings
from clipforge.errors import ClipforgeError
from clipforge.evaluate import (
    INDEPENDENT_METHOD,
    CaseScore,
    CutQuality,
    cut_quality,
    independent_words,
    reference_audio,
    score_case,
    speech_level_db,
)
from clipforge.identity import file_sha256
from clipforge.probe import probe
from flows.clip import clip_job
from flows.params import ClipRequest
from tasks.stages import audio_analysis_task


@flow(name="evaluate-truth")
def evaluate_truth(truth_path: str, out_dir: str, target_seconds: float = 60.0
                   ) -> list[CaseScore]:
    truth = json.loads(Path(truth_path).read_text())
    video = str((Path(truth_path).parent / truth["video"]).resolve())
    scores: list[CaseScore] = []
    edls: list[tuple[dict[str, Any], dict[str, Any] | None, str]] = []
    for case in truth["cases"]:
        case_dir = Path(out_dir) / str(case["id"])
        try:
            result = clip_job(ClipRequest(video=video, prompt=case["prompt"],
                                            out_dir=str(case_dir), target_seconds=target_seconds,
                                            render=False))
            edls.append((case, json.loads(Path(result.edl_path).read_text()), ""))
        except ClipforgeError as exc:
            edls.append((case, None, exc.one_line()))
    # The words the cuts are checked against: the (cached) transcript of the same run.
    info = probe(video)
    transcript, _ = audio_analysis_task(video, file_sha256(video), info.duration_us,
                                        load_settings())
    words = [(w.start_us / 1e6, w.end_us / 1e6) for w in transcript.words]
    for case, edl, error in edls:
        scores.append(score_case(case, edl, words, error))
    return scores


def cut_quality_for(truth_path: str, out_dir: str, scores: list[CaseScore]
                    ) -> tuple[list[CutQuality], dict[str, Any]]:
    """Cut quality of each scored case's EDL (``OUT/<case id>/edl.json``), and what the
    independent word pass was (method, audio, segments, segments left unaligned).

    The cuts' levels are measured on the source's audio, the independent word pass runs
    on :func:`clipforge.evaluate.reference_audio`. That pass is cached in
    ``OUT/independent_words.json``, keyed by its audio's sha256 and the pass's method."""
    truth = json.loads(Path(truth_path).read_text())
    video = str((Path(truth_path).parent / truth["video"]).resolve())
    samples = decode_mono_16k(video)
    ref_audio = reference_audio(Path(truth_path), truth)
    sha = file_sha256(ref_audio)
    cache = Path(out_dir) / "independent_words.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    if cached.get("sha256") != sha or cached.get("method") != INDEPENDENT_METHOD:
        speech_track = ref_audio != Path(video)
        words, info = independent_words(decode_mono_16k(ref_audio) if speech_track else samples)
        info["audio"] = "speech track without the noise" if speech_track else \
            "the source's audio"
        cached = {"sha256": sha, **info, "words": words}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached) + "\n")
    ref_words = [(float(a), float(b)) for a, b in cached["words"]]
    speech_db = speech_level_db(samples)
    out = []
    for s in scores:
        edl_file = Path(out_dir) / s.id / "edl.json"
        edl = json.loads(edl_file.read_text()) if not s.error and edl_file.is_file() else None
        out.append(cut_quality(edl, samples, ref_words, speech_db))
    return out, {k: v for k, v in cached.items() if k not in ("sha256", "words")}
