"""Source-time words -> whole frames on the rendered reel's timeline.

The reel's timeline is the renderer's own frame plan (:func:`clipforge.render.plan_segments`):
segment ``i`` has ``frames`` output frames, starts where segment ``i-1`` ends, minus its
``xfade_frames`` overlap when it enters with a crossfade. Inside a segment, source time
``t`` is at frame ``round((t - source_in) * fps)`` from the segment's start (the writer
starts each segment on the source frame nearest to ``source_in`` and runs at the output
fps). Words outside every kept range are dropped; a word that straddles a cut is trimmed
to the kept part. During a crossfade both segments are on screen: the overlap is split
at its middle frame, the outgoing segment's words end there and the incoming ones start
there, so reel words never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from clipforge.edl import EdlWord, Segment
from clipforge.render import plan_segments
from clipforge.transcribe import Word

US = 1_000_000


@dataclass(frozen=True, slots=True)
class ReelWord:
    """A word on the reel: frames ``[start, end)`` (``end > start``), the segment it
    plays in, and its text as transcribed."""

    start: int
    end: int
    text: str
    segment: int


def reel_frames(segments: Sequence[Segment], fps: Fraction) -> list[tuple[int, int]]:
    """For each segment, ``(reel start frame, frames)`` on the joined reel."""
    plans = plan_segments(segments, fps)
    out: list[tuple[int, int]] = []
    pos = 0
    for plan in plans:
        pos -= plan.xfade_frames
        out.append((pos, plan.frames))
        pos += plan.frames
    return out


def reel_length(segments: Sequence[Segment], fps: Fraction) -> int:
    """Total frames of the joined reel (what ``render`` writes)."""
    start, frames = reel_frames(segments, fps)[-1]
    return start + frames


def _windows(segments: Sequence[Segment], fps: Fraction) -> list[tuple[int, int, int]]:
    """Per segment: (reel start, first visible frame, end of visible frames)."""
    spans = reel_frames(segments, fps)
    plans = plan_segments(segments, fps)
    out = []
    for i, (start, frames) in enumerate(spans):
        lo = start + plans[i].xfade_frames // 2
        if i + 1 < len(spans):
            nxt = plans[i + 1].xfade_frames
            hi = spans[i + 1][0] + nxt // 2
        else:
            hi = start + frames
        out.append((start, lo, hi))
    return out


def _to_frame(seconds: Fraction, fps: Fraction) -> int:
    return round(seconds * fps)


def _word_span(word: Word | EdlWord) -> tuple[Fraction, Fraction]:
    if isinstance(word, Word):
        return Fraction(word.start_us, US), Fraction(word.end_us, US)
    return Fraction(word.start), Fraction(word.end)


def reel_words(
    words: Sequence[Word | EdlWord], segments: Sequence[Segment], fps: Fraction
) -> list[ReelWord]:
    """Map source-time words onto the reel, in whole frames; pure.

    A word can appear more than once if segments repeat source time. Words shorter than
    a frame after trimming are dropped; an overlap between consecutive reel words (from
    overlapping source times) is resolved by ending the earlier one where the next starts.
    """
    result: list[ReelWord] = []
    windows = _windows(segments, fps)
    spans = [_word_span(w) for w in words]
    for i, seg in enumerate(segments):
        src_in, src_out = Fraction(seg.source_in), Fraction(seg.source_out)
        start, lo, hi = windows[i]
        for w, (ws, we) in zip(words, spans, strict=True):
            cs, ce = max(ws, src_in), min(we, src_out)
            if ce <= cs:
                continue
            f0 = max(lo, start + _to_frame(cs - src_in, fps))
            f1 = min(hi, start + _to_frame(ce - src_in, fps))
            if f1 > f0:
                result.append(ReelWord(f0, f1, w.text, i))
    result.sort(key=lambda r: (r.start, r.end))
    clean: list[ReelWord] = []
    for rw in result:
        if clean and clean[-1].end > rw.start:
            prev = clean[-1]
            if rw.start <= prev.start:
                continue  # same start: keep the first
            clean[-1] = ReelWord(prev.start, rw.start, prev.text, prev.segment)
        clean.append(rw)
    return clean


def frame_to_ms(frame: int, fps: Fraction) -> int:
    return round(Fraction(frame) / fps * 1000)


def frame_to_us(frame: int, fps: Fraction) -> int:
    return round(Fraction(frame) / fps * US)


def words_for_edl(words: Sequence[Word], segments: Sequence[Segment]) -> list[EdlWord]:
    """Transcript words that overlap any segment, in source seconds rounded to 1e-6 (the
    EDL's ``words`` field); whole words, in source order, each once."""
    out: list[EdlWord] = []
    for w in sorted(words, key=lambda w: (w.start_us, w.end_us)):
        ws, we = Fraction(w.start_us, US), Fraction(w.end_us, US)
        if any(we > Fraction(s.source_in) and ws < Fraction(s.source_out) for s in segments):
            out.append(EdlWord(start=round(w.start_us / US, 6), end=round(w.end_us / US, 6),
                               text=w.text))
    return out
