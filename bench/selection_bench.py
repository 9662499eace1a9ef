"""The real selection (clipforge.select.select) on the dev set, per embedding model.

For every truth file (default: the composed episodes in out/eval, made by `make eval`,
and the public episode) the pipeline's own analysis is made once with the pipeline's
library calls: the transcript and delivery signals (clipforge.analysis.analyse_audio)
and the visual signals (clipforge.visual.visual_track), cached under
OUT/selection_cache/ by the source's sha256. Then, per model, the text analysis and
every case's prompt are embedded and ``select`` runs with the `clipforge eval` settings
(a 60 s reel on the source's frame grid). hit@1 / hit@3 and precision are computed as
`clipforge eval` computes them (clipforge.evaluate.score_case), so the figures match
its table; cut quality needs the rendered cuts and stays with `clipforge eval`.

Cost: process CPU seconds to embed the sources' sentences, per hour of source.

usage: PYTHONPATH=. python bench/selection_bench.py [TRUTH.json ...] [--out bench/results]
       [--model NAME=PATH ...] [--mpnet] [--cases]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from clipforge import select as sel  # noqa: E402
from clipforge import semantic, signals, textanalysis  # noqa: E402
from clipforge.analysis import analyse_audio  # noqa: E402
from clipforge.config import Settings, load_settings  # noqa: E402
from clipforge.errors import NoHighlightsError  # noqa: E402
from clipforge.evaluate import score_case  # noqa: E402
from clipforge.identity import file_sha256  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.visual import visual_track  # noqa: E402


def default_truths() -> list[Path]:
    found = sorted((REPO / "out" / "eval").glob("*.truth.json"))
    public = REPO.parent / "shared" / "eval" / "public_episode.truth.json"
    return found + ([public] if public.is_file() else [])


def analysis(video: Path, cache: Path) -> tuple[Any, Any, Any, Any]:
    """(probe info, transcript, audio signals, visual track), cached by content."""
    info, transcript, audio, visual, _ = timed_analysis(video, cache, load_settings())
    return info, transcript, audio, visual


def timed_analysis(video: Path, cache: Path, settings: Settings
                   ) -> tuple[Any, Any, Any, Any, float]:
    """:func:`analysis` with ``settings`` (e.g. another speech model), plus the audio
    analysis's CPU seconds; cached by content in ``cache`` (one cache per settings)."""
    info = probe(video)
    cache.mkdir(parents=True, exist_ok=True)
    f = cache / f"{file_sha256(video)}.timed.pkl"
    if f.is_file():  # written by this script on this machine
        transcript, audio, visual, cpu = pickle.loads(f.read_bytes())
        return info, transcript, audio, visual, cpu
    t0 = time.process_time()
    transcript, audio = analyse_audio(video, settings, duration_us=info.duration_us)
    cpu = time.process_time() - t0
    visual = (visual_track(str(video), duration_us=info.duration_us,
                           hop_us=signals.GRID_HOP_US) if info.video else None)
    f.write_bytes(pickle.dumps((transcript, audio, visual, cpu)))
    return info, transcript, audio, visual, cpu


def run_model(name: str, model: str, sets: list[dict[str, Any]], show: bool
              ) -> dict[str, Any]:
    semantic.embed(["warm up"], model)  # loading is not counted
    rows: list[dict[str, Any]] = []
    cpu = 0.0
    for st in sets:
        t0 = time.process_time()
        text = textanalysis.analyse_text(st["transcript"], lambda xs: semantic.embed(xs, model))
        cpu += time.process_time() - t0
        params = sel.SelectionParams.for_target(60.0)
        fps = st["info"].video.fps if st["info"].video else None
        if fps:
            params = dataclasses.replace(params, frame_rate=f"{fps.numerator}/{fps.denominator}")
        for case in st["cases"]:
            vec = semantic.embed([case["prompt"]], model)[0]
            ctx = sel.build_context(st["transcript"], text, st["audio"], case["prompt"], vec,
                                    st["visual"])
            try:
                picks = sel.select(ctx, params, prompt=case["prompt"])
            except NoHighlightsError:
                picks = []
            spans = [(p.cut_in_us / 1e6, p.cut_out_us / 1e6) for p in picks]
            # scored by clipforge eval's own function, on the highlights an EDL would hold
            sc = score_case(case, {"segments": [], "highlights": [
                {"start": a, "end": b, "text": p.candidate.text}
                for (a, b), p in zip(spans, picks, strict=True)]}, [])
            row = {"set": st["name"], "id": case["id"], "hit1": sc.hit1, "hit3": sc.hit3,
                   "precision": round(sc.overlap, 4),
                   "top_s": round(spans[0][1] - spans[0][0], 3) if spans else 0.0,
                   "top_text": sc.top_text}
            rows.append(row)
            if show:
                print(f"  {name[:18]:18s} {row['id']:22s} {'HIT ' if row['hit1'] else 'miss'} "
                      f"{row['precision']:.2f} {row['top_text'][:70]}")
    hours = sum(st["duration_s"] for st in sets) / 3600.0
    per_set = {}
    for st in sets:
        r = [x for x in rows if x["set"] == st["name"]]
        per_set[st["name"]] = {
            "cases": len(r), "hit@1": sum(x["hit1"] for x in r),
            "hit@3": sum(x["hit3"] for x in r),
            "precision": round(float(np.mean([x["precision"] for x in r])), 3),
            "mean_top_s": round(float(np.mean([x["top_s"] for x in r])), 2)}
    return {"model": name, "path": model, "sets": per_set, "cases": rows,
            "embed_cpu_s_per_source_hour": round(cpu / hours, 1) if hours else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("truths", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--model", action="append", default=[],
                    help="NAME=PATH of a sentence-transformers model folder (repeatable)")
    ap.add_argument("--mpnet", action="store_true",
                    help="also all-mpnet-base-v2 from its five PyPI part packages")
    ap.add_argument("--cases", action="store_true", help="print every case")
    args = ap.parse_args()
    truths = args.truths or default_truths()
    if not truths:
        raise SystemExit("no truth files: run `make eval` first, or name them")
    sets = []
    for t in truths:
        truth = json.loads(t.read_text())
        video = (t.parent / truth["video"]).resolve()
        info, transcript, audio, visual = analysis(video, args.out / "selection_cache")
        sets.append({"name": truth["video"].removesuffix(".mp4"), "info": info,
                     "transcript": transcript, "audio": audio, "visual": visual,
                     "cases": truth["cases"], "duration_s": info.duration_us / 1e6})
    models = [("all-MiniLM-L6-v2 (bundled, default)", "")]
    if args.mpnet:
        from embedding_bench import mpnet_dir

        models.append(("all-mpnet-base-v2", str(mpnet_dir(args.out / "models"))))
    for spec in args.model:
        name, _, path = spec.partition("=")
        if not path or not Path(path).is_dir():
            raise SystemExit(f"--model {spec!r}: expected NAME=PATH to a model folder")
        models.append((name, path))
    results = [run_model(n, m, sets, args.cases) for n, m in models]
    print(f"{'model':38s} {'set':20s} {'hit@1':>6s} {'hit@3':>6s} {'prec':>5s} {'top s':>6s}")
    for r in results:
        for s, v in r["sets"].items():
            print(f"{r['model'][:38]:38s} {s:20s} {v['hit@1']:>3}/{v['cases']:<2} "
                  f"{v['hit@3']:>3}/{v['cases']:<2} {v['precision']:5.2f} {v['mean_top_s']:6.1f}")
        tot = sum(v["hit@1"] for v in r["sets"].values())
        n = sum(v["cases"] for v in r["sets"].values())
        print(f"{r['model'][:38]:38s} {'all':20s} {tot:>3}/{n:<2}  embedding "
              f"{r['embed_cpu_s_per_source_hour']} CPU-s per source hour")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "selection.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
