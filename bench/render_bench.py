"""Render speed: clipforge (FIFO / temp files) vs naive ffmpeg cut+concat vs moviepy.

    .venv/bin/python bench/render_bench.py compare [--heights 720,1080] [--segments 6]
        [--seconds 5] [--methods fifo,tempfile,ffmpeg_naive,moviepy] [--threads 0]
    .venv/bin/python bench/render_bench.py single [SOURCE] [--segments N] [--seconds S]
        [--transition cut|fade|crossfade] [--preset veryfast] [--threads 0]

``compare`` (the default) builds, in a temp dir, a 720p30 and a 1080p30 source of
84.8 s from ../shared/media/talk_en_42s__auto-editor_example.mp4 (``-stream_loop 1``; the
720p one is a stream copy, the 1080p one an upscale, libx264 ultrafast, GOP 2 s), then
renders the same EDL (N segments x S s spread over the source, all cuts) at the source's
size with each method and prints a table; JSON goes to bench/results/render.json.

Methods (all libx264 ``veryfast`` CRF 20 + AAC 160k, threads as given, 0 = FFmpeg's choice):
  fifo          clipforge ``render()`` (writers -> FIFOs -> one joiner encode)
  tempfile      clipforge ``render(use_fifo=False)``: writers write NUT files, same join
  ffmpeg_naive  ``ffmpeg -ss IN -i SRC -t DUR`` re-encode of each segment to an MP4, then
                the concat demuxer with ``-c copy``
  moviepy       ``VideoFileClip.subclipped`` + ``concatenate_videoclips`` +
                ``write_videofile(codec="libx264", preset="veryfast", audio_codec="aac")``
                (IMAGEIO_FFMPEG_EXE=/usr/bin/ffmpeg, so the same FFmpeg encodes)
clipforge's loudness pass 1 is measured once and reported separately (``loudness_s``);
the render figures exclude it (the pipeline measures it once per source, not per render).

``single`` is the older one-render report (probe, loudness pass 1, render speed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.config import Settings  # noqa: E402
from clipforge.edl import Edl  # noqa: E402
from clipforge.probe import MediaInfo, probe  # noqa: E402
from clipforge.render import measure_loudness, output_format_for, render  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "media" / "talk_en_42s__auto-editor_example.mp4"
RESULTS = REPO / "bench" / "results"
PRESET, CRF, ABR = "veryfast", 20, "160k"
METHODS = ("fifo", "tempfile", "ffmpeg_naive", "moviepy")


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def _ffprobe(path: Path) -> dict[str, Any]:
    argv = [
        "ffprobe", "-v", "error", "-count_packets", "-show_entries",
        "format=duration:stream=codec_type,nb_read_packets,width,height,duration",
        "-of", "json", str(path),
    ]  # fmt: skip
    data = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    v = next((s for s in data["streams"] if s["codec_type"] == "video"), {})
    a = next((s for s in data["streams"] if s["codec_type"] == "audio"), {})
    return {
        "duration_s": round(float(data["format"]["duration"]), 3),
        "video_frames": int(v.get("nb_read_packets", 0)),
        "size": f"{v.get('width')}x{v.get('height')}",
        "audio_duration_s": round(float(a.get("duration", 0)), 3),
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edl(info: MediaInfo, spans: list[tuple[float, float]], transition: str = "cut") -> Edl:
    fmt = output_format_for(info, 1920, 1080)
    segs = []
    for i, (a, b) in enumerate(spans):
        tr = (
            {"type": transition, "duration": min(0.5, (b - a) / 4)}
            if i > 0 and transition != "cut"
            else {"type": "cut", "duration": 0.0}
        )
        segs.append({"source_in": a, "source_out": b, "transition_in": tr})
    return Edl(
        source={"uri": Path(info.path).as_uri(), "sha256": "0" * 64, "duration": info.duration_s},
        prompt="bench",
        output={
            "width": fmt.width,
            "height": fmt.height,
            "fps": f"{fmt.fps.numerator}/{fmt.fps.denominator}",
            "loudness_lufs": -14.0,
        },
        highlights=[],
        segments=segs,
    )


def _spans(duration: float, n: int, seconds: float) -> list[tuple[float, float]]:
    step = duration / n
    seg_len = min(seconds, step * 0.9)
    return [(round(i * step + 0.7, 3), round(i * step + 0.7 + seg_len, 3)) for i in range(n)]


# --------------------------------------------------------------------------- methods


def m_clipforge(info, edl, out, threads, loudness, use_fifo: bool) -> None:
    settings = Settings(video_preset=PRESET, video_crf=CRF, audio_bitrate=ABR, cpu_threads=threads)
    render(edl, info, out, settings=settings, loudness=loudness, use_fifo=use_fifo)


def m_ffmpeg_naive(info, edl, out, threads, loudness, work: Path) -> None:
    w, h = edl.output.width, edl.output.height
    parts = []
    for i, seg in enumerate(edl.segments):
        part = work / f"naive{i:03d}.mp4"
        _run([
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{seg.source_in}", "-i", info.path,
            "-t", f"{seg.source_out - seg.source_in}", "-threads", str(threads),
            "-vf", f"scale={w}:{h}", "-c:v", "libx264", "-preset", PRESET, "-crf", str(CRF),
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", ABR, "-ar", "48000", "-ac", "2",
            str(part),
        ])  # fmt: skip
        parts.append(part)
    lst = work / "naive.txt"
    lst.write_text("".join(f"file '{p}'\n" for p in parts), encoding="utf-8")
    _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
          "-c", "copy", "-movflags", "+faststart", str(out)])  # fmt: skip


def m_moviepy(info, edl, out, threads, loudness, work: Path) -> None:
    os.environ.setdefault("IMAGEIO_FFMPEG_EXE", "/usr/bin/ffmpeg")
    from moviepy import VideoFileClip, concatenate_videoclips

    src = VideoFileClip(info.path)
    try:
        cut = getattr(src, "subclipped", None) or src.subclip
        clips = [cut(s.source_in, s.source_out) for s in edl.segments]
        reel = concatenate_videoclips(clips)
        reel.write_videofile(
            str(out), codec="libx264", preset=PRESET, audio_codec="aac", audio_bitrate=ABR,
            ffmpeg_params=["-crf", str(CRF), "-pix_fmt", "yuv420p"],
            threads=threads or None, logger=None,
            temp_audiofile=str(work / "moviepy_audio.m4a"),
        )  # fmt: skip
    finally:
        src.close()


# --------------------------------------------------------------------------- compare


def make_sources(work: Path, heights: list[int]) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for h in heights:
        dst = work / f"src_{h}p.mp4"
        t0 = time.monotonic()
        if h == 720:
            _run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "1",
                  "-i", str(DEFAULT_SOURCE), "-c", "copy", str(dst)])  # fmt: skip
        else:
            w = h * 16 // 9
            _run([
                "ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "1",
                "-i", str(DEFAULT_SOURCE), "-vf", f"scale={w}:{h}:flags=bicubic",
                "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "60",
                "-pix_fmt", "yuv420p", "-color_primaries", "bt709", "-color_trc", "bt709",
                "-colorspace", "bt709", "-color_range", "tv", "-c:a", "copy", str(dst),
            ])  # fmt: skip
        print(f"source {h}p: {dst.name} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        out[h] = dst
    return out


def compare(args: argparse.Namespace) -> int:
    heights = [int(x) for x in args.heights.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m}; choose from {','.join(METHODS)}")
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="clipforge-bench-") as tmp:
        work = Path(tmp)
        sources = make_sources(work, heights)
        for h, src in sources.items():
            info = probe(src, tonemap=True)
            spans = _spans(info.duration_s, args.segments, args.seconds)
            edl = _edl(info, spans)
            planned = sum(round(Fraction(b - a) * info.video.fps) for a, b in spans)
            t0 = time.monotonic()
            loudness = measure_loudness(info.path, info)
            t_loud = time.monotonic() - t0
            for m in methods:
                out = work / f"out_{h}_{m}.mp4"
                print(f"{h}p {m} ...", file=sys.stderr, flush=True)
                load = os.getloadavg()[0]
                t0 = time.monotonic()
                cpu0 = os.times()
                try:
                    if m in ("fifo", "tempfile"):
                        m_clipforge(info, edl, out, args.threads, loudness, m == "fifo")
                    elif m == "ffmpeg_naive":
                        m_ffmpeg_naive(info, edl, out, args.threads, loudness, work)
                    else:
                        m_moviepy(info, edl, out, args.threads, loudness, work)
                    error = None
                except Exception as exc:  # report and go on with the other methods
                    error = f"{type(exc).__name__}: {exc}"[:300]
                wall = time.monotonic() - t0
                cpu1 = os.times()
                cpu = (cpu1.children_user + cpu1.children_system + cpu1.user + cpu1.system) - (
                    cpu0.children_user + cpu0.children_system + cpu0.user + cpu0.system
                )
                row: dict[str, Any] = {
                    "output": f"{h}p",
                    "method": m,
                    "planned_s": round(planned / float(info.video.fps), 3),
                    "planned_frames": planned,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "load1_at_start": round(load, 2),
                    "error": error,
                }
                if error is None:
                    facts = _ffprobe(out)
                    row.update(facts)
                    row["speed_x"] = round(facts["duration_s"] / wall, 2)
                    row["bytes"] = out.stat().st_size
                    row["sha256"] = _sha(out)[:16]
                    out.unlink()
                rows.append(row)
            rows.append({"output": f"{h}p", "method": "loudness_pass1(clipforge)",
                         "source_s": round(info.duration_s, 2), "wall_s": round(t_loud, 2),
                         "speed_x": round(info.duration_s / t_loud, 1)})  # fmt: skip
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "ffmpeg": subprocess.run(
            ["ffmpeg", "-version"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "edl": {"segments": args.segments, "seconds": args.seconds, "transition": "cut"},
        "encode": {"preset": PRESET, "crf": CRF, "audio_bitrate": ABR, "threads": args.threads},
        "rows": rows,
    }
    try:  # moviepy.__version__ is stale in 2.2.1 (says 2.1.2): ask the installed metadata
        from importlib.metadata import version

        report["moviepy"] = version("moviepy")
    except Exception:
        report["moviepy"] = None
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "render.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    hdr = f"{'out':5} {'method':26} {'wall s':>7} {'cpu s':>7} {'speed x':>8} {'dur s':>7} " \
          f"{'plan s':>7} {'frames':>7} {'plan':>5} {'load':>5}"  # fmt: skip
    print(hdr)
    for r in rows:
        if r.get("error"):
            print(f"{r['output']:5} {r['method']:26} ERROR {r['error']}")
            continue
        print(f"{r['output']:5} {r['method']:26} {r['wall_s']:7.2f} {r.get('cpu_s', 0):7.2f} "
              f"{r['speed_x']:8.2f} {r.get('duration_s', r.get('source_s', 0)):7.2f} "
              f"{r.get('planned_s', 0):7.2f} {r.get('video_frames', 0):7d} "
              f"{r.get('planned_frames', 0):5d} {r.get('load1_at_start', 0):5.2f}")  # fmt: skip
    print(
        f"load average before {report['machine']['load_before']}, "
        f"after {report['machine']['load_after']}; JSON: {RESULTS / 'render.json'}"
    )
    return 0


# --------------------------------------------------------------------------- single


def single(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    info = probe(args.source, tonemap=True)
    t_probe = time.monotonic() - t0
    fmt = output_format_for(info)
    dur = info.duration_s
    n = max(1, args.segments)
    step = dur / n
    seg_len = min(args.seconds, step * 0.9)
    spans = [(round(i * step, 3), round(i * step + seg_len, 3)) for i in range(n)]
    edl = _edl(info, spans, args.transition)
    edl = edl.model_copy(
        update={"output": edl.output.model_copy(update={"width": fmt.width, "height": fmt.height})}
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("compare", "single", "-h", "--help"):
        argv.insert(0, "compare")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--heights", default="720,1080")
    c.add_argument("--segments", type=int, default=6)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--methods", default=",".join(METHODS))
    c.add_argument("--threads", type=int, default=0)
    s = sub.add_parser("single")
    s.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    s.add_argument("--segments", type=int, default=4)
    s.add_argument("--seconds", type=float, default=5.0)
    s.add_argument("--transition", choices=["cut", "fade", "crossfade"], default="cut")
    s.add_argument("--preset", default="veryfast")
    s.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    return compare(args) if args.cmd == "compare" else single(args)


if __name__ == "__main__":
    raise SystemExit(main())
