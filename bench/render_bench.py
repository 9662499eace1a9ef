"""Measure probe, loudness pass 1 and render speed on real media.

    .venv/bin/python bench/render_bench.py [SOURCE] [--segments N] [--seconds S]
        [--transition cut|fade|crossfade] [--preset veryfast] [--threads 0]

Prints one JSON object: wall times and speeds (output seconds per wall second). The
default source is ../shared/media/talk_en_42s__auto-editor_example.mp4; segments are
spread evenly over the source. The output goes to a temp dir and is deleted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.config import Settings  # noqa: E402
from clipforge.edl import Edl  # noqa: E402
from clipforge.probe import probe  # noqa: E402
from clipforge.render import measure_loudness, output_format_for, render  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "media" / "talk_en_42s__auto-editor_example.mp4"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each segment")
    ap.add_argument("--transition", choices=["cut", "fade", "crossfade"], default="cut")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    info = probe(args.source, tonemap=True)
    t_probe = time.monotonic() - t0

    fmt = output_format_for(info)
    dur = info.duration_s
    n = max(1, args.segments)
    step = dur / n
    seg_len = min(args.seconds, step * 0.9)
    segments = []
    for i in range(n):
        start = round(i * step, 3)
        tr = (
            {"type": args.transition, "duration": min(0.5, seg_len / 4)}
            if i > 0 and args.transition != "cut"
            else {"type": "cut", "duration": 0.0}
        )
        segments.append(
            {"source_in": start, "source_out": round(start + seg_len, 3), "transition_in": tr}
        )
    edl = Edl(
        source={"uri": Path(info.path).as_uri(), "sha256": "0" * 64, "duration": dur},
        prompt="bench",
        output={
            "width": fmt.width,
            "height": fmt.height,
            "fps": f"{fmt.fps.numerator}/{fmt.fps.denominator}",
            "loudness_lufs": -14.0,
        },
        highlights=[],
        segments=segments,
    )

    t0 = time.monotonic()
    loudness = measure_loudness(info.path, info)
    t_loud = time.monotonic() - t0

    settings = Settings(video_preset=args.preset, cpu_threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="clipforge-bench-") as tmp:
        t0 = time.monotonic()
        result = render(edl, info, Path(tmp) / "out.mp4", settings=settings, loudness=loudness)
        t_render = time.monotonic() - t0
        size = result.path.stat().st_size

    report = {
        "source": info.path,
        "source_duration_s": round(dur, 3),
        "output": f"{fmt.width}x{fmt.height}@{float(fmt.fps):.3f}",
        "segments": n,
        "transition": args.transition,
        "output_duration_s": round(result.duration_s, 3),
        "frames": result.frames,
        "probe_s": round(t_probe, 3),
        "loudness_pass1_s": round(t_loud, 3),
        "loudness_speed_x": round(dur / t_loud, 1) if t_loud and loudness else None,
        "render_s": round(t_render, 3),
        "render_speed_x": round(result.duration_s / t_render, 2),
        "gain_db": result.gain_db,
        "output_bytes": size,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
