"""Per-shot layout: who is in the shot, which layout fits, and (two people) who speaks.

All pure functions of the face samples of one shot, the words and the settings.

* **people**: face centres of the shot clustered on the free axis: one person, or two
  when the widest gap between sorted centres is over ``PERSON_GAP`` of the frame and
  each side is seen in at least ``MIN_PRESENCE`` of the samples.
* **layout** (``auto``): nobody seen in ``MIN_PRESENCE`` of the samples -> ``fit``; two
  people who do not fit in one crop -> ``split``; otherwise ``track`` (``static`` when
  the camera goal never leaves its dead zone).
* **speaker** (two people, forced ``track``): per sentence (words split at ``.?!`` or a
  pause of ``SENTENCE_GAP_US``), the person whose mouth region moves most while words
  are spoken; a choice is held at least ``hold_s``; switches happen at sentence starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..transcribe import Word
from .faces import Box

PERSON_GAP = 0.2  # of the frame extent along the free axis
MIN_PRESENCE = 0.3  # share of a shot's samples
SENTENCE_GAP_US = 500_000
SPEECH_PAD_US = 100_000


@dataclass(frozen=True, slots=True)
class People:
    centres: tuple[float, ...]  # 0, 1 or 2 cluster centres on the free axis, ascending
    split_at: float | None  # boundary between the two
    presence: tuple[float, ...]
    face_extent: float  # median face size along the free axis


def _pos(b: Box, axis: str) -> float:
    return b.cx if axis == "x" else b.cy


def _size(b: Box, axis: str) -> float:
    return b.w if axis == "x" else b.h


def people(samples: Sequence[Sequence[Box]], extent: float, axis: str) -> People:
    n = len(samples)
    pos = sorted(_pos(b, axis) for bs in samples for b in bs)
    if n == 0 or not pos:
        return People((), None, (), 0.0)
    sizes = sorted(_size(b, axis) for bs in samples for b in bs)
    face = sizes[len(sizes) // 2]
    seen = sum(1 for bs in samples if bs) / n
    gaps = [(pos[i + 1] - pos[i], i) for i in range(len(pos) - 1)]
    if gaps:
        gap, i = max(gaps)
        if gap > PERSON_GAP * extent:
            cut = (pos[i] + pos[i + 1]) / 2
            a = sum(1 for bs in samples if any(_pos(b, axis) < cut for b in bs)) / n
            b_ = sum(1 for bs in samples if any(_pos(b, axis) >= cut for b in bs)) / n
            if a >= MIN_PRESENCE and b_ >= MIN_PRESENCE:
                left = [p for p in pos if p < cut]
                right = [p for p in pos if p >= cut]
                return People((left[len(left) // 2], right[len(right) // 2]), cut, (a, b_), face)
    return People((pos[len(pos) // 2],), None, (seen,), face)


def person_box(bs: Sequence[Box], who: int, ppl: People, axis: str) -> Box | None:
    """The largest box of person ``who`` (0 or 1) in one sample."""
    if ppl.split_at is None:
        return bs[0] if bs else None
    side = [b for b in bs if (_pos(b, axis) >= ppl.split_at) == (who == 1)]
    return max(side, key=lambda b: (b.w * b.h, -b.x)) if side else None


def choose_layout(ppl: People, crop_extent: float, forced: str) -> str:
    """``forced`` is ``auto`` or a layout name."""
    if forced != "auto":
        return forced
    if not ppl.centres or max(ppl.presence) < MIN_PRESENCE:
        return "fit"
    if len(ppl.centres) == 2 and (ppl.centres[1] - ppl.centres[0]) + ppl.face_extent > crop_extent:
        return "split"
    return "track"


def sentence_starts(words: Sequence[Word], t0_us: int, t1_us: int) -> list[int]:
    """Start times of sentences beginning inside ``[t0_us, t1_us)``."""
    starts: list[int] = []
    prev: Word | None = None
    for w in words:
        if prev is None or prev.text.rstrip().endswith((".", "?", "!")) or \
                w.start_us - prev.end_us >= SENTENCE_GAP_US:
            if t0_us <= w.start_us < t1_us:
                starts.append(w.start_us)
        prev = w
    return starts


def _speaking(words: Sequence[Word], t: int) -> bool:
    return any(w.start_us - SPEECH_PAD_US <= t <= w.end_us + SPEECH_PAD_US for w in words)


def speaker_choice(times_us: Sequence[int], samples: Sequence[Sequence[Box]], ppl: People,
                   words: Sequence[Word], t0_us: int, t1_us: int, axis: str,
                   hold_s: float) -> tuple[list[int], list[int]]:
    """Who to frame per sample (0/1) and the switch times, for a two-person shot."""
    bounds = [t0_us] + [s for s in sentence_starts(words, t0_us, t1_us) if s > t0_us]
    if len(bounds) == 1:  # no sentence structure: windows of the hold time
        step = int(hold_s * 1_000_000)
        bounds = list(range(t0_us, t1_us, step))
    use_words = bool(words) and any(t0_us <= w.start_us < t1_us for w in words)
    scores: list[list[float]] = []
    for k, b in enumerate(bounds):
        e = bounds[k + 1] if k + 1 < len(bounds) else t1_us
        sc = [0.0, 0.0]
        for t, bs in zip(times_us, samples, strict=True):
            if b <= t < e and (not use_words or _speaking(words, t)):
                for who in (0, 1):
                    box = person_box(bs, who, ppl, axis)
                    if box is not None:
                        sc[who] += box.mouth
        scores.append(sc)
    choice: list[int] = []
    switches: list[int] = []
    current = 0 if ppl.presence[0] >= ppl.presence[1] else 1
    since = t0_us
    for k, b in enumerate(bounds):
        sc = scores[k]
        want = current if sc[0] == sc[1] else (0 if sc[0] > sc[1] else 1)
        if k == 0:
            current = want
        elif want != current and b - since >= int(hold_s * 1_000_000):
            current, since = want, b
            switches.append(b)
        choice.append(current)
    per_sample: list[int] = []
    for t in times_us:
        k = max(i for i, b in enumerate(bounds) if b <= t) if t >= bounds[0] else 0
        per_sample.append(choice[k])
    return per_sample, switches
