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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import cutpoints, edges, pauses, soundalike
from .errors import NoHighlightsError
from .feedback.weights import DEFAULT_WEIGHTS, ScoreWeights, factor
from .feedback.weights import delivery as delivery_of
from .signals import AudioSignals
from .text import Sentence, prompt_keywords
from .textanalysis import TextAnalysis
from .timeutil import s_to_us
from .transcribe import Transcript, Word

SCORE_RULE = (
    "text*(0.6+0.4*delivery)*(0.85+0.15*visual); text=1-(1-keyword)*(1-semantic); "
    "keyword=min(1,keyword_density/0.2)*(0.5+0.5*coverage), coverage=idf-weighted share "
    "of the prompt stems the source says, a sound-alike of one it never says counting "
    "half; semantic=clip((cos-0.1)/0.5,0,1), "
    "cos=word-weighted mean of the sentence cosines, each max(sentence, best clause); "
    "delivery=0.45*energy+0.2*bursts+0.2*pitch_var+0.15*speech_rate"
)
MIN_TEXT_RELEVANCE = 0.05
MERGE_GAP_US = 500_000  # picks closer than this become one segment (no needless cut)
MERGE_PAUSE_US = 1_000_000  # ... and picks with no word between them, closer than this
FILL_FLOOR = 0.3  # absolute text relevance every pick after the first must reach
# ... and, when a later pick says none of the prompt's words and lies in a topic no pick
# before it is in, this share of the first pick's text relevance
CROSS_TOPIC_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class SelectionParams:
    target_us: int = 60_000_000
    min_clip_us: int = 3_000_000
    max_clip_us: int = 30_000_000
    chunk_us: int = 300_000_000
    overlap_us: int = 30_000_000
    lead_pad_us: int = 100_000
    tail_pad_us: int = 100_000
    min_relative: float = 0.35
    clips: int = 0  # 0: one reel filling target_us; N: the N best separate clips
    fill_floor: float = FILL_FLOOR
    frame_rate: str = ""  # source video frame rate ("30000/1001"); "" = no frame grid

    def to_json(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.__dataclass_fields__:
            v = getattr(self, k)
            out[k.removesuffix("_us") + ("_s" if k.endswith("_us") else "")] = (
                round(v / 1e6, 3) if k.endswith("_us") else v
            )
        return out

    @classmethod
    def for_target(cls, target_seconds: float, clips: int = 0, *,
                   chunk_seconds: float = 300.0, overlap_seconds: float = 30.0
                   ) -> SelectionParams:
        target = s_to_us(target_seconds)
        max_clip = target if clips else min(cls().max_clip_us, target)
        # Every window up to max_clip lies wholly inside some chunk iff overlap >= max_clip
        # (chunk k covers [k(C-O), k(C-O)+C]); so the overlap is raised to max_clip if needed.
        overlap = max(s_to_us(overlap_seconds), max_clip)
        chunk = max(s_to_us(chunk_seconds), 2 * overlap)
        return cls(target_us=target, max_clip_us=max_clip, clips=clips, chunk_us=chunk,
                   overlap_us=overlap)


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
    evidence: tuple[tuple[str, float], ...] = field(default=(), compare=False)
    topics: tuple[int, ...] = field(default=(), compare=False)  # its sentences' topic ids

    def spanning(self, words: Sequence[Word], first: int, last: int) -> Candidate:
        """The same candidate (score, evidence) over ``words[first..last]``: its times and
        text follow the new edges."""
        return dataclasses.replace(
            self, first_word=first, last_word=last, start_us=words[first].start_us,
            end_us=max(w.end_us for w in words[first : last + 1]),
            text=" ".join(w.text for w in words[first : last + 1]))


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen candidate with its cut points (snapped into the gaps between words)."""

    candidate: Candidate
    cut_in_us: int
    cut_out_us: int
    short_reason: str = field(default="", compare=False)  # why the reel is under target


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


@dataclass(frozen=True, slots=True)
class Context:
    """Everything selection reads, prompt included; built once per selection."""

    transcript: Transcript
    text: TextAnalysis
    audio: AudioSignals
    keywords: frozenset[str]
    prompt_vec: np.ndarray | None
    visual: Any | None  # clipforge.visual.VisualTrack or None
    rate_ref: float  # the source's 95th-percentile speech rate (words/s)
    image_text_vec: np.ndarray | None = None  # the prompt in the image-text model's space
    relevance: tuple[float, ...] = ()  # per sentence: 1-(1-keyword)(1-semantic) on its own
    topic: tuple[int, ...] = ()  # per sentence: topic number (TextTiling; all 0 without)
    weights: ScoreWeights = DEFAULT_WEIGHTS  # the scoring weights in force (feedback loop)
    cosines: np.ndarray | None = None  # per sentence: cosine with the prompt (None: none)
    # per prompt keyword: its share of the prompt by inverse sentence frequency
    keyword_weights: Mapping[str, float] = field(default_factory=dict)
    part_relevance: tuple[float, ...] = ()  # per clause of ``text.parts``: its own relevance
    # transcript stem -> the prompt keyword the source never says that it sounds like
    keyword_aliases: Mapping[str, str] = field(default_factory=dict)


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


def snap_cuts(picks: list[Candidate], words: tuple[Word, ...], duration_us: int,
              params: SelectionParams, fine_db: np.ndarray | None = None,
              short_reason: str = "") -> list[Pick]:
    """Cut points in the quiet around each pick (:mod:`clipforge.cutpoints`): at the
    acoustic minimum of the gap before the first word / after the last, never inside a
    word, never past the middle of the gap. Without an envelope: ``lead_pad`` before the
    first word and ``tail_pad`` after the last (still bounded by the gap's middle).
    """
    env = fine_db if fine_db is not None else np.zeros(0, np.float32)
    fps = cutpoints.parse_rate(params.frame_rate)
    out: list[Pick] = []
    for c in picks:
        prev_end = max((w.end_us for w in words[: c.first_word]), default=0)
        has_next = c.last_word + 1 < len(words)
        next_start = words[c.last_word + 1].start_us if has_next else duration_us
        first_start = words[c.first_word].start_us
        last_end = max(w.end_us for w in words[c.first_word : c.last_word + 1])
        cut_in = cutpoints.cut_in(env, prev_end, first_start, lead_pad_us=params.lead_pad_us,
                                  fps=fps)
        cut_out = min(duration_us, cutpoints.cut_out(env, last_end, next_start,
                                                     tail_pad_us=params.tail_pad_us, fps=fps,
                                                     has_next=has_next))
        out.append(Pick(c, cut_in, max(cut_out, cut_in + 1), short_reason))
    return out


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


def follows_on(end_us: int, last_word: int, start_us: int, first_word: int, *,
               merge_gap_us: int = MERGE_GAP_US, merge_pause_us: int = MERGE_PAUSE_US
               ) -> bool:
    """Whether a cut range starting at ``start_us`` with word ``first_word`` plays in one
    segment with the range before it (ending at ``end_us``, last word ``last_word``):
    closer than ``merge_gap_us``, or no word between them and closer than
    ``merge_pause_us``. The rule of :func:`clipforge.plan.segments_from_picks`."""
    return (start_us - end_us < merge_gap_us
            or (first_word == last_word + 1 and start_us - end_us < merge_pause_us))


def trim_run_edges(ctx: Context, picks: list[Pick], params: SelectionParams,
                   duration_us: int) -> list[Pick]:
    """Off-topic edge sentences of picks that play as one segment come off.

    A window keeps an edge sentence that does not answer the prompt when the window
    without it would be shorter than ``min_clip`` (:func:`clipforge.edges.trimmable`):
    "Ask what you can do for your country." lasts 2.1 s, so its window went on into the
    next recording's rap. When that pick follows on from another (:func:`follows_on`),
    it is their segment that must last ``min_clip``, and it does. So for each run of
    picks that :func:`clipforge.plan.segments_from_picks` will join, the last pick's
    trailing sentences and the first pick's leading ones go while their own relevance
    is under ``max(EDGE_ABS, EDGE_REL x the run's best sentence)`` (the trimming rule; a
    sentence cut by a pick's edge counts with its own relevance), each pick keeping one
    sentence, the run ``min_clip``, and the new edge a real pause (``MIN_PAUSE_US``
    between the transcript's words, :mod:`clipforge.pauses`). A trimmed pick's cut is
    placed again (:func:`snap_cuts`). Reels only; the picks keep their scores."""
    words = ctx.transcript.words
    if not ctx.relevance or len(picks) < 2:
        return picks
    order = sorted(range(len(picks)), key=lambda i: (picks[i].cut_in_us, picks[i].cut_out_us))
    runs: list[list[int]] = [[order[0]]]
    end, last = picks[order[0]].cut_out_us, picks[order[0]].candidate.last_word
    for i in order[1:]:
        p = picks[i]
        if follows_on(end, last, p.cut_in_us, p.candidate.first_word):
            runs[-1].append(i)
        else:
            runs.append([i])
        end, last = max(end, p.cut_out_us), max(last, p.candidate.last_word)

    def pause(k: int) -> int:  # the transcript's pause before word k (the envelope's
        # acoustic gap lies inside it, so it is never the longer of the two)
        return words[k].start_us - max(w.end_us for w in words[:k])

    def lasts(first: int, last: int) -> bool:
        return (max(w.end_us for w in words[first : last + 1]) - words[first].start_us
                >= params.min_clip_us)
    out = list(picks)
    for run in (r for r in runs if len(r) > 1):
        # per pick: its sentences (first word, last word, relevance), clipped to the pick
        spans = {i: [(max(s.first_word, picks[i].candidate.first_word),
                      min(s.last_word, picks[i].candidate.last_word), ctx.relevance[s.index])
                     for s in ctx.text.sentences if s.last_word >= picks[i].candidate.first_word
                     and s.first_word <= picks[i].candidate.last_word] for i in run}
        floor = max(edges.EDGE_ABS, edges.EDGE_REL * max(r for i in run for *_, r in spans[i]))
        head, tail = spans[run[0]], spans[run[-1]]
        while (len(tail) > 1 and tail[-1][2] < floor and pause(tail[-1][0]) >= pauses.MIN_PAUSE_US
               and lasts(head[0][0], tail[-2][1])):
            tail.pop()
        while (len(head) > 1 and head[0][2] < floor and pause(head[1][0]) >= pauses.MIN_PAUSE_US
               and lasts(head[1][0], tail[-1][1])):
            head.pop(0)
        for i in (run[0], run[-1]):
            w0, w1 = spans[i][0][0], spans[i][-1][1]
            c = picks[i].candidate
            if (w0, w1) != (c.first_word, c.last_word):
                out[i] = snap_cuts([c.spanning(words, w0, w1)], words, duration_us, params,
                                   ctx.audio.fine_db, picks[i].short_reason)[0]
    return out


def trim_edge_clauses(ctx: Context, picked: list[Candidate], params: SelectionParams
                      ) -> list[Candidate]:
    """Each pick's trailing clauses of its last sentence that do not answer the prompt
    come off (:func:`clipforge.edges.trim_span`), as long as the pick still lasts
    ``min_clip``. A speech model often joins two sentences with a
    comma ("... including commercial uses, on the bottom right you can see the time."),
    and a whole-sentence window would carry the second one along. A clause that
    continues the one before it stays, relevant or not. The pick keeps its
    score: this changes its edges, not which moments are picked."""
    if not ctx.text.parts:
        return picked
    words = ctx.transcript.words
    out = []
    for c in picked:
        w0, w1 = edges.trim_span(c.first_word, c.last_word, ctx.text.sentences,
                                 ctx.text.parts, ctx.relevance, ctx.part_relevance,
                                 ctx.text.part_link, params.min_clip_us)
        out.append(c.spanning(words, w0, w1) if (w0, w1) != (c.first_word, c.last_word)
                   else c)
    return out


def edges_on_pauses(ctx: Context, picked: list[Candidate], params: SelectionParams,
                    duration_us: int) -> list[Candidate]:
    """Each pick's first/last word moved to a boundary with a real pause when its own
    boundary has none (:mod:`clipforge.pauses`)."""
    ec = pauses.edge_context(ctx.transcript.words, ctx.text.sentences, ctx.text.stems,
                             ctx.keywords, ctx.audio.fine_db, duration_us, ctx.relevance,
                             ctx.topic)
    return pauses.prefer_pauses(picked, ec, min_clip_us=params.min_clip_us,
                                max_clip_us=params.max_clip_us,
                                target_us=0 if params.clips else params.target_us,
                                bridge=not params.clips)
