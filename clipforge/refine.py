"""Edges of the merged picks, refined: whole clauses off, edges on real pauses, cut points
in the quiet, and the off-topic edges of picks that play as one segment trimmed.

:func:`clipforge.select.select` runs these after the merge, in this order:
:func:`trim_edge_clauses`, :func:`edges_on_pauses`, (reels)
:func:`clipforge.pauses.join_within_sentences`, :func:`snap_cuts`, (reels)
:func:`trim_run_edges`. None of them changes which moments are picked or their scores.
"""

from __future__ import annotations

import numpy as np

from . import cutpoints, edges, pauses
from .picks import Candidate, Context, Pick, SelectionParams
from .transcribe import Word

MERGE_GAP_US = 500_000  # picks closer than this become one segment (no needless cut)
MERGE_PAUSE_US = 1_000_000  # ... and picks with no word between them, closer than this


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
