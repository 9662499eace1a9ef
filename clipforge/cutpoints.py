"""Cut points in the quiet: the acoustic minimum inside the gap between two words.

A pick's in-point lies in the gap before its first word, its out-point in the gap after
its last word. Inside the allowed part of that gap the cut goes where the 20 ms energy
(two 10 ms frames of :attr:`clipforge.signals.AudioSignals.fine_db`, centred on the cut)
is lowest:

- never inside a word: the search range is bounded by the word times themselves;
- never past the middle of the gap (the neighbouring pick may cut there too), and never
  more than ``max_lead_us`` / ``max_tail_us`` from the speech (no long dead air);
- near-ties (within ``TIE_DB`` of the minimum) go to the point nearest the preferred
  pad (``lead_pad``/``tail_pad`` from the word), so digital silence and flat noise give
  the old padded cut, and a word time moving by a frame moves the cut by at most that;
- frame-aware: with a frame rate, candidate points are the video frame boundaries inside
  the range (the renderer starts a segment on the nearest source frame, and its audio
  exactly at the cut), so audio and video cut at the same instant; the 10 ms grid is used
  only when no frame boundary falls inside the range.

Without an envelope (``fine_db`` empty) the cut is the preferred pad, as before.
Everything is integer microseconds and deterministic.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .signals import FINE_HOP_US

TIE_DB = 1.5
MAX_LEAD_US = 400_000
MAX_TAIL_US = 500_000


def parse_rate(rate: str) -> Fraction | None:
    """``"30000/1001"`` or ``"25"`` -> Fraction; ``""`` -> None."""
    if not rate:
        return None
    value = Fraction(rate)
    return value if value > 0 else None


def _grid(lo_us: int, hi_us: int, fps: Fraction | None) -> list[int]:
    """Candidate cut times in [lo, hi]: frame boundaries when any fall inside, else the
    10 ms grid (always including lo and hi themselves when nothing else fits)."""
    if hi_us < lo_us:
        return [lo_us]
    if fps is not None:
        points = []
        k = math.ceil(Fraction(lo_us, 1_000_000) * fps)
        while True:
            t = Fraction(k, 1) / fps
            t_us = round(t * 1_000_000)
            if t_us > hi_us:
                break
            if t_us >= lo_us:
                points.append(t_us)
            k += 1
        if points:
            return points
    first = -(-lo_us // FINE_HOP_US) * FINE_HOP_US
    points = list(range(first, hi_us + 1, FINE_HOP_US))
    return points or [lo_us]


def energy_at(fine_db: np.ndarray, t_us: int) -> float:
    """20 ms energy (dB) centred on ``t_us``: the power mean of the two 10 ms frames that
    meet nearest to it."""
    if fine_db.size == 0:
        return 0.0
    k = int(round(t_us / FINE_HOP_US))
    i0 = min(max(k - 1, 0), fine_db.size - 1)
    i1 = min(max(k, 0), fine_db.size - 1)
    p = (10.0 ** (float(fine_db[i0]) / 10.0) + 10.0 ** (float(fine_db[i1]) / 10.0)) / 2.0
    return 10.0 * float(np.log10(max(p, 1e-12)))


def quietest(fine_db: np.ndarray, lo_us: int, hi_us: int, prefer_us: int,
             fps: Fraction | None = None) -> int:
    """The quietest candidate point in [lo, hi] (near-ties: nearest ``prefer_us``, then
    earliest)."""
    prefer = min(max(prefer_us, lo_us), hi_us)
    points = _grid(lo_us, hi_us, fps)
    if fine_db.size == 0:
        return prefer  # no envelope: the padded cut, exactly as before
    levels = [round(energy_at(fine_db, t), 3) for t in points]
    floor = min(levels)
    near = [t for t, v in zip(points, levels, strict=True) if v <= floor + TIE_DB]
    return min(near, key=lambda t: (abs(t - prefer), t))


def cut_in(fine_db: np.ndarray, prev_end_us: int, first_start_us: int, *, lead_pad_us: int,
           fps: Fraction | None = None, max_lead_us: int = MAX_LEAD_US) -> int:
    """In-point in the gap before a word starting at ``first_start_us`` (previous word
    ending at ``prev_end_us``; 0 at the source start)."""
    if prev_end_us >= first_start_us:
        return first_start_us
    mid = (prev_end_us + first_start_us + 1) // 2 if prev_end_us > 0 else 0
    lo = max(0, mid, first_start_us - max_lead_us)
    return quietest(fine_db, lo, first_start_us, first_start_us - lead_pad_us, fps)


def cut_out(fine_db: np.ndarray, last_end_us: int, next_start_us: int, *, tail_pad_us: int,
            fps: Fraction | None = None, max_tail_us: int = MAX_TAIL_US,
            has_next: bool = True) -> int:
    """Out-point in the gap after a word ending at ``last_end_us`` (next word starting at
    ``next_start_us``, or the source's end)."""
    if next_start_us <= last_end_us:
        return last_end_us
    mid = (last_end_us + next_start_us) // 2 if has_next else next_start_us
    hi = min(mid, last_end_us + max_tail_us)
    return quietest(fine_db, last_end_us, hi, last_end_us + tail_pad_us, fps)
