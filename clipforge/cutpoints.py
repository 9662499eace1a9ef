"""Cut points in the quiet: the acoustic minimum inside the gap between two words.

A pick's in-point lies in the gap before its first word, its out-point in the gap after
its last word. Inside the allowed part of that gap the cut goes where the 20 ms energy
(two 10 ms frames of :attr:`clipforge.signals.AudioSignals.fine_db`, centred on the cut)
is lowest:

- never inside a word: the search range is bounded by the word times themselves;
- the gap is the *acoustic* one (:func:`acoustic_gap`): speech-model word ends are often
  early and starts late, so a word is extended into the gap while the envelope stays at
  its speech level (louder than half-way, in dB, between the gap's floor and the word's
  own level). The transcript words still bound every cut;
- never past the middle of that gap (the neighbouring pick may cut there too: both sides
  see the same gap), and never more than ``max_lead_us`` / ``max_tail_us`` from the
  speech (no long dead air);
- near-ties (within ``TIE_DB`` of the minimum) go to the point nearest the preferred
  pad (``lead_pad``/``tail_pad`` from the speech), so digital silence and flat noise give
  the old padded cut, and a word time moving by a frame moves the cut by at most that;
  levels under ``DB_FLOOR`` (digital silence) are all the same;
- frame-aware: with a frame rate, a video frame boundary among the near-ties is taken
  first (audio and video cut at the same instant). When every frame boundary is louder
  than the minimum by more than ``TIE_DB``, the cut is the quietest point of the 10 ms
  grid: the renderer starts the video on the nearest source frame (at most half a frame
  away, under the lip-sync threshold) and the audio exactly at the cut.

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
DB_FLOOR = -100.0        # digital silence: every level below this is the same
SPEECH_SPLIT = 0.5       # a word continues above floor + this x (word level - floor), dB
MIN_CONTRAST_DB = 10.0   # under this, the envelope cannot tell the word from the gap
MAX_EXTEND_US = 1_000_000  # louder for longer than this past a word edge: not the word
WORD_EDGE_US = 200_000   # a word's level: its loudest 20 ms within this of its edge


def parse_rate(rate: str) -> Fraction | None:
    """``"30000/1001"`` or ``"25"`` -> Fraction; ``""`` -> None."""
    if not rate:
        return None
    value = Fraction(rate)
    return value if value > 0 else None


def fine_grid(lo_us: int, hi_us: int) -> list[int]:
    """The points of the 10 ms envelope grid in [lo, hi] (integer us)."""
    first = -(-lo_us // FINE_HOP_US) * FINE_HOP_US
    return list(range(first, hi_us + 1, FINE_HOP_US))


def _frames(lo_us: int, hi_us: int, fps: Fraction) -> list[int]:
    """Video frame boundaries in [lo, hi] (integer µs)."""
    points: list[int] = []
    k = math.ceil(Fraction(lo_us, 1_000_000) * fps)
    while True:
        t_us = round(Fraction(k, 1) / fps * 1_000_000)
        if t_us > hi_us:
            return points
        if t_us >= lo_us:
            points.append(t_us)
        k += 1


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


def level(fine_db: np.ndarray, t_us: int) -> float:
    """:func:`energy_at` rounded to 1e-3 dB and floored at ``DB_FLOOR`` (what cuts compare)."""
    return round(max(DB_FLOOR, energy_at(fine_db, t_us)), 3)


def _walk(edge_us: int, stop_us: int) -> list[int]:
    """The edge, then the 10 ms grid from it towards ``stop_us`` (at most
    ``MAX_EXTEND_US``, never reaching ``stop_us``)."""
    if stop_us > edge_us:
        return [edge_us] + fine_grid(edge_us + 1, min(stop_us - 1, edge_us + MAX_EXTEND_US))
    return [edge_us] + fine_grid(max(stop_us + 1, edge_us - MAX_EXTEND_US), edge_us - 1)[::-1]


def _word_level(fine_db: np.ndarray, edge_us: int, forward: bool) -> float:
    """A word's level: its loudest 20 ms within ``WORD_EDGE_US`` inside its edge."""
    span = fine_grid(edge_us - WORD_EDGE_US, edge_us) if forward else \
        fine_grid(edge_us, edge_us + WORD_EDGE_US)
    return max([level(fine_db, t) for t in span] + [level(fine_db, edge_us)])


def acoustic_gap(fine_db: np.ndarray, prev_end_us: int, next_start_us: int, *,
                 has_prev: bool = True, has_next: bool = True) -> tuple[int, int]:
    """The pause between a word ending at ``prev_end_us`` and one starting at
    ``next_start_us`` as the envelope hears it.

    The gap's floor is its quietest 20 ms within ``MAX_EXTEND_US`` of either edge; each
    word's level its loudest 20 ms within ``WORD_EDGE_US`` inside its edge. Each word goes
    on into the gap up to the first point (its edge, then the 10 ms grid) at or under the
    threshold half-way (in dB) between the floor and the quieter word's level. A word not
    ``MIN_CONTRAST_DB`` louder than the floor, or still above the threshold after
    ``MAX_EXTEND_US`` (sustained sound, not the word), keeps its transcript edge. Always
    inside the transcript gap; the transcript gap itself without an envelope, or when the
    extended words meet (no pause the envelope can see)."""
    if fine_db.size == 0 or next_start_us - prev_end_us <= FINE_HOP_US:
        return prev_end_us, next_start_us
    sides = ([(prev_end_us, next_start_us)] if has_prev else []) + \
        ([(next_start_us, prev_end_us)] if has_next else [])
    walks = {edge: _walk(edge, stop) for edge, stop in sides}
    levels = {edge: [level(fine_db, t) for t in walk] for edge, walk in walks.items()}
    floor = min(min(v) for v in levels.values()) if levels else DB_FLOOR
    words = {edge: _word_level(fine_db, edge, stop > edge) for edge, stop in sides}
    threshold = floor + SPEECH_SPLIT * (min(words.values(), default=floor) - floor)
    ends = {}
    for edge, _stop in sides:
        found = next((t for t, v in zip(walks[edge], levels[edge], strict=True)
                      if v <= threshold), edge)
        ends[edge] = edge if words[edge] - floor < MIN_CONTRAST_DB else found
    a = ends.get(prev_end_us, prev_end_us) if has_prev else prev_end_us
    b = ends.get(next_start_us, next_start_us) if has_next else next_start_us
    if b - a < FINE_HOP_US:
        return prev_end_us, next_start_us
    return a, b


def quietest(fine_db: np.ndarray, lo_us: int, hi_us: int, prefer_us: int,
             fps: Fraction | None = None) -> int:
    """The quietest candidate point in [lo, hi] (near-ties: a frame boundary first, then
    nearest ``prefer_us``, then earliest)."""
    prefer = min(max(prefer_us, lo_us), hi_us)
    if fine_db.size == 0 or hi_us < lo_us:
        return prefer if hi_us >= lo_us else lo_us  # no envelope: the padded cut, as before
    frames = set(_frames(lo_us, hi_us, fps)) if fps is not None else set()
    points = sorted(set(fine_grid(lo_us, hi_us)) | frames) or [lo_us, hi_us]
    levels = [level(fine_db, t) for t in points]
    floor = min(levels)
    near = [t for t, v in zip(points, levels, strict=True) if v <= floor + TIE_DB]
    return min(near, key=lambda t: (t not in frames, abs(t - prefer), t))


def cut_in(fine_db: np.ndarray, prev_end_us: int, first_start_us: int, *, lead_pad_us: int,
           fps: Fraction | None = None, max_lead_us: int = MAX_LEAD_US) -> int:
    """In-point in the gap before a word starting at ``first_start_us`` (previous word
    ending at ``prev_end_us``; 0 at the source start)."""
    if prev_end_us >= first_start_us:
        return first_start_us
    a, b = acoustic_gap(fine_db, prev_end_us, first_start_us, has_prev=prev_end_us > 0)
    mid = (a + b + 1) // 2 if prev_end_us > 0 else 0
    lo = max(0, mid, b - max_lead_us)
    return quietest(fine_db, lo, b, b - lead_pad_us, fps)


def cut_out(fine_db: np.ndarray, last_end_us: int, next_start_us: int, *, tail_pad_us: int,
            fps: Fraction | None = None, max_tail_us: int = MAX_TAIL_US,
            has_next: bool = True) -> int:
    """Out-point in the gap after a word ending at ``last_end_us`` (next word starting at
    ``next_start_us``, or the source's end)."""
    if next_start_us <= last_end_us:
        return last_end_us
    a, b = acoustic_gap(fine_db, last_end_us, next_start_us, has_next=has_next)
    mid = (a + b) // 2 if has_next else b
    hi = min(mid, a + max_tail_us)
    return quietest(fine_db, a, hi, a + tail_pad_us, fps)
