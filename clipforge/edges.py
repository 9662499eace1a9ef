"""On-topic edges: each sentence's own relevance, off-topic edge sentences, topic ids.

- ``sentence_relevance``: the window formula applied to one sentence,
  ``1 - (1 - keyword)(1 - semantic)`` (same constants as :mod:`clipforge.select`);
- ``trimmable``: a window whose first or last sentence does not answer the prompt —
  relevance under ``max(EDGE_ABS, EDGE_REL x the window's best sentence)`` — is dropped
  when the window without that sentence still lasts ``min_clip``: that shorter window
  is a candidate too, so the longer one only pads with off-topic speech;
- ``sentence_topics``: topic number per sentence from TextTiling over the sentence
  embeddings (:mod:`clipforge.topics`), so windows can stop at a topic change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import topics
from .text import Sentence

KEYWORD_FULL_DENSITY = 0.2
SEMANTIC_FLOOR = 0.1
SEMANTIC_SPAN = 0.5
EDGE_ABS = 0.1
EDGE_REL = 0.4


def sentence_cosines(embeddings: np.ndarray, prompt_vec: np.ndarray | None) -> np.ndarray:
    """Each sentence's cosine with the prompt (embeddings are L2-normalised); empty
    without embeddings or a prompt vector. Computed once per prompt: a window's cosine
    is their word-weighted mean (:func:`clipforge.select.window_cosine`)."""
    if prompt_vec is None or embeddings.ndim != 2 or embeddings.shape[1] == 0:
        return np.zeros(0, dtype=np.float32)
    return (embeddings @ prompt_vec).astype(np.float64)


def sentence_relevance(sentences: Sequence[Sentence], stems: Sequence[str],
                       cosines: np.ndarray, keywords: frozenset[str]) -> tuple[float, ...]:
    """Each sentence's own text relevance in [0, 1] (rounded to 1e-6); ``cosines`` from
    :func:`sentence_cosines` (empty: keywords only)."""
    out = []
    for s in sentences:
        window = stems[s.first_word : s.last_word + 1]
        density = sum(x in keywords for x in window) / max(1, len(window))
        kw = min(1.0, density / KEYWORD_FULL_DENSITY)
        sem = 0.0
        if cosines.size:
            cos = float(cosines[s.index])
            sem = min(1.0, max(0.0, (cos - SEMANTIC_FLOOR) / SEMANTIC_SPAN))
        out.append(round(1.0 - (1.0 - kw) * (1.0 - sem), 6))
    return tuple(out)


def trimmable(relevance: Sequence[float], sents: Sequence[Sentence], min_clip_us: int) -> bool:
    """True when the window ``sents`` has an off-topic edge sentence that can go."""
    if not relevance or len(sents) < 2:
        return False
    rel = [relevance[s.index] for s in sents]
    floor = max(EDGE_ABS, EDGE_REL * max(rel))
    if rel[0] < floor and sents[-1].end_us - sents[1].start_us >= min_clip_us:
        return True
    return rel[-1] < floor and sents[-2].end_us - sents[0].start_us >= min_clip_us


def sentence_topics(sentences: Sequence[Sentence], embeddings: np.ndarray) -> tuple[int, ...]:
    """Topic number per sentence (TextTiling); () without embeddings."""
    if not sentences or embeddings.ndim != 2 or embeddings.shape[1] == 0:
        return ()
    weights = np.array([s.last_word - s.first_word + 1 for s in sentences], np.float64)
    return topics.topic_ids(len(sentences), topics.topic_boundaries(embeddings, weights))
