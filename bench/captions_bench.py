"""Render-speed cost of burned captions, same reel, same run.

    PYTHONPATH=. .venv/bin/python bench/captions_bench.py [SOURCE] [--height 720]
        [--vertical] [--repeats 3] [--threads 0]

Transcribes SOURCE (default: clipforge/samples/talk_en_42s.mp4) once, builds a reel of
three 4 s segments (cuts at word pauses, the middle one entering with a 0.3 s crossfade),
renders it once with clipforge ``render()`` (timed: the full render), then times, median
of ``--repeats``, interleaved, the joiner's work on that reel with the join settings
(decode + libx264 veryfast CRF 20, audio copied) WITHOUT and WITH the ``ass`` filter step
``caption_filter(...)`` — the exact step the joiner will run when captions are burned.
Prints the encode ratio and the full-render ratio ``(render + delta) / render``. Writes a
frame grab of the captioned reel and JSON to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from clipforge import ffmpeg
from clipforge.audio import decode_mono_16k
from clipforge.captions import caption_filter, check_font, load_style, reel_words, write_ass
from clipforge.captions.reeltime import words_for_edl
from clipforge.config import Settings
from clipforge.edl import Edl, EdlCaptions, EdlOutput, EdlSource, Segment, Transition
from clipforge.probe import probe
from clipforge.render import render
from clipforge.transcribe import transcribe

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _segments(words: list, duration: float) -> list[Segment]:
    """Three segments of up to 4 s of speech (from words 10%, 40%, 70% in), each starting
    and ending in a pause between words."""
    segs: list[Segment] = []
    n = len(words)
    for k, first in enumerate((n // 10, 4 * n // 10, 7 * n // 10)):
        t_end = words[first].start_us / 1e6 + 4.0
        last = max([first] + [i for i in range(first, n) if words[i].end_us / 1e6 <= t_end])
        a = (words[first - 1].end_us + words[first].start_us) / 2e6 if first else 0.0
        b = (words[last].end_us + words[last + 1].start_us) / 2e6 \
            if last + 1 < n else min(duration, words[last].end_us / 1e6 + 0.3)
        tr = Transition(type="crossfade", duration=0.3) if k == 1 else Transition()
        segs.append(Segment(source_in=round(a, 3), source_out=round(b, 3), transition_in=tr))
    return segs


def _encode(src: Path, out: Path, vf: str | None, settings: Settings) -> float:
    argv = ["ffmpeg", "-nostdin", "-v", "error", "-threads", str(settings.cpu_threads),
            "-i", str(src), *(["-vf", vf] if vf else []),
            "-threads", str(settings.cpu_threads), "-c:v", "libx264",
            "-preset", settings.video_preset, "-crf", str(settings.video_crf),
            "-pix_fmt", "yuv420p", "-c:a", "copy", "-y", str(out)]  # fmt: skip
    t = time.perf_counter()
    ffmpeg.run(argv, timeout=900)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("source", nargs="?", default=str(REPO / "clipforge/samples/talk_en_42s.mp4"))
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--vertical", action="store_true", help="9:16 canvas (pillar-boxed)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    settings = Settings(cpu_threads=args.threads)
    src = Path(args.source)
    info = probe(src)
    h = args.height
    w = (h * 9 // 16) // 2 * 2 if args.vertical else (h * 16 // 9) // 2 * 2
    words = list(transcribe(decode_mono_16k(src), settings, source=str(src)).words)
    segs = _segments(words, info.duration_s)
    edl = Edl(
        source=EdlSource(uri=src.resolve().as_uri(), sha256="0" * 64, duration=info.duration_s),
        prompt="bench", output=EdlOutput(width=w, height=h, fps="30", loudness_lufs=-14.0),
        highlights=[], segments=segs, words=words_for_edl(words, segs),
        captions=EdlCaptions(mode="burn"),
    )
    fps = Fraction(edl.output.fps)
    style = load_style("default", w, h)
    t = time.perf_counter()
    font = check_font(style.font, style.bold)
    font_check_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory(prefix="clipforge-capbench-") as tmp_s:
        tmp = Path(tmp_s)
        reel = tmp / "reel.mp4"
        t = time.perf_counter()
        result = render(edl, info, reel, settings=settings)
        render_s = time.perf_counter() - t
        ass = write_ass(tmp / "reel.ass", reel_words(edl.words, segs, fps), fps, style,
                        result.frames)
        vf = caption_filter(ass)
        plain, burned = [], []
        for _ in range(args.repeats):
            plain.append(_encode(reel, tmp / "plain.mp4", None, settings))
            burned.append(_encode(reel, tmp / "burned.mp4", vf, settings))
        RESULTS.mkdir(parents=True, exist_ok=True)
        grab = RESULTS / f"captions_frame_{w}x{h}.png"
        mid = result.duration_s * 0.2
        ffmpeg.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{mid:.3f}",
                    "-i", str(tmp / "burned.mp4"), "-frames:v", "1", "-y", str(grab)])
    p, b = statistics.median(plain), statistics.median(burned)
    figures = {
        "source": str(src), "canvas": f"{w}x{h}", "reel_s": round(result.duration_s, 3),
        "frames": result.frames, "render_s": round(render_s, 3),
        "join_encode_plain_s": round(p, 3), "join_encode_captions_s": round(b, 3),
        "encode_ratio": round(b / p, 3),
        "full_render_ratio": round((render_s + b - p) / render_s, 3),
        "font": font, "font_check_s": round(font_check_s, 3), "repeats": args.repeats,
        "threads": args.threads, "frame_grab": str(grab),
    }
    (RESULTS / "captions.json").write_text(json.dumps(figures, indent=2) + "\n")
    for k, v in figures.items():
        print(f"{k:>24}: {v}")
    print(f"burned captions cost x{b / p:.3f} on the join encode, "
          f"x{(render_s + b - p) / render_s:.3f} on the whole render")
    return 0


if __name__ == "__main__":
    sys.exit(main())
