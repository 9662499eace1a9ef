"""Window edges on a real pause: move a pick's first/last word to a boundary with a gap.

A cut can only go inside the gap between two words (:mod:`clipforge.cutpoints`). When a
window starts or ends at a word boundary with no pause — the transcript's words touch, or
the envelope hears less than ``MIN_PAUSE_US`` of quiet between them (the *acoustic* gap,
:func:`clipforge.cutpoints.acoustic_gap`) — the only allowed cut is mid-speech. Such an
edge moves to the nearest boundary with a real pause:

- within ``MAX_SHIFT_WORDS`` words and ``MAX_SHIFT_US`` of the original edge, outwards
  (adding words) or inwards (dropping words);
- never dropping a word whose stem matches the prompt's keywords (the words that answer
  the prompt), never adding a word of another topic (TextTiling id) or of a sentence that
  does not answer the prompt (relevance under the on-topic edge floor of
  :mod:`clipforge.edges`), never overlapping another pick;
- the window stays within ``min_clip``..``max_clip`` (or its own length when that was
  already outside), and a reel that fitted its target still fits it;
- among the allowed boundaries: a sentence boundary first, then the smallest time shift,
  then the earliest. No allowed boundary: the edge stays;
- a pick a few words away from another one may instead *bridge* to it (the words between
  join, whatever their topic or relevance): the two become one segment and that cut
  disappears. An edge that already touches another pick stays.

The pause at a boundary is measured once per boundary from the same envelope the cuts use
(without one: the transcript gap). A pause that passes ``MIN_PAUSE_US`` by a wide margin
stays a pause when word times move by a frame; only boundaries within a frame of the
threshold can change their verdict. Pure and deterministic (integer microseconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate
from typing import TYPE_CHECKING

import numpy as np

from . import cutpoints, edges
from .text import Sentence
from .transcribe import Word

if TYPE_CHECKING:
    from .picks import Candidate

MIN_PAUSE_US = 120_000
MAX_SHIFT_US = 2_500_000
MAX_SHIFT_WORDS = 6
SOURCE_EDGE = 1 << 62  # the source's start and end: a cut there never clips a word


@dataclass(frozen=True, slots=True)
class Bounds:
    """What an edge move may not cross, for one pick (word indices, inclusive)."""

    lo_word: int  # the first word the window may start at
    hi_word: int  # the last word it may end at
    min_us: int  # shortest allowed span
    max_us: int  # longest allowed span
    pick_before: bool = False  # another pick ends at ``lo_word - 1``
    pick_after: bool = False  # another pick starts at ``hi_word + 1``


class Boundaries:
    """Pause length at each word boundary ``i`` (between ``words[i-1]`` and ``words[i]``;
    0 is the source start, ``len(words)`` its end: both count as a pause, a cut there clips
    nothing), computed on demand and memoised."""

    def __init__(self, words: Sequence[Word], fine_db: np.ndarray, duration_us: int) -> None:
        self.words = words
        self.env = fine_db
        self.duration_us = duration_us
        self.prev_end = [0, *accumulate((w.end_us for w in words), max)]
        self._memo: dict[int, int] = {}

    def pause_us(self, i: int) -> int:
        if i not in self._memo:
            self._memo[i] = self._measure(i)
        return self._memo[i]

    def _measure(self, i: int) -> int:
        n = len(self.words)
        if i <= 0 or i >= n:
            return SOURCE_EDGE  # nothing before the first word / after the last one
        prev_end, next_start = self.prev_end[i], self.words[i].start_us
        if next_start <= prev_end:
            return 0
        a, b = cutpoints.acoustic_gap(self.env, prev_end, next_start)
        return max(0, b - a)


def _span(words: Sequence[Word], first: int, last: int) -> int:
    return max(w.end_us for w in words[first:last + 1]) - words[first].start_us


def _sentence_of(sentences: Sequence[Sentence], n_words: int, *, whole: bool = False
                 ) -> list[int]:
    """Word -> its sentence's index (``whole``: the transcript sentence it is part of)."""
    out = [-1] * n_words
    for s in sentences:
        for k in range(s.first_word, min(s.last_word, n_words - 1) + 1):
            out[k] = s.whole if whole else s.index
    return out


@dataclass(frozen=True, slots=True)
class EdgeContext:
    """The per-source facts edge moves read (built once per selection)."""

    words: Sequence[Word]
    pauses: Boundaries
    protected: frozenset[int]  # word indices that answer the prompt (keyword stems)
    sentence_of: Sequence[int]  # word -> sentence index (-1: none)
    sentence_starts: frozenset[int]  # boundaries that are sentence boundaries
    relevance: Sequence[float]  # per sentence ((): unknown)
    topic: Sequence[int]  # per sentence ((): one topic)


def edge_context(words: Sequence[Word], sentences: Sequence[Sentence], stems: Sequence[str],
                 keywords: frozenset[str], fine_db: np.ndarray, duration_us: int,
                 relevance: Sequence[float] = (), topic: Sequence[int] = ()) -> EdgeContext:
    starts = frozenset(s.first_word for s in sentences) | {len(words)}
    protected = frozenset(k for k, s in enumerate(stems) if s and s in keywords)
    return EdgeContext(words, Boundaries(words, fine_db, duration_us), protected,
                       _sentence_of(sentences, len(words)), starts, relevance, topic)


def _addable(ec: EdgeContext, k: int, topics: set[int], floor: float) -> bool:
    """Word ``k`` may join the window: same topic, its sentence answers the prompt."""
    s = ec.sentence_of[k]
    if s < 0:
        return False
    if ec.topic and ec.topic[s] not in topics:
        return False
    return not ec.relevance or ec.relevance[s] >= floor


def _window_facts(ec: EdgeContext, first: int, last: int) -> tuple[set[int], float]:
    sents = sorted({ec.sentence_of[k] for k in range(first, last + 1)} - {-1})
    topics = {ec.topic[s] for s in sents} if ec.topic else set()
    best = max((ec.relevance[s] for s in sents), default=0.0) if ec.relevance else 0.0
    return topics, max(edges.EDGE_ABS, edges.EDGE_REL * best)


def move_edges(ec: EdgeContext, first: int, last: int, bounds: Bounds) -> tuple[int, int]:
    """The window ``first..last`` (word indices) with each edge on a real pause when one
    is allowed near it; otherwise unchanged (see the module docstring)."""
    words = ec.words
    topics, floor = _window_facts(ec, first, last)

    def fits(f: int, la: int) -> bool:
        return f <= la and bounds.min_us <= _span(words, f, la) <= bounds.max_us

    joined_lo = bounds.pick_before and first == bounds.lo_word
    joined_hi = bounds.pick_after and last == bounds.hi_word
    if not joined_lo and ec.pauses.pause_us(first) < MIN_PAUSE_US:
        options = []
        for b in range(max(bounds.lo_word, first - MAX_SHIFT_WORDS),
                       min(last, first + MAX_SHIFT_WORDS) + 1):
            shift = abs(words[b].start_us - words[first].start_us)
            if b == first or shift > MAX_SHIFT_US:
                continue
            if b < first and bounds.pick_before and b == bounds.lo_word:
                if fits(b, last):  # bridge to the pick before: no cut left here at all
                    options.append((-1, shift, b))
                continue
            if ec.pauses.pause_us(b) < MIN_PAUSE_US:
                continue
            if b > first and any(k in ec.protected for k in range(first, b)):
                continue
            if b < first and not all(_addable(ec, k, topics, floor) for k in range(b, first)):
                continue
            if fits(b, last):
                options.append((int(b not in ec.sentence_starts), shift, b))
        if options:
            first = min(options)[2]
    if not joined_hi and ec.pauses.pause_us(last + 1) < MIN_PAUSE_US:
        end = max(w.end_us for w in words[first:last + 1])
        options = []
        for e in range(max(first, last - MAX_SHIFT_WORDS),
                       min(bounds.hi_word, len(words) - 1, last + MAX_SHIFT_WORDS) + 1):
            shift = abs(words[e].end_us - end)
            if e == last or shift > MAX_SHIFT_US:
                continue
            if e > last and bounds.pick_after and e == bounds.hi_word:
                if fits(first, e):  # bridge to the pick after
                    options.append((-1, shift, e))
                continue
            if ec.pauses.pause_us(e + 1) < MIN_PAUSE_US:
                continue
            if e < last and any(k in ec.protected for k in range(e + 1, last + 1)):
                continue
            if e > last and not all(_addable(ec, k, topics, floor)
                                    for k in range(last + 1, e + 1)):
                continue
            if fits(first, e):
                options.append((int(e + 1 not in ec.sentence_starts), shift, e))
        if options:
            last = min(options)[2]
    return first, last


def prefer_pauses(picks: list[Candidate], ec: EdgeContext, *, min_clip_us: int,
                  max_clip_us: int, target_us: int = 0, bridge: bool = True
                  ) -> list[Candidate]:
    """:func:`move_edges` on every pick (``clipforge.picks.Candidate``), in rank order.

    Picks never grow into one another; with ``target_us`` > 0 (one reel) the reel's total
    never grows past the target (nor past its own length when it was already longer).
    ``bridge=False`` (separate clips, not one reel): no pick grows up to another."""
    words = ec.words
    if not words or not picks:
        return list(picks)
    out = list(picks)
    total = sum(c.end_us - c.start_us for c in out)
    budget = max(total, target_us) if target_us > 0 else 0
    for i, c in enumerate(out):
        others = [p for j, p in enumerate(out) if j != i]
        before = [p.last_word + 1 for p in others if p.last_word < c.first_word]
        after = [p.first_word - 1 for p in others if p.first_word > c.last_word]
        lo = max(before, default=0)
        hi = min(after, default=len(words) - 1)
        length = c.end_us - c.start_us
        longest = max(max_clip_us, length)
        if budget:
            longest = min(longest, max(length, budget - (total - length)))
        bounds = Bounds(lo, hi, min(min_clip_us, length), longest, bridge and bool(before),
                        bridge and bool(after))
        f, la = move_edges(ec, c.first_word, c.last_word, bounds)
        if (f, la) == (c.first_word, c.last_word):
            continue
        out[i] = c.spanning(words, f, la)
        total += (out[i].end_us - out[i].start_us) - length
    return out


def join_within_sentences(picks: list[Candidate], words: Sequence[Word],
                          sentences: Sequence[Sentence], *, max_clip_us: int,
                          target_us: int) -> list[Candidate]:
    """A reel never jumps inside a sentence: when two picks that follow each other in
    time lie in the same sentence of the transcript (long sentences are split into
    clauses for selection, :func:`clipforge.text.split_clauses`, so two clauses of one
    sentence can both be picked with one skipped between them), the earlier pick takes
    the words between, and the two play as one segment. Only when the earlier pick stays
    within ``max_clip_us`` and the reel within ``max(its length, target_us)``; otherwise
    the picks stay as they are. ``sentences`` are the selection's sentences and clauses
    (their ``whole`` tells which sentence each is part of). Pure and deterministic; rank
    order is kept."""
    if len(picks) < 2 or not words:
        return list(picks)
    sentence_of = _sentence_of(sentences, len(words), whole=True)
    out = list(picks)
    total = sum(c.end_us - c.start_us for c in out)
    budget = max(total, target_us)
    order = sorted(range(len(out)), key=lambda i: out[i].first_word)
    for a, b in zip(order, order[1:], strict=False):
        pa, pb = out[a], out[b]
        gap_first, gap_last = pa.last_word + 1, pb.first_word - 1
        if gap_first > gap_last:
            continue  # already touching
        s = sentence_of[pa.last_word]
        if s < 0 or sentence_of[pb.first_word] != s:
            continue
        end = max(w.end_us for w in words[pa.first_word:gap_last + 1])
        grow = end - pa.end_us
        if end - pa.start_us > max_clip_us or total + grow > budget:
            continue
        out[a] = replace(pa, last_word=gap_last, end_us=end,
                         text=" ".join(w.text for w in words[pa.first_word:gap_last + 1]))
        total += grow
    return out
