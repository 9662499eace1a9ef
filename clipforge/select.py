"""Pick the moments that answer the prompt.

Overlapping transcript chunks -> candidate sentence windows per chunk -> a
deterministic merge across chunks -> highlights that fill the target -> cut points
snapped to the gaps between words. The exact formula is in the README ("Selection").

Per window (1..n consecutive sentences lasting ``min_clip``..``max_clip``; a sentence
of over 40 words is split into its clauses first, :func:`clipforge.text.split_clauses`):

- ``keyword = min(1, keyword_density / 0.2) x (0.5 + 0.5 coverage)`` where
  ``keyword_density`` is the share of the window's words whose stem is one of the
  prompt's content stems, and ``coverage`` the share of the prompt's stems (those the
  source says, weighted by inverse sentence frequency) that the window says
  (:func:`clipforge.edges.keyword_score`). A prompt stem the source never says can
  still be met, at half credit, by a transcript word that sounds like it: one consonant
  swapped within its manner of articulation ("beep" heard as "deep",
  :mod:`clipforge.soundalike`);
- ``semantic = clip((cos(prompt, window) - 0.1) / 0.5, 0, 1)``: cosine similarity of
  MiniLM sentence embeddings, the window's cosine being the word-weighted mean of its
  sentences' cosines (:func:`window_cosine`), a sentence's cosine the larger of its own
  and its best clause's (:func:`clipforge.textanalysis.sentence_parts`);
- ``text = 1 - (1 - keyword) (1 - semantic)``: either kind of match is enough, both
  reinforce;
- ``delivery = 0.45 energy + 0.2 bursts + 0.2 pitch_var + 0.15 speech_rate`` (each in
  [0, 1], normalised per source);
- ``visual`` in [0, 1] from faces and motion when the source has video (averaged with the
  best frame-to-prompt match of an image-text model when one is configured);
- ``score = text x (0.6 + 0.4 delivery) x (0.85 + 0.15 visual)`` (no visual term without
  video). With neither embeddings nor extra signals this reduces to the seed rule
  ``keyword_density x audio_energy`` up to constant factors (and the coverage term).

The merge is a pure function of the candidate set: candidates are pooled across chunks,
identical windows collapse to one, then they are ordered by (score desc, start asc,
end asc) — scores rounded to 1e-6 so float noise cannot reorder ties — and taken
greedily, skipping any that overlap one already taken, while the total stays within the
target; candidates scoring under ``min_relative`` of the best are never taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import edges, pauses, soundalike
from .errors import NoHighlightsError
from .feedback.weights import DEFAULT_WEIGHTS, ScoreWeights, factor
from .feedback.weights import delivery as delivery_of
from .picks import Candidate, Chunk, Context, Pick, SelectionParams
from .refine import edges_on_pauses, snap_cuts, trim_edge_clauses, trim_run_edges
from .signals import AudioSignals
from .text import Sentence, prompt_keywords
from .textanalysis import TextAnalysis
from .transcribe import Transcript

SCORE_RULE = (
    "text*(0.6+0.4*delivery)*(0.85+0.15*visual); text=1-(1-keyword)*(1-semantic); "
    "keyword=min(1,keyword_density/0.2)*(0.5+0.5*coverage), coverage=idf-weighted share "
    "of the prompt stems the source says, a sound-alike of one it never says counting "
    "half; semantic=clip((cos-0.1)/0.5,0,1), "
    "cos=word-weighted mean of the sentence cosines, each max(sentence, best clause); "
    "delivery=0.45*energy+0.2*bursts+0.2*pitch_var+0.15*speech_rate"
)
MIN_TEXT_RELEVANCE = 0.05
# When a later pick says none of the prompt's words and lies in a topic no pick before it
# is in, it must reach this share of the first pick's text relevance
CROSS_TOPIC_SHARE = 0.75


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


def _speech_rate_ref(text: TextAnalysis) -> float:
    rates = [
        (s.last_word - s.first_word + 1) / max(0.5, (s.end_us - s.start_us) / 1e6)
        for s in text.sentences
    ]
    return float(np.percentile(rates, 95)) if rates else 1.0


def score_window(ctx: Context, first: Sentence, last: Sentence, sents: list[Sentence],
                 chunk: Chunk) -> Candidate | None:
    w0, w1 = first.first_word, last.last_word
    window = ctx.text.stems[w0 : w1 + 1]
    if not window:
        return None
    keyword, hits = edges.keyword_score(window, ctx.keyword_weights, ctx.keyword_aliases)
    density = len(hits) / len(window)
    semantic = 0.0
    if ctx.cosines is not None:
        weights = np.array([s.last_word - s.first_word + 1 for s in sents], dtype=np.float64)
        cos = window_cosine(ctx.cosines[[s.index for s in sents]], weights)
        semantic = edges.semantic_score(cos)
    text = 1.0 - (1.0 - keyword) * (1.0 - semantic)
    span_us = last.end_us - first.start_us
    rate = min(1.0, (len(window) / max(0.5, span_us / 1e6)) / max(ctx.rate_ref, 1e-6))
    d = ctx.audio.delivery(first.start_us, last.end_us)
    delivery = delivery_of({"energy": d["audio_energy"], "bursts": d["bursts"],
                            "pitch_var": d["pitch_var"], "speech_rate": rate}, ctx.weights)
    evidence: list[tuple[str, float]] = [
        ("keyword", round(keyword, 6)), ("semantic", round(semantic, 6)),
        ("text", round(text, 6)), ("bursts", round(d["bursts"], 6)),
        ("pitch_var", round(d["pitch_var"], 6)), ("speech_rate", round(rate, 6)),
        ("delivery", round(delivery, 6)),
    ]
    v: float | None = None
    if ctx.visual is not None and getattr(ctx.visual, "frame_times_us", None):
        v = float(ctx.visual.score_between(first.start_us, last.end_us))
        if ctx.image_text_vec is not None and ctx.visual.image_embeddings is not None:
            it = float(ctx.visual.image_text_between(first.start_us, last.end_us,
                                                     ctx.image_text_vec))
            evidence.append(("image_text", round(it, 6)))
            v = 0.5 * v + 0.5 * it
        evidence.append(("visual", round(v, 6)))
    score = text * factor(delivery, v, ctx.weights)
    if text < MIN_TEXT_RELEVANCE:
        score = 0.0
    return Candidate(
        start_us=first.start_us,
        end_us=last.end_us,
        first_word=w0,
        last_word=w1,
        score=round(score, 6),
        keyword_density=round(density, 6),
        audio_energy=round(d["audio_energy"], 6),
        matched=tuple(sorted(set(hits))),
        text=" ".join(w.text for w in ctx.transcript.words[w0 : w1 + 1]),
        chunk=chunk.index,
        evidence=tuple(evidence),
        topics=tuple(sorted({_topic(ctx, s.index) for s in sents})),
    )


def window_cosine(cosines: np.ndarray, weights: np.ndarray) -> float:
    """The window's cosine with the prompt: the word-weighted mean of its sentences'
    cosines with it (``cosines``, one per sentence; ``weights``: their word counts). (The
    cosine of the renormalised mean embedding is not used: it divides by
    the mean vector's length, which shrinks as the sentences disagree, so a window that
    adds an off-topic sentence to a relevant one scored as high as that sentence alone.)"""
    return float(cosines @ weights) / float(weights.sum())


def chunk_candidates(ctx: Context, chunk: Chunk, params: SelectionParams) -> list[Candidate]:
    """Candidate windows of one chunk: sentences wholly inside it, 1..n in a row."""
    inside = [s for s in ctx.text.sentences
              if s.start_us >= chunk.start_us and s.end_us <= chunk.end_us]
    out: list[Candidate] = []
    for i, first in enumerate(inside):
        emitted = False
        for j in range(i, len(inside)):
            last = inside[j]
            span = last.end_us - first.start_us
            if span > params.max_clip_us:
                break
            crossed = _topic(ctx, last.index) != _topic(ctx, first.index)
            if crossed and emitted:
                break  # a window never crosses a topic change ...
            if span < params.min_clip_us:
                continue
            if _trimmable(ctx, inside[i : j + 1], params):
                continue
            c = score_window(ctx, first, last, inside[i : j + 1], chunk)
            if c is not None:
                out.append(c)
            emitted = True
            if crossed:
                break  # ... unless its topic is shorter than min_clip: then just reach it
    return out


def _topic(ctx: Context, sentence: int) -> int:
    return ctx.topic[sentence] if ctx.topic else 0


def _trimmable(ctx: Context, sents: list[Sentence], params: SelectionParams) -> bool:
    return edges.trimmable(ctx.relevance, sents, params.min_clip_us)


def build_context(transcript: Transcript, text: TextAnalysis, audio: AudioSignals,
                  prompt: str, prompt_vec: np.ndarray | None, visual: Any | None = None,
                  image_text_vec: np.ndarray | None = None,
                  weights: ScoreWeights = DEFAULT_WEIGHTS) -> Context:
    keywords = frozenset(prompt_keywords(prompt))
    part_cos = edges.sentence_cosines(text.part_embeddings, prompt_vec) if text.parts else None
    cosines = edges.sentence_cosines(text.embeddings, prompt_vec, part_cos, text.part_owner)
    aliases = soundalike.keyword_aliases(prompt, transcript.words, text.stems)
    kw_weights = edges.keyword_weights(text.sentences, text.stems, keywords, aliases)
    return Context(transcript, text, audio, keywords, prompt_vec,
                   visual, _speech_rate_ref(text), image_text_vec,
                   edges.sentence_relevance(text.sentences, text.stems, cosines, kw_weights,
                                            aliases),
                   edges.sentence_topics(text.sentences, text.embeddings), weights,
                   cosines if cosines.size else None, kw_weights,
                   edges.sentence_relevance(text.parts, text.stems, part_cos, kw_weights,
                                            aliases), aliases)


def candidates(ctx: Context, params: SelectionParams) -> list[Candidate]:
    """All candidate windows from all chunks (duplicates from chunk overlaps included)."""
    words = ctx.transcript.words
    if not words:
        return []
    duration = max(ctx.transcript.duration_us, words[-1].end_us)
    out: list[Candidate] = []
    for chunk in make_chunks(duration, params.chunk_us, params.overlap_us):
        out.extend(chunk_candidates(ctx, chunk, params))
    return out


def merge(cands: list[Candidate], params: SelectionParams) -> list[Candidate]:
    """The deterministic merge rule (see the module docstring). Ranked best first."""
    return merge_with_reason(cands, params)[0]


def _text_of(c: Candidate) -> float:
    ev = dict(c.evidence)
    return float(ev["text"]) if "text" in ev else 1.0


def _stray(c: Candidate, picked: Sequence[Candidate]) -> bool:
    """A later pick with only the embedding's word for it, away from the reel: it says
    none of the prompt's words (keyword 0), none of its topics is one a pick before it is
    in, and its text relevance is under ``CROSS_TOPIC_SHARE`` of the first pick's. (Such a
    sentence is most often one the embedding finds close to many prompts: "you may use
    this for any purpose" pads a reel about where the callers live.) Candidates without
    topic ids (no embeddings, LLM picks) are never strays."""
    if not c.topics or dict(c.evidence).get("keyword", 1.0) > 0:
        return False
    seen = {t for p in picked for t in p.topics}
    return bool(seen) and seen.isdisjoint(c.topics) and \
        _text_of(c) < CROSS_TOPIC_SHARE * _text_of(picked[0])


def merge_with_reason(cands: list[Candidate], params: SelectionParams
                      ) -> tuple[list[Candidate], str]:
    """:func:`merge`, plus why a reel stays under its target ("" when it does not).

    Every pick after the first must also reach ``fill_floor`` in absolute text relevance
    (the first only needs ``MIN_TEXT_RELEVANCE``), and must not be a stray
    (:func:`_stray`), so a reel never pads with moments that do not answer the prompt;
    it is shorter instead."""
    unique: dict[tuple[int, int], Candidate] = {}
    for c in cands:
        key = (c.start_us, c.end_us)
        if key not in unique or c.score > unique[key].score:
            unique[key] = c
    ordered = sorted(unique.values(), key=lambda c: (-c.score, c.start_us, c.end_us))
    if not ordered or ordered[0].score <= 0:
        return [], ""
    floor = ordered[0].score * params.min_relative
    picked: list[Candidate] = []
    total = 0
    too_long = False
    for c in ordered:
        if c.score <= 0 or c.score < floor:
            break
        if picked and (_text_of(c) < params.fill_floor or _stray(c, picked)):
            continue
        if any(c.start_us < p.end_us and p.start_us < c.end_us for p in picked):
            continue
        length = c.end_us - c.start_us
        if params.clips:
            picked.append(c)
            if len(picked) >= params.clips:
                return picked, ""
            continue
        if picked and total + length > params.target_us:
            too_long = True
            continue
        picked.append(c)
        total += length
        if total >= params.target_us:
            return picked, ""
    want = f"{params.clips} clips" if params.clips else f"{params.target_us / 1e6:g} s"
    got = f"{len(picked)} clips" if params.clips else f"{total / 1e6:.1f} s"
    if too_long:
        why = "the other passages that answer the prompt are longer than the time left"
    else:
        why = (f"no other passage answers the prompt (text relevance >= "
               f"{params.fill_floor:g} and score >= {params.min_relative:g} x the best; "
               f"in another topic with none of the prompt's words, relevance >= "
               f"{CROSS_TOPIC_SHARE:g} x the best's)")
    return picked, f"{got} of {want}: {why}"


def select(ctx: Context, params: SelectionParams, *, prompt: str, source: str = "",
           extra: list[Candidate] | None = None) -> list[Pick]:
    """Ranked picks with cut points, or :class:`NoHighlightsError` naming why.

    ``extra`` candidates (e.g. from an LLM) join the same merge.
    """
    if not ctx.keywords and ctx.prompt_vec is None:
        raise NoHighlightsError(
            f"the prompt {prompt!r} has no content words to look for; "
            "describe the moment you want (e.g. 'the part about pricing')"
        )
    if not ctx.transcript.words:
        raise NoHighlightsError(
            f"{source or 'the source'}: no speech was recognised, so nothing can answer the "
            "prompt. Check that the file has spoken audio (`clipforge probe FILE`)."
        )
    picked, short = merge_with_reason(candidates(ctx, params) + list(extra or []), params)
    if not picked:
        raise NoHighlightsError(
            f"{source or 'the source'}: nothing said in clips of "
            f"{params.min_clip_us / 1e6:g}-{params.max_clip_us / 1e6:g} s matches the prompt "
            f"{prompt!r}. Rephrase it (e.g. with words used in the video) or allow longer "
            "clips with a larger --target-seconds."
        )
    duration = max(ctx.transcript.duration_us, ctx.transcript.words[-1].end_us)
    picked = trim_edge_clauses(ctx, picked, params)
    picked = edges_on_pauses(ctx, picked, params, duration)
    if not params.clips:
        picked = pauses.join_within_sentences(
            picked, ctx.transcript.words, ctx.text.sentences,
            max_clip_us=params.max_clip_us, target_us=params.target_us)
    picks = snap_cuts(picked, ctx.transcript.words, duration, params, ctx.audio.fine_db)
    if not params.clips:
        picks = trim_run_edges(ctx, picks, params, duration)
    if short and not params.clips:  # the reel's length as cut, not as first merged
        total = sum(p.cut_out_us - p.cut_in_us for p in picks)
        short = f"{total / 1e6:.1f} s of " + short.split(" of ", 1)[1]
    return [dataclasses.replace(p, short_reason=short) for p in picks]
