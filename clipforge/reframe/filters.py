"""FFmpeg filter steps that apply a ``Reframe`` per frame (no Python image work).

``reframe_filter_steps`` returns a fragment for the middle of a segment's linear video
chain: frames come in at the source's frame size (auto-rotated by FFmpeg, possibly with
non-square pixels), PTS starting at 0 = the segment's ``source_in``; they leave at
``out_w x out_h`` with square pixels (``setsar=1``), unlabelled, so the chain continues
with ``,setparams=...,zscale=...``. Insert it after the CFR ``fps`` step and BEFORE the
colour-tagging ``setparams`` (split/overlay/vstack drop the tags; zscale needs them).
The crop position is a piecewise-linear expression of ``t``
(``x0 + sum slope_i * clip(t - t_i, 0, dt_i)``: flat, no nesting), with ``exact=1``.
Keyframes are in display pixels; the crop works on the incoming frame, so display
coordinates are scaled by ``frame_w / display_w`` (non-square pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..edl import Keyframe, Reframe

FIT_BLUR_DIV = 4  # the blurred background is computed at 1/4 of the output size
FIT_BLUR = "boxblur=luma_radius=10:luma_power=2"


def _n(x: float) -> str:
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _even(x: float) -> int:
    return max(2, int(round(x)) // 2 * 2)


def linear_expr(points: Sequence[tuple[float, float]]) -> str:
    """Expression of ``t`` through ``(t, value)`` points, constant outside them."""
    if not points:
        return "0"
    parts = [_n(points[0][1])]
    for (ta, va), (tb, vb) in zip(points, points[1:], strict=False):
        if vb == va or tb <= ta:
            continue
        slope = (vb - va) / (tb - ta)
        parts.append(f"{_n(slope)}*clip(t-{_n(ta)},0,{_n(tb - ta)})")
    return "+".join(parts).replace("+-", "-")


def _crop(kfs: Sequence[Keyframe], source_in: float, kx: float, ky: float, fw: int, fh: int,
          out_w: int, out_h: int) -> str:
    w = min(fw, _even(kfs[0].w * kx))
    h = min(fh, _even(kfs[0].h * ky))
    xs = [(k.t - source_in, min(fw - w, max(0.0, k.cx * kx - w / 2))) for k in kfs]
    ys = [(k.t - source_in, min(fh - h, max(0.0, k.cy * ky - h / 2))) for k in kfs]
    return (f"crop=w={w}:h={h}:x='{linear_expr(xs)}':y='{linear_expr(ys)}':exact=1,"
            f"scale={out_w}:{out_h}:flags=bicubic,setsar=1")


def _fit(dw: int, dh: int, out_w: int, out_h: int, lab: str) -> str:
    s = min(out_w / dw, out_h / dh)
    fw, fh = min(out_w, _even(dw * s)), min(out_h, _even(dh * s))
    c = max(out_w / dw, out_h / dh) / FIT_BLUR_DIV
    bw, bh = _even(dw * c) + 2, _even(dh * c) + 2
    sw, sh = _even(out_w / FIT_BLUR_DIV), _even(out_h / FIT_BLUR_DIV)
    return (f"split=2[{lab}b][{lab}f];"
            f"[{lab}b]scale={bw}:{bh},setsar=1,crop={min(sw, bw)}:{min(sh, bh)},{FIT_BLUR},"
            f"scale={out_w}:{out_h},setsar=1[{lab}bg];"
            f"[{lab}f]scale={fw}:{fh},setsar=1[{lab}fg];"
            f"[{lab}bg][{lab}fg]overlay=x=(W-w)/2:y=(H-h)/2:format=auto")


def _branch(kind: str, r: Reframe, source_in: float, kx: float, ky: float, fw: int, fh: int,
            dw: int, dh: int, lab: str) -> str:
    if kind == "fit" or (kind in ("track", "static") and not r.keyframes):
        return _fit(dw, dh, r.width, r.height, lab)
    if kind == "split":
        half = r.height // 2 // 2 * 2
        top, bot = r.split_keyframes
        return (f"split=2[{lab}t][{lab}u];"
                f"[{lab}t]{_crop(top, source_in, kx, ky, fw, fh, r.width, half)}[{lab}tt];"
                f"[{lab}u]{_crop(bot, source_in, kx, ky, fw, fh, r.width, r.height - half)}"
                f"[{lab}bb];[{lab}tt][{lab}bb]vstack=inputs=2")
    return _crop(r.keyframes, source_in, kx, ky, fw, fh, r.width, r.height)


def reframe_filter_steps(reframe: Reframe, src_display_w: int, src_display_h: int,
                         out_w: int, out_h: int, segment_source_in: float, *,
                         frame_w: int | None = None, frame_h: int | None = None,
                         label: str = "rf") -> str:
    """The filter-graph fragment (see the module doc). ``frame_w x frame_h`` is the size
    of the frames reaching the fragment (default: the display size; pass the coded size,
    rotated, for non-square pixels). ``label`` prefixes internal pad names: unique per
    segment in one graph. ``out_w x out_h`` must be ``reframe.width x reframe.height``."""
    if (out_w, out_h) != (reframe.width, reframe.height):
        raise ValueError(f"output {out_w}x{out_h} != reframe {reframe.width}x{reframe.height}")
    dw, dh = src_display_w, src_display_h
    fw, fh = frame_w or dw, frame_h or dh
    kx, ky = fw / dw, fh / dh
    if not reframe.cropped:
        return f"scale={out_w}:{out_h}:flags=bicubic,setsar=1"
    kinds: list[str] = []
    for s in reframe.shots:
        k: str = "crop" if s.layout in ("track", "static") else s.layout
        if k not in kinds:
            kinds.append(k)
    kinds = kinds or ["crop"]
    if len(kinds) == 1:
        return _branch(kinds[0] if kinds[0] != "crop" else "track", reframe, segment_source_in,
                       kx, ky, fw, fh, dw, dh, label)
    # Several layouts in one segment: each branch runs, the later ones are overlaid on the
    # first only during their shots (enable), so every frame shows its shot's layout.
    parts = [f"split={len(kinds)}" + "".join(f"[{label}in{i}]" for i in range(len(kinds)))]
    for i, name in enumerate(kinds):
        kind = name if name != "crop" else "track"
        parts.append(f"[{label}in{i}]" + _branch(kind, reframe, segment_source_in, kx, ky, fw,
                                                 fh, dw, dh, f"{label}{i}") + f"[{label}o{i}]")
    chain = f"[{label}o0]"
    for i, name in enumerate(kinds[1:], start=1):
        windows = [s for s in reframe.shots
                   if (("crop" if s.layout in ("track", "static") else s.layout) == name)]
        enable = "+".join(f"between(t,{_n(s.start - segment_source_in)},"
                          f"{_n(s.end - segment_source_in - 0.0005)})" for s in windows)
        out = f"[{label}m{i}]" if i < len(kinds) - 1 else ""
        parts.append(f"{chain}[{label}o{i}]overlay=x=0:y=0:enable='{enable}'{out}")
        chain = out
    return ";".join(parts)
