"""Word times the envelope agrees with: the speech model's word edges, refined by ear.

faster-whisper's word times come from cross-attention alignment and are often off by a
few hundred milliseconds near pauses: the word before a pause runs on into the silence
after it (a one-syllable word lasting a second), or two words "touch" although a clear
pause lies between them, a little to one side of the boundary the model reports. A cut
is placed in the gap between two words (:mod:`clipforge.cutpoints`), so such a word
either hides the quiet the cut should use or forces the cut into speech.

Two refinements, on the 10 ms envelope of the one decode
(:attr:`clipforge.signals.AudioSignals.fine_db`), each only where the envelope can tell
speech from pause (the word is ``MIN_CONTRAST_DB`` louder than the quiet):

- **overhang**: after (before) a word's loudest 20 ms, its end (start) moves in to where
  the envelope first falls under the threshold ``floor + TRIM_SPLIT x (word level -
  floor)`` for a pause's length (``MIN_PAUSE_US``: what follows such a pause is not this
  word) or for good, when that takes at least ``MIN_TRIM_US`` off it; the floor is the
  quietest 20 ms of the word and the gap after (before) it, the word level its loudest.
  "For good" has hysteresis: the rest of the word may rise over the threshold but not
  over the speech split (``SPEECH_SPLIT`` of :mod:`clipforge.cutpoints`), so a faint
  click or breath in an overhang does not keep the silence around it inside the word;
- **hidden pause**: at a boundary where two words touch or nearly touch (a transcript gap
  under ``MIN_PAUSE_US``, the pause length :mod:`clipforge.pauses` uses too), a run of
  at least ``MIN_PAUSE_US`` under the threshold within ``SEARCH_US`` of the boundary
  becomes the gap between them: the word before ends where the run starts, the word
  after starts where it ends. After a word the transcript ends a sentence with (``.``
  ``?`` ``!``), a run of ``SENTENCE_PAUSE_US`` is enough: the speech model runs a
  sentence's last word on over the short breath before the next one (quick turns in a
  conversation), and a stop closure inside a word has no full stop after it.

Every word keeps at least ``MIN_WORD_US`` (a shorter word is left alone) and the order
of words never changes; a word grows only up to a hidden pause next to it. Pure and
deterministic (integer microseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .cutpoints import SPEECH_SPLIT, fine_grid, level
from .signals import FINE_HOP_US
from .transcribe import Word

TRIM_SPLIT = 0.3
MIN_CONTRAST_DB = 10.0
MIN_TRIM_US = 40_000
MIN_WORD_US = 60_000
MIN_PAUSE_US = 120_000
SENTENCE_PAUSE_US = 20_000  # ... after a word that ends a sentence
SEARCH_US = 500_000
DB_MIN = -1000.0
GAP_REACH_US = 1_000_000  # how far past a word its gap is looked at for the floor


class _Levels:
    """:func:`clipforge.cutpoints.level` on the envelope grid, each point computed once
    per refinement (a word's points, its gaps and the hidden-pause search overlap)."""

    def __init__(self, fine_db: np.ndarray) -> None:
        self.fine_db = fine_db
        self._memo: dict[int, float] = {}

    def __call__(self, points: Sequence[int]) -> list[float]:
        memo = self._memo
        for t in points:
            if t not in memo:
                memo[t] = level(self.fine_db, t)
        return [memo[t] for t in points]


def _threshold(word_db: float, floor_db: float, split: float = TRIM_SPLIT) -> float | None:
    if word_db - floor_db < MIN_CONTRAST_DB:
        return None
    return floor_db + split * (word_db - floor_db)


def _pause_after_peak(points: Sequence[int], values: Sequence[float], limit: float,
                      step_us: int, high: float | None = None) -> int | None:
    """Index of the first point after the loudest one where a run under ``limit`` begins
    that lasts for ``MIN_PAUSE_US``, or that lasts to the last point with nothing after
    it louder than ``high`` (hysteresis: a faint bump in the word's tail, a breath or a
    click far under the word's own level, does not make the tail speech; without
    ``high``, nothing over ``limit``); None when there is none. ``step_us``: the spacing
    of ``points`` (negative when they run backwards in time)."""
    peak = max(range(len(values)), key=lambda k: (values[k], -k))
    need = MIN_PAUSE_US // abs(step_us)
    high = limit if high is None else max(high, limit)
    k = peak + 1
    while k < len(values):
        if values[k] > limit:
            k += 1
            continue
        run = k
        while run < len(values) and values[run] <= limit:
            run += 1
        if run - k >= need or all(v <= high for v in values[run:]):
            return k
        k = run
    return None


def _trim(levels: _Levels, w: Word, gap_us: int, *, at_end: bool) -> int:
    """The word's end (``at_end``) or start, moved in past an overhang (module docstring);
    ``gap_us``: where the gap on that side ends (the neighbouring word's edge)."""
    edge = w.end_us if at_end else w.start_us
    if w.end_us - w.start_us < MIN_WORD_US:
        return edge
    points = fine_grid(w.start_us, w.end_us)
    if len(points) < 2:
        return edge
    if at_end:
        gap = fine_grid(w.end_us, min(gap_us, w.end_us + GAP_REACH_US))
    else:
        gap = fine_grid(max(gap_us, w.start_us - GAP_REACH_US), w.start_us)
        points = points[::-1]  # walk from the word's end towards its start
    values = levels(points)
    floor = min(values + levels(gap))
    limit = _threshold(max(values), floor)
    if limit is None:
        return edge
    k = _pause_after_peak(points, values, limit, FINE_HOP_US if at_end else -FINE_HOP_US,
                          _threshold(max(values), floor, SPEECH_SPLIT))
    if k is None:
        return edge
    if at_end:
        moved = max(points[k], w.start_us + MIN_WORD_US)
        return moved if w.end_us - moved >= MIN_TRIM_US else edge
    moved = min(points[k], w.end_us - MIN_WORD_US)
    return moved if moved - w.start_us >= MIN_TRIM_US else edge


def ends_sentence(text: str) -> bool:
    """The word ends a sentence as the transcript punctuates it (``.``, ``?``, ``!``,
    before any closing quote or bracket)."""
    return text.rstrip("\"')]\u201d\u2019").endswith((".", "?", "!"))


def _hidden_pause(levels: _Levels, a: Word, b: Word) -> tuple[int, int] | None:
    """The pause between touching words ``a`` and ``b`` the envelope hears, or None."""
    boundary = (a.end_us + b.start_us) // 2
    lo = max(a.start_us + MIN_WORD_US, boundary - SEARCH_US)
    hi = min(b.end_us - MIN_WORD_US, boundary + SEARCH_US)
    points = fine_grid(lo, hi)
    if len(points) < 2:
        return None
    values = levels(points)
    word_a = max(levels(fine_grid(a.start_us, a.end_us)) or [DB_MIN])
    word_b = max(levels(fine_grid(b.start_us, b.end_us)) or [DB_MIN])
    limit = _threshold(min(word_a, word_b), min(values))
    if limit is None:
        return None
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for t, v in zip(points, values, strict=True):
        if v <= limit and start is None:
            start = t
        elif v > limit and start is not None:
            runs.append((start, t - FINE_HOP_US))
            start = None
    if start is not None:
        runs.append((start, points[-1]))
    # a run that reaches the end of the searched span may go on into a word: only runs
    # with speech on both sides count
    need = SENTENCE_PAUSE_US if ends_sentence(a.text) else MIN_PAUSE_US
    runs = [(s, e) for s, e in runs if s > points[0] and e < points[-1] and e - s >= need]
    if not runs:
        return None
    s, e = min(runs, key=lambda r: (abs((r[0] + r[1]) // 2 - boundary), r[0]))
    return s, e


def refine_words(words: Sequence[Word], fine_db: np.ndarray, duration_us: int
                 ) -> tuple[Word, ...]:
    """``words`` (in time order) with the edges the envelope contradicts moved (module
    docstring), returned in time order. No envelope: unchanged."""
    if fine_db.size == 0 or not words:
        return tuple(words)
    levels = _Levels(fine_db)
    out = list(words)
    # hidden pauses first: they turn a touching boundary into a gap the trims then see
    for i in range(len(out) - 1):
        a, b = out[i], out[i + 1]
        if b.start_us - a.end_us >= MIN_PAUSE_US or b.start_us < a.end_us - FINE_HOP_US:
            continue
        found = _hidden_pause(levels, a, b)
        if found is not None:
            out[i] = replace(a, end_us=found[0])
            out[i + 1] = replace(b, start_us=found[1])
    for i, w in enumerate(out):
        nxt = out[i + 1].start_us if i + 1 < len(out) else duration_us
        prv = out[i - 1].end_us if i > 0 else 0
        end = _trim(levels, w, max(nxt, w.end_us), at_end=True)
        start = _trim(levels, replace(w, end_us=end), min(prv, w.start_us), at_end=False)
        if (start, end) != (w.start_us, w.end_us):
            out[i] = replace(w, start_us=start, end_us=end)
    # two speakers' words overlap (a split-track merge): a trimmed start may pass the
    # next word's, so the time order is restored (stable: ties keep their order)
    return tuple(sorted(out, key=lambda x: (x.start_us, x.end_us)))
