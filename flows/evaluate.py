"""`clipforge eval TRUTH.json`: the real pipeline over every case of a truth file (its cut
quality is scored by :func:`clipforge.evaluate.cut_quality_for`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow

from clipforge.config import load_settings
from clipforge.errors import ClipforgeError
from clipforge.evaluate import CaseScore, score_case
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
    parts = list(truth.get("parts", {}).values())
    for case, edl, error in edls:
        scores.append(score_case(case, edl, words, error, parts))
    return scores
