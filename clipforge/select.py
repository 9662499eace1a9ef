"""Pick the moments that answer the prompt.

Overlapping transcript chunks -> candidate sentence windows per chunk -> a
deterministic merge across chunks -> highlights that fill the target -> cut points
snapped to the gaps between words.

The score of a window is the seed rule ``keyword_density x audio_energy``:
``keyword_density`` is the share of the window's words whose stem is one of the
prompt's content stems; ``audio_energy`` is the window's mean RMS loudness, mapped to
[0, 1] per source (see :func:`clipforge.audio.energy_track`).

The merge is a pure function of the candidate set: candidates are pooled across
chunks, identical windows collapse to one, then they are ordered by
(score desc, start asc, end asc) — scores rounded to 1e-6 so float noise cannot reorder
ties — and taken greedily, skipping any that overlap one already taken, while the
total stays within the target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .audio import EnergyTrack
from .errors import NoHighlightsError
from .text import STOP_WORDS, Sentence, prompt_keywords, split_sentences, stem, tokens
from .timeutil import s_to_us
from .transcribe import Transcript, Word


@dataclass(frozen=True, slots=True)
class SelectionParams:
    target_us: int = 60_000_000
    min_clip_us: int = 3_000_000
    max_clip_us: int = 30_000_000
    chunk_us: int = 300_000_000
    overlap_us: int = 15_000_000
    lead_pad_us: int = 100_000
    tail_pad_us: int = 100_000

    def to_json(self) -> dict[str, float]:
        return {k: round(getattr(self, k) / 1e6, 3) for k in self.__dataclass_fields__}

    @classmethod
    def for_target(cls, target_seconds: float) -> SelectionParams:
        target = s_to_us(target_seconds)
        return cls(target_us=target, max_clip_us=min(cls().max_clip_us, target))


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start_us: int
    end_us: int


@dataclass(frozen=True, slots=True)
class Candidate:
    start_us: int  # first word's start
    end_us: int  # last word's end
    first_word: int
    last_word: int
    score: float
    keyword_density: float
    audio_energy: float
    matched: tuple[str, ...]
    text: str
    chunk: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen candidate with its cut points (snapped into the gaps between words)."""

    candidate: Candidate
    cut_in_us: int
    cut_out_us: int


def make_chunks(duration_us: int, chunk_us: int, overlap_us: int) -> list[Chunk]:
    if chunk_us <= overlap_us:
        raise ValueError("chunk size must exceed the overlap")
    chunks: list[Chunk] = []
    start = 0
    while True:
        end = min(start + chunk_us, duration_us)
        chunks.append(Chunk(len(chunks), start, end))
        if end >= duration_us:
            return chunks
        start = end - overlap_us


def _window_candidates(
    chunk: Chunk,
    sentences: list[Sentence],
    words: tuple[Word, ...],
    stems: list[str],
    keywords: frozenset[str],
    energy: EnergyTrack,
    params: SelectionParams,
) -> list[Candidate]:
    inside = [s for s in sentences if s.start_us >= chunk.start_us and s.end_us <= chunk.end_us]
    out: list[Candidate] = []
    for i, first in enumerate(inside):
        for last in inside[i:]:
            span = last.end_us - first.start_us
            if span > params.max_clip_us:
                break
            if span < params.min_clip_us:
                continue
            w0, w1 = first.first_word, last.last_word
            window = stems[w0 : w1 + 1]
            hits = [s for s in window if s in keywords]
            if not window:
                continue
            density = len(hits) / len(window)
            level = energy.mean_between(first.start_us, last.end_us)
            out.append(
                Candidate(
                    start_us=first.start_us,
                    end_us=last.end_us,
                    first_word=w0,
                    last_word=w1,
                    score=round(density * level, 6),
                    keyword_density=round(density, 6),
                    audio_energy=round(level, 6),
                    matched=tuple(sorted(set(hits))),
                    text=" ".join(w.text for w in words[w0 : w1 + 1]),
                    chunk=chunk.index,
                )
            )
    return out


def word_stems(words: tuple[Word, ...]) -> list[str]:
    """One stem per word ('' for stop words and empty tokens), aligned with ``words``."""
    out = []
    for w in words:
        toks = [t for t in tokens(w.text) if t not in STOP_WORDS]
        out.append(stem(toks[0]) if toks else "")
    return out


def candidates(
    transcript: Transcript, energy: EnergyTrack, prompt: str, params: SelectionParams
) -> list[Candidate]:
    """All candidate windows from all chunks (duplicates from chunk overlaps included)."""
    keywords = frozenset(prompt_keywords(prompt))
    words = transcript.words
    if not words or not keywords:
        return []
    sentences = split_sentences(words, max_len_us=params.max_clip_us)
    stems = word_stems(words)
    duration = max(transcript.duration_us, words[-1].end_us)
    out: list[Candidate] = []
    for chunk in make_chunks(duration, params.chunk_us, params.overlap_us):
        out.extend(_window_candidates(chunk, sentences, words, stems, keywords, energy, params))
    return out


def merge(cands: list[Candidate], params: SelectionParams) -> list[Candidate]:
    """The deterministic merge rule (see the module docstring). Ranked best first."""
    unique: dict[tuple[int, int], Candidate] = {}
    for c in cands:
        key = (c.start_us, c.end_us)
        if key not in unique or c.score > unique[key].score:
            unique[key] = c
    ordered = sorted(unique.values(), key=lambda c: (-c.score, c.start_us, c.end_us))
    picked: list[Candidate] = []
    total = 0
    for c in ordered:
        if c.score <= 0:
            break
        if any(c.start_us < p.end_us and p.start_us < c.end_us for p in picked):
            continue
        length = c.end_us - c.start_us
        if picked and total + length > params.target_us:
            continue
        picked.append(c)
        total += length
        if total >= params.target_us:
            break
    return picked


def snap_cuts(picks: list[Candidate], words: tuple[Word, ...], duration_us: int,
              params: SelectionParams) -> list[Pick]:
    """Cut points in the silence around each pick: never inside a word.

    The in-point is ``lead_pad`` before the first word, but no earlier than the middle of
    the gap after the previous word; the out-point mirrors it with ``tail_pad``.
    """
    out: list[Pick] = []
    for c in picks:
        prev_end = words[c.first_word - 1].end_us if c.first_word > 0 else 0
        has_next = c.last_word + 1 < len(words)
        next_start = words[c.last_word + 1].start_us if has_next else duration_us
        first_start = words[c.first_word].start_us
        last_end = max(w.end_us for w in words[c.first_word : c.last_word + 1])
        mid_before = (prev_end + first_start) // 2 if prev_end < first_start else first_start
        mid_after = (last_end + next_start) // 2 if next_start > last_end else last_end
        cut_in = max(0, first_start - params.lead_pad_us, mid_before)
        cut_out = min(duration_us, last_end + params.tail_pad_us, mid_after)
        out.append(Pick(c, cut_in, max(cut_out, cut_in + 1)))
    return out


def select(
    transcript: Transcript,
    energy: EnergyTrack,
    prompt: str,
    params: SelectionParams,
    *,
    source: str = "",
) -> list[Pick]:
    """Ranked picks with cut points, or :class:`NoHighlightsError` naming why."""
    keywords = prompt_keywords(prompt)
    if not keywords:
        raise NoHighlightsError(
            f"the prompt {prompt!r} has no content words to look for; "
            "describe the moment you want (e.g. 'the part about pricing')"
        )
    if not transcript.words:
        raise NoHighlightsError(
            f"{source or 'the source'}: no speech was recognised, so nothing can answer the "
            "prompt. Check that the file has spoken audio (`clipforge probe FILE`)."
        )
    picked = merge(candidates(transcript, energy, prompt, params), params)
    if not picked:
        raise NoHighlightsError(
            f"{source or 'the source'}: nothing said matches the prompt {prompt!r} "
            f"(keyword stems: {', '.join(keywords)}). Rephrase it with words used in the video."
        )
    duration = max(transcript.duration_us, transcript.words[-1].end_us)
    return snap_cuts(picked, transcript.words, duration, params)
