"""``plan_reframe``: the camera path of one segment as EDL data (a pure function)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from ..edl import Keyframe, Reframe, ReframeShot
from ..errors import LayoutError
from ..transcribe import Word
from .aspect import crop_size, output_size, parse_aspect, ratio, same_aspect
from .camera import CameraSettings, follow
from .faces import Box, FaceTrack
from .layout import choose_layout, people, person_box, speaker_choice

LAYOUTS = ("auto", "track", "static", "split", "fit")
STEP_S = 0.001  # a hard cut: the old position holds until 1 ms before the new one
SIMPLIFY_PX = 0.25  # keyframes dropped where linear interpolation stays this close
HEADROOM = 0.15  # vertical tracking: the face sits this share of the crop above centre
CONFIRM_US = 600_000  # a detection counts when a like box is seen this close in time
HOLD_US = 1_000_000  # a confirmed face is held through detection gaps this long

Piece = tuple[list[float], list[float]]  # frame times (s), positions


def _alike(a: Box, b: Box) -> bool:
    """Same face in two samples: centres within half the larger width, sizes within 2x."""
    size = max(a.w, b.w)
    return (abs(a.cx - b.cx) <= 0.5 * size and abs(a.cy - b.cy) <= 0.5 * size
            and 0.5 <= a.w / max(b.w, 1e-9) <= 2.0)


def steady(times: Sequence[int], samples: Sequence[tuple[Box, ...]]) -> list[tuple[Box, ...]]:
    """The face samples of one shot made steady before any decision is taken on them:

    * a box is kept only when a like box (``_alike``) is found in another sample within
      ``CONFIRM_US``: a one-sample detector blip is no face;
    * a sample without a confirmed box, within ``HOLD_US`` after (or, at the start of
      the shot, before) a confirmed one, holds that sample's boxes (mouth motion 0):
      the detector missing a turned head for a moment is not the person leaving."""
    n = len(samples)
    kept: list[tuple[Box, ...]] = []
    for i, bs in enumerate(samples):
        near = [j for j in range(max(0, i - 4), min(n, i + 5))
                if j != i and abs(times[j] - times[i]) <= CONFIRM_US]
        kept.append(tuple(b for b in bs if any(_alike(b, o) for j in near for o in samples[j])))
    out = list(kept)
    last: int | None = None
    for i in range(n):
        if kept[i]:
            last = i
        elif last is not None and times[i] - times[last] <= HOLD_US:
            out[i] = tuple(Box(b.x, b.y, b.w, b.h, b.kind, 0.0) for b in kept[last])
    first = next((i for i in range(n) if kept[i]), None)
    if first is not None:
        for i in range(first):
            if times[first] - times[i] <= HOLD_US:
                out[i] = tuple(Box(b.x, b.y, b.w, b.h, b.kind, 0.0) for b in kept[first])
    return out


def parse_layout(value: str) -> str:
    v = str(value).strip().lower()
    if v not in LAYOUTS:
        raise LayoutError(f"--layout {value!r} is not a layout; use one of {', '.join(LAYOUTS)}.")
    return v


def _split_ratio_crop(src_w: int, src_h: int, out_w: int, out_h: int) -> tuple[int, int]:
    r = Fraction(out_w, out_h // 2)
    if Fraction(src_w, src_h) >= r:
        return max(2, int(src_h * r) // 2 * 2), src_h // 2 * 2
    return src_w // 2 * 2, max(2, int(src_w / r) // 2 * 2)


def _rdp(ts: list[float], xs: list[float], tol: float) -> list[int]:
    """Indices kept by Ramer-Douglas-Peucker on a time series (max vertical error)."""
    keep = {0, len(ts) - 1}
    stack = [(0, len(ts) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        worst, idx = 0.0, -1
        for i in range(a + 1, b):
            f = (ts[i] - ts[a]) / (ts[b] - ts[a]) if ts[b] > ts[a] else 0.0
            err = abs(xs[i] - (xs[a] + f * (xs[b] - xs[a])))
            if err > worst:
                worst, idx = err, i
        if worst > tol:
            keep.add(idx)
            stack += [(a, idx), (idx, b)]
    return sorted(keep)


def _keyframes(pieces: Sequence[Piece], axis: str, fixed: float, w: float, h: float,
               ) -> list[Keyframe]:
    out: list[Keyframe] = []

    def kf(t: float, p: float) -> Keyframe:
        cx, cy = (p, fixed) if axis == "x" else (fixed, p)
        return Keyframe(t=round(t, 6), cx=round(cx, 6), cy=round(cy, 6), w=w, h=h)

    for n, (ts, xs) in enumerate(pieces):
        if not ts:
            continue
        if n and out:
            if abs(out[-1].cx - kf(ts[0], xs[0]).cx) < 1e-9 and abs(
                    out[-1].cy - kf(ts[0], xs[0]).cy) < 1e-9:
                pass  # no jump: the pieces join
            else:
                last = out[-1]
                hold = round(ts[0] - STEP_S, 6)
                if hold > last.t:
                    out.append(Keyframe(t=hold, cx=last.cx, cy=last.cy, w=w, h=h))
        for i in _rdp(ts, xs, SIMPLIFY_PX):
            k = kf(ts[i], xs[i])
            if out and k.t <= out[-1].t:
                continue
            out.append(k)
    return out


def _path_pieces(t0_us: int, t1_us: int, times: list[int], targets: list[float | None],
                 fps: Fraction, crop_extent: float, lo: float, hi: float, s: CameraSettings,
                 hard: Sequence[int] = ()) -> tuple[list[Piece], bool]:
    path = follow(times, targets, t0_us, t1_us, fps, crop_extent, lo, hi, s, hard)
    ts = [(t0_us + float(Fraction(k * 1_000_000) / fps)) / 1e6 for k in range(len(path.pos))]
    pieces: list[Piece] = []
    cur: Piece = ([], [])
    cuts = [c / 1e6 for c in path.hard_cuts_us]
    for t, x in zip(ts, path.pos, strict=True):
        if cuts and t >= cuts[0] and cur[0]:
            while cuts and t >= cuts[0]:
                cuts.pop(0)
            pieces.append(cur)
            cur = ([], [])
        cur[0].append(t)
        cur[1].append(x)
    pieces.append(cur)
    return pieces, path.moved


def plan_reframe(segment_range: tuple[int, int], face_track: FaceTrack, cuts: Sequence[int],
                 words: Sequence[Word], aspect: str, layout: str, src_w: int, src_h: int,
                 fps: Fraction, settings: CameraSettings | None = None) -> Reframe:
    """The reframing of source ``[segment_range)`` (microseconds) at output ``fps``.

    ``cuts`` are scene-cut times (first frame of the new shot, microseconds; e.g.
    ``face_track.cuts_us``); ``src_w x src_h`` is the display size (0 x 0: audio only)."""
    s = settings or CameraSettings()
    canon = parse_aspect(aspect)
    if canon is None:
        raise ValueError("plan_reframe needs an aspect; 'source' means no reframing")
    forced = parse_layout(layout)
    t0, t1 = segment_range
    if src_w <= 0 or src_h <= 0:  # audio only: the lead renders black at the output size
        w, h = output_size(canon)
        return Reframe(aspect=canon, layout="fit", width=w, height=h, cropped=False,  # type: ignore[arg-type]
                       shots=[ReframeShot(start=t0 / 1e6, end=t1 / 1e6, layout="fit")])
    out_w, out_h = output_size(canon, src_w, src_h)
    if same_aspect(src_w, src_h, canon):
        full = Keyframe(t=round(t0 / 1e6, 6), cx=src_w / 2, cy=src_h / 2, w=src_w, h=src_h)
        return Reframe(aspect=canon, layout="static", width=out_w, height=out_h,  # type: ignore[arg-type]
                       cropped=False, keyframes=[full],
                       shots=[ReframeShot(start=t0 / 1e6, end=t1 / 1e6, layout="static")])
    cw, ch = crop_size(src_w, src_h, canon)
    axis = "x" if Fraction(src_w, src_h) >= ratio(canon) else "y"
    extent, crop_extent = (src_w, cw) if axis == "x" else (src_h, ch)
    fixed = src_h / 2 if axis == "x" else src_w / 2
    lo, hi = crop_extent / 2, extent - crop_extent / 2
    sw_, sh_ = _split_ratio_crop(src_w, src_h, out_w, out_h)
    s_extent = sw_ if axis == "x" else sh_
    s_lo, s_hi = s_extent / 2, extent - s_extent / 2
    kx = src_w / face_track.width if face_track.width else 1.0
    ky = src_h / face_track.height if face_track.height else 1.0

    def target(b: Box | None) -> float | None:
        if b is None:
            return None
        return b.cx * kx if axis == "x" else b.cy * ky + HEADROOM * ch

    bounds = [t0] + sorted(c for c in set(cuts) if t0 < c < t1) + [t1]
    main: list[Piece] = []
    top: list[Piece] = []
    bottom: list[Piece] = []
    shots: list[ReframeShot] = []
    any_split = False
    for a, b in zip(bounds, bounds[1:], strict=False):
        idx = [i for i, t in enumerate(face_track.times_us) if a <= t < b]
        times = [face_track.times_us[i] for i in idx]
        samples = steady(times, [face_track.boxes[i] for i in idx])
        scaled = [tuple(x.scaled(kx, ky) for x in bs) for bs in samples]
        ppl = people(scaled, extent, axis)
        lay = choose_layout(ppl, crop_extent, forced)
        hard: list[int] = []
        if len(ppl.centres) == 2:
            if forced == "track" or (lay == "track" and forced == "auto"):
                apart = (ppl.centres[1] - ppl.centres[0]) + ppl.face_extent > crop_extent
                if forced == "track" or apart:
                    who, hard = speaker_choice(times, samples, ppl, words, a, b, axis, s.hold_s)
                    tg = [target(person_box(bs, w_, ppl, axis))
                          for bs, w_ in zip(samples, who, strict=True)]
                else:  # both fit in one crop: frame the pair
                    mid = (ppl.centres[0] + ppl.centres[1]) / 2
                    tg = [mid * (kx if axis == "x" else ky)] * len(times)
            else:
                tg = [target(person_box(bs, 0, ppl, axis)) for bs in samples]
        else:
            tg = [target(bs[0]) if bs else None for bs in samples]
        if lay == "fit":
            tg = [None] * len(times)
        pieces, moved = _path_pieces(a, b, times, tg, fps, crop_extent, lo, hi, s, hard)
        if lay == "track" and not moved and forced == "auto":
            lay = "static"
        main += pieces
        if lay == "split" or len(ppl.centres) == 2:
            t_a = [target(person_box(bs, 0, ppl, axis)) for bs in samples]
            t_b = [target(person_box(bs, 1, ppl, axis)) for bs in samples]
        else:
            t_a = t_b = [None] * len(times)
        top += _path_pieces(a, b, times, t_a, fps, s_extent, s_lo, s_hi, s)[0]
        bottom += _path_pieces(a, b, times, t_b, fps, s_extent, s_lo, s_hi, s)[0]
        any_split = any_split or lay == "split"
        shots.append(ReframeShot(start=round(a / 1e6, 6), end=round(b / 1e6, 6), layout=lay))  # type: ignore[arg-type]
    longest = max(shots, key=lambda x: (x.end - x.start, -x.start))
    split_kf = [_keyframes(top, axis, fixed, float(sw_), float(sh_)),
                _keyframes(bottom, axis, fixed, float(sw_), float(sh_))] if any_split else []
    return Reframe(aspect=canon, layout=longest.layout, width=out_w, height=out_h,  # type: ignore[arg-type]
                   shots=shots, keyframes=_keyframes(main, axis, fixed, float(cw), float(ch)),
                   split_keyframes=split_kf)
