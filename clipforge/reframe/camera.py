"""The virtual camera along one axis within one shot: a pure, deterministic function.

Per face sample the subject position (or None), then:

1. gaps are held (the last position; the first one before it), then a running median
   over ``median`` samples removes single-sample detector noise;
2. the goal moves only when the median leaves the dead zone (``dead_zone`` x crop
   width around the goal) for ``confirm`` samples in a row; it then re-centres on the
   subject. Settling: after a move the goal waits ``move_gap_s`` before moving again,
   and a move back against the previous one needs ``reverse`` x the dead zone. A
   confirmed move larger than ``jump`` x crop width is a hard cut at the first sample
   of the move (never delayed); so are the ``hard_cuts`` passed in (speaker changes).
   For ``settle_s`` after the shot starts the goal holds: the snap is not followed by a
   pan;
3. per output frame a critically damped spring (smoothing time ``smooth_s``, speed
   limit ``max_speed`` crop widths per second) follows the goal; a hard cut sets the
   position and zeroes the velocity.

Positions are crop centres in source display pixels, clamped to ``[lo, hi]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True, slots=True)
class CameraSettings:
    smooth_s: float = 0.75
    dead_zone: float = 0.06  # of the crop width, either side of the goal
    max_speed: float = 0.6  # crop widths per second
    median: int = 5  # samples (1 s at 5 fps)
    confirm: int = 2  # samples a move must persist before it counts
    jump: float = 0.5  # of the crop width: a confirmed move this large is a hard cut
    hold_s: float = 1.5  # a speaker choice is held at least this long
    settle_s: float = 0.5  # after a shot starts the snapped crop holds this long
    move_gap_s: float = 0.8  # after a goal move, the next one waits this long (settling)
    reverse: float = 2.0  # a move back against the previous one needs this x the dead zone


@dataclass(frozen=True, slots=True)
class CameraPath:
    """Crop centre per output frame: ``pos[k]`` at ``t0_us + k / fps``."""

    t0_us: int
    fps: Fraction
    pos: tuple[float, ...]
    hard_cuts_us: tuple[int, ...]  # inside the shot (its start is always a snap)
    moved: bool  # the goal ever moved (False: a static crop)


def _filled(values: Sequence[float | None]) -> list[float] | None:
    first = next((v for v in values if v is not None), None)
    if first is None:
        return None
    out: list[float] = []
    last = first
    for v in values:
        last = v if v is not None else last
        out.append(last)
    return out


def running_median(values: Sequence[float], n: int) -> list[float]:
    """Centred running median over ``n`` samples (shrinking at the ends)."""
    half = max(0, n // 2)
    return [float(np.median(values[max(0, i - half): i + half + 1])) for i in range(len(values))]


def goals(times_us: Sequence[int], targets: Sequence[float], crop_w: float, lo: float,
          hi: float, s: CameraSettings, hard_cuts_us: Sequence[int] = (), t0_us: int = 0,
          ) -> tuple[list[float], list[int], bool]:
    """Goal per sample (dead zone + confirmation) and the hard-cut times."""
    dz, jump = s.dead_zone * crop_w, s.jump * crop_w
    forced = sorted(hard_cuts_us)
    goal = min(hi, max(lo, targets[0]))
    out: list[float] = []
    cuts: list[int] = []
    moved = False
    i = 0
    n = len(targets)
    last_move_us: int | None = None
    last_dir = 0.0
    gap_us = int(s.move_gap_s * 1_000_000)
    while i < n:
        if forced and times_us[i] >= forced[0]:
            forced.pop(0)
            goal = min(hi, max(lo, targets[i]))
            cuts.append(times_us[i])
            moved = True
            last_move_us, last_dir = times_us[i], 0.0
        m = min(hi, max(lo, targets[i]))
        # a move back against the previous one must be larger (no back-and-forth)
        need = dz * s.reverse if last_dir and (m - goal) * last_dir < 0 else dz
        run = 0
        while (i + run < n and run < s.confirm
               and abs(min(hi, max(lo, targets[i + run])) - goal) > need):
            run += 1
        settled = last_move_us is None or times_us[i] - last_move_us >= gap_us
        if run >= s.confirm and times_us[i] >= t0_us + int(s.settle_s * 1_000_000):
            new = min(hi, max(lo, targets[i + run - 1]))
            big = abs(new - goal) > jump and abs(m - goal) > jump
            if big:
                cuts.append(times_us[i])
            if big or settled:
                last_dir = 1.0 if new > goal else -1.0
                goal = new
                moved = True
                last_move_us = times_us[i]
        out.append(goal)
        i += 1
    return out, cuts, moved


def spring(goal_at: Sequence[float], cut_at: Sequence[bool], fps: Fraction, crop_w: float,
           s: CameraSettings) -> list[float]:
    """Critically damped spring (the usual smooth-damp integration) per output frame."""
    dt = 1.0 / float(fps)
    omega = 2.0 / s.smooth_s
    max_step = s.max_speed * crop_w * dt
    x, v = goal_at[0], 0.0
    out: list[float] = []
    for g, cut in zip(goal_at, cut_at, strict=True):
        if cut:
            x, v = g, 0.0
        else:
            a = omega * dt
            decay = 1.0 / (1.0 + a + 0.48 * a * a + 0.235 * a * a * a)
            change = x - g
            temp = (v + omega * change) * dt
            v = (v - omega * temp) * decay
            nx = g + (change + temp) * decay
            step = max(-max_step, min(max_step, nx - x))
            if step != nx - x:
                v = step / dt
            x = x + step
        out.append(round(x, 4))
    return out


def follow(times_us: Sequence[int], targets: Sequence[float | None], t0_us: int, t1_us: int,
           fps: Fraction, crop_w: float, lo: float, hi: float, settings: CameraSettings,
           hard_cuts_us: Sequence[int] = ()) -> CameraPath:
    """The camera path of one shot ``[t0_us, t1_us)`` (see the module doc). Without any
    target the crop is centred between ``lo`` and ``hi``."""
    n_frames = max(1, int((Fraction(t1_us - t0_us, 1_000_000) * fps).__ceil__()))
    filled = _filled(targets)
    if filled is None or not times_us:
        centre = round((lo + hi) / 2, 4)
        return CameraPath(t0_us, fps, (centre,) * n_frames, (), False)
    med = running_median(filled, settings.median)
    g, cuts, moved = goals(times_us, med, crop_w, lo, hi, settings, hard_cuts_us, t0_us)
    goal_at: list[float] = []
    cut_at: list[bool] = []
    j = 0
    pending = list(cuts)
    for k in range(n_frames):
        t = t0_us + int(Fraction(k * 1_000_000) / fps)
        while j + 1 < len(times_us) and times_us[j + 1] <= t:
            j += 1
        goal_at.append(g[j] if times_us[j] <= t or j == 0 else g[0])
        hit = False
        while pending and pending[0] <= t:
            pending.pop(0)
            hit = True
        cut_at.append(hit)
    return CameraPath(t0_us, fps, tuple(spring(goal_at, cut_at, fps, crop_w, settings)),
                      tuple(cuts), moved)
