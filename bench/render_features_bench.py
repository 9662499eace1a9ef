"""Render-speed cost of burned captions and of reframing, through the real ``render()``.

    .venv/bin/python bench/render_features_bench.py [SOURCE] [--repeats 3] [--threads 0]

One EDL (three 4 s segments of SOURCE at 7/36/65 % of it, default
../shared/media/talk_en_42s..., cuts),
rendered with clipforge ``render()`` four ways, interleaved, median wall time of
``--repeats``: plain (source aspect), burned captions (``captions.mode = burn``), 9:16
reframing (``plan_reframe`` layout auto over ``face_track``; the analysis is timed
separately, it is not part of a render), and 9:16 with captions. Words are synthetic (a
word every 0.3 s, 0.25 s long, ordinary English text): libass's cost depends on the number
of events and glyphs, not on what was said. Loudness pass 1 is measured once, outside the
timings. Encoder: ``Settings()`` defaults (libx264 veryfast CRF 20). JSON goes to
bench/results/render_features.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.config import Settings  # noqa: E402
from clipforge.edl import Edl, EdlCaptions, EdlWord, Segment  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.reframe import face_track, plan_reframe  # noqa: E402
from clipforge.render import measure_loudness, output_format_for, render  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "media" / "talk_en_42s__auto-editor_example.mp4"
RESULTS = REPO / "bench" / "results"
TEXT = ("so the question we keep asking is what does it cost and who pays for it in the "
        "end because nobody wants to talk about that part").split()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    src = Path(args.source)
    info = probe(src)
    v = info.video
    assert v is not None, "a video source is needed"
    dur = info.duration_s
    seg = min(4.0, dur / 5)
    spans = [(round(f * dur, 3), round(f * dur + seg, 3)) for f in (0.07, 0.36, 0.65)]
    t0 = time.perf_counter()
    ft = face_track(src, info.duration_us)
    analysis_s = time.perf_counter() - t0
    reframes = [plan_reframe((round(a * 1e6), round(b * 1e6)), ft, ft.cuts_us, [], "9:16",
                             "auto", v.display_width, v.display_height, v.fps)
                for a, b in spans]
    words = [EdlWord(start=round(a + 0.3 * k, 6), end=round(a + 0.3 * k + 0.25, 6),
                     text=TEXT[(k + i * 7) % len(TEXT)])
             for i, (a, b) in enumerate(spans) for k in range(int((b - a) / 0.3))]
    fmt = output_format_for(info)
    fps = f"{fmt.fps.numerator}/{fmt.fps.denominator}"
    base = dict(source={"uri": src.resolve().as_uri(), "sha256": "ab" * 32,
                        "duration": info.duration_s}, prompt="bench", highlights=[])
    rw, rh = reframes[0].width, reframes[0].height

    def edl(reframed: bool, captions: bool) -> Edl:
        w, h = (rw, rh) if reframed else (fmt.width, fmt.height)
        segs = [Segment(source_in=a, source_out=b, reframe=r if reframed else None)
                for (a, b), r in zip(spans, reframes, strict=True)]
        return Edl(**base, output={"width": w, "height": h, "fps": fps, "loudness_lufs": -14.0},
                   segments=segs, words=words if captions else [],
                   captions=EdlCaptions(mode="burn") if captions else None)

    cases = {"plain": edl(False, False), "captions": edl(False, True),
             "reframe_9x16": edl(True, False), "reframe_9x16_captions": edl(True, True)}
    settings = Settings(cpu_threads=args.threads)
    loud = measure_loudness(info.path, info)
    times: dict[str, list[float]] = {k: [] for k in cases}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for name, e in cases.items():
                t = time.perf_counter()
                render(e, info, Path(d) / f"{name}.mp4", settings=settings, loudness=loud)
                times[name].append(time.perf_counter() - t)
    reel_s = sum(b - a for a, b in spans)
    med = {k: statistics.median(x) for k, x in times.items()}
    out = {
        "source": src.name, "source_size": f"{v.display_width}x{v.display_height}",
        "reel_s": reel_s, "repeats": args.repeats, "threads": args.threads,
        "sizes": {"plain": f"{fmt.width}x{fmt.height}", "reframe": f"{rw}x{rh}"},
        "layouts": [r.layout for r in reframes],
        "face_track_s": round(analysis_s, 2),
        "render_s": {k: round(x, 2) for k, x in med.items()},
        "x_realtime": {k: round(reel_s / x, 2) for k, x in med.items()},
        "cost_vs_plain": {k: round(x / med["plain"], 3) for k, x in med.items()},
        "captions_vs_reframe_9x16": round(med["reframe_9x16_captions"] / med["reframe_9x16"], 3),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "render_features.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
