"""Forced alignment with a second acoustic model, for the evaluation's independent word pass.

The pipeline's word times come from Whisper's cross-attention (DTW over 20 ms frames),
which runs words together and lets them overhang into pauses. Checking the pipeline's cut
points against another Whisper pass shares those habits. This module aligns a text to the
audio with PocketSphinx instead: a hidden-Markov phone model (the CMU US-English model and
dictionary that ship inside the ``pocketsphinx`` wheel) on 10 ms frames, with optional
silence between words. Its word boundaries are where that model hears each word's phones,
found independently of Whisper's timing.

The text to align is given (the evaluation passes an independent Whisper transcript).
Segments are aligned in groups separated by pauses, each with a margin that reaches at
most half-way into the pause on either side. A group that does not align is retried
segment by segment; a segment that still does not align keeps its own (Whisper) word
times, and is counted, so a report can say how much of the reference is aligned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby
from typing import Any

RATE = 16_000
FRAME_S = 0.01           # PocketSphinx frames
GROUP_GAP_S = 0.5        # segments closer than this are aligned together
GROUP_MAX_S = 20.0       # ... up to this long
MARGIN_S = 0.5           # audio taken either side of a group, at most half the pause

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


@dataclass(frozen=True, slots=True)
class TextSegment:
    """A stretch of transcript to align: its text, rough times, and fallback word times."""

    start: float
    end: float
    text: str
    words: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Alignment:
    words: tuple[tuple[float, float, str], ...]
    segments: int
    unaligned: int  # segments that kept their own word times


def number_words(n: int) -> list[str]:
    """English words for a non-negative integer as it is usually said up to 999; past
    that, digit by digit (not how years are said, but good enough for alignment)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([] if n % 10 == 0 else [_ONES[n % 10]])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + ([] if n % 100 == 0 else number_words(n % 100))
    return [_ONES[int(c)] for c in str(n)]


def normalise(text: str) -> list[str]:
    """Lower-case dictionary tokens: letters and apostrophes, numbers spelled out."""
    out: list[str] = []
    for tok in re.findall(r"[a-z']+|\d+", text.lower()):
        if tok.isdigit():
            out += number_words(int(tok))
        elif tok.strip("'"):
            out.append(tok.strip("'"))
    return out


def looped_runs(texts: list[str], min_run: int) -> set[int]:
    """Indexes of the runs of at least ``min_run`` consecutive texts with the same words
    (a recogniser's decoding loop writes one line again and again over noise)."""
    out: set[int] = set()
    for _, run in groupby(range(len(texts)), key=lambda k: tuple(normalise(texts[k]))):
        indexes = list(run)
        if len(indexes) >= min_run:
            out.update(indexes)
    return out


class Aligner:
    """One PocketSphinx decoder with the model and dictionary from the installed wheel."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self._decoder: Any = Decoder(samprate=RATE, loglevel="FATAL")

    def known(self, word: str) -> bool:
        return self._decoder.lookup_word(word) is not None

    def align(self, samples: Any, start: float, end: float, text: str
              ) -> list[tuple[float, float, str]] | None:
        """Word times (s, in the source) of ``text`` within ``samples[start:end]``; None
        when the decoder finds no alignment. Words the dictionary lacks are left out (their
        sound goes to a neighbour or to silence)."""
        import numpy as np

        tokens = [t for t in normalise(text) if self.known(t)]
        if not tokens or end <= start:
            return []
        a, b = int(start * RATE), int(end * RATE)
        pcm = (np.clip(samples[a:b], -1.0, 1.0) * 32767).astype("<i2").tobytes()
        d = self._decoder
        d.set_align_text(" ".join(tokens))
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        segs = d.seg()
        if segs is None:
            return None
        words = []
        for s in segs:
            word = str(s.word)
            if word in ("<s>", "</s>", "<sil>") or word.startswith(("[", "+")):
                continue
            words.append((round(start + s.start_frame * FRAME_S, 3),
                          round(start + (s.end_frame + 1) * FRAME_S, 3),
                          re.sub(r"\(\d+\)$", "", word)))
        return words


def _groups(segments: list[TextSegment]) -> list[list[TextSegment]]:
    groups: list[list[TextSegment]] = []
    for s in segments:
        if (groups and s.start - groups[-1][-1].end < GROUP_GAP_S
                and s.end - groups[-1][0].start < GROUP_MAX_S):
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def _own(segment: TextSegment) -> list[tuple[float, float, str]]:
    return [(round(a, 3), round(b, 3), "") for a, b in segment.words]


def align_segments(samples: Any, segments: list[TextSegment],
                   aligner: Aligner | None = None) -> Alignment:
    """Align every segment's text (see the module docstring). Deterministic."""
    aligner = aligner or Aligner()
    segments = sorted((s for s in segments if s.text.strip()), key=lambda s: s.start)
    duration = len(samples) / RATE
    groups = _groups(segments)
    words: list[tuple[float, float, str]] = []
    unaligned = 0
    for i, group in enumerate(groups):
        before = group[0].start - (groups[i - 1][-1].end if i else 0.0)
        after = (groups[i + 1][0].start if i + 1 < len(groups) else duration) - group[-1].end
        lo = max(0.0, group[0].start - min(MARGIN_S, max(0.0, before) / 2))
        hi = min(duration, group[-1].end + min(MARGIN_S, max(0.0, after) / 2))
        got = aligner.align(samples, lo, hi, " ".join(s.text for s in group))
        if got is None:
            got = []
            for j, seg in enumerate(group):
                a = lo if j == 0 else (group[j - 1].end + seg.start) / 2
                b = hi if j == len(group) - 1 else (seg.end + group[j + 1].start) / 2
                one = aligner.align(samples, a, b, seg.text) if len(group) > 1 else None
                if one is None:
                    unaligned += 1
                    one = _own(seg)
                got += one
        words += got
    return Alignment(tuple(words), len(segments), unaligned)
