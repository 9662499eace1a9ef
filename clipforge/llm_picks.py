"""An LLM's picks as selection candidates: each chunk's sentences for the model to read,
and its validated picks scored by the selection's own formula so they join the same
deterministic merge (:func:`clipforge.select.select`'s ``extra``)."""

from __future__ import annotations

from .feedback.weights import factor
from .llm import ChunkText, LlmPick
from .picks import Candidate, Chunk, Context, SelectionParams
from .select import make_chunks, score_window


def chunk_texts(ctx: Context, params: SelectionParams) -> list[tuple[Chunk, ChunkText]]:
    """Each chunk's sentences as :class:`clipforge.llm.ChunkText`, for an LLM to read."""
    words = ctx.transcript.words
    if not words:
        return []
    duration = max(ctx.transcript.duration_us, words[-1].end_us)
    out: list[tuple[Chunk, ChunkText]] = []
    for chunk in make_chunks(duration, params.chunk_us, params.overlap_us):
        sents = tuple((s.start_us, s.end_us, s.text) for s in ctx.text.sentences
                      if s.start_us >= chunk.start_us and s.end_us <= chunk.end_us)
        if sents:
            out.append((chunk, ChunkText(chunk.start_us, chunk.end_us, sents)))
    return out


def llm_candidates(ctx: Context, picks: list[tuple[Chunk, LlmPick]],
                   params: SelectionParams) -> list[Candidate]:
    """LLM picks (already validated to lie inside their chunk) as merge candidates.

    A pick's times are widened to whole sentences (every sentence it overlaps, so cuts
    stay on sentence boundaries); its ``relevance`` joins the offline text relevance as
    ``text = 1 - (1 - text_offline)(1 - relevance)`` and the same score formula applies.
    """
    out: list[Candidate] = []
    for chunk, pick in picks:
        sents = [s for s in ctx.text.sentences
                 if s.start_us < pick.end_us and s.end_us > pick.start_us
                 and s.start_us >= chunk.start_us and s.end_us <= chunk.end_us]
        if not sents or sents[-1].end_us - sents[0].start_us > params.max_clip_us:
            continue
        base = score_window(ctx, sents[0], sents[-1], sents, chunk)
        if base is None:
            continue
        ev = dict(base.evidence)
        text = 1.0 - (1.0 - ev["text"]) * (1.0 - float(pick.relevance))
        score = text * factor(ev["delivery"], ev.get("visual"), ctx.weights)
        ev.update(llm=round(float(pick.relevance), 6), text=round(text, 6))
        out.append(Candidate(
            start_us=base.start_us, end_us=base.end_us, first_word=base.first_word,
            last_word=base.last_word, score=round(score, 6),
            keyword_density=base.keyword_density, audio_energy=base.audio_energy,
            matched=base.matched, text=base.text, chunk=chunk.index,
            evidence=tuple(sorted(ev.items())),
        ))
    return out
