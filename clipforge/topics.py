"""Topic boundaries: TextTiling (Hearst 1997) over sentence embeddings.

For each gap between sentences ``g-1`` and ``g`` the similarity is the cosine between
the mean embedding of the ``block`` sentences before it and of the ``block`` after it
(each sentence weighted by its word count, so a one-word "Yes." counts little). A gap's
*depth* is how far its similarity lies below the highest similarity reached by climbing
left and right from it (Hearst's depth score). A gap is a topic boundary when it is a
local minimum of similarity and its depth is at least both
``mean(depth) + k_std * std(depth)`` over the source and ``min_depth`` (absolute: a
source on one subject throughout has shallow valleys only and gets no boundary).

Pure numpy, float64, fixed order of operations: deterministic for given embeddings.
"""

from __future__ import annotations

import numpy as np

BLOCK = 3
K_STD = 0.5
MIN_DEPTH = 0.15


def gap_similarity(emb: np.ndarray, weights: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Cosine between the weighted mean embeddings either side of each gap 1..n-1."""
    n = emb.shape[0]
    e = emb.astype(np.float64)
    w = weights.astype(np.float64)
    sims = np.zeros(max(n - 1, 0))
    for g in range(1, n):
        left = (e[max(0, g - block):g] * w[max(0, g - block):g, None]).sum(axis=0)
        right = (e[g:g + block] * w[g:g + block, None]).sum(axis=0)
        den = float(np.linalg.norm(left) * np.linalg.norm(right))
        sims[g - 1] = float(left @ right) / den if den > 0 else 1.0
    return sims


def depth_scores(sims: np.ndarray) -> np.ndarray:
    """Hearst's depth: (left peak - s) + (right peak - s), climbing while similarity rises."""
    n = sims.size
    out = np.zeros(n)
    for i in range(n):
        lp = sims[i]
        j = i
        while j > 0 and sims[j - 1] >= lp:
            j -= 1
            lp = sims[j]
        rp = sims[i]
        j = i
        while j < n - 1 and sims[j + 1] >= rp:
            j += 1
            rp = sims[j]
        out[i] = (lp - sims[i]) + (rp - sims[i])
    return out


def topic_boundaries(emb: np.ndarray, weights: np.ndarray, *, block: int = BLOCK,
                     k_std: float = K_STD, min_depth: float = MIN_DEPTH) -> tuple[int, ...]:
    """Sentence indices that start a new topic (ascending; never 0)."""
    n = emb.shape[0] if emb.ndim == 2 else 0
    if n < 3 or emb.shape[1] == 0:
        return ()
    sims = gap_similarity(emb, weights, block)
    depth = depth_scores(sims)
    cutoff = max(min_depth, float(depth.mean() + k_std * depth.std()))
    out = []
    for i in range(sims.size):
        left_ok = i == 0 or sims[i] <= sims[i - 1]
        right_ok = i == sims.size - 1 or sims[i] <= sims[i + 1]
        if left_ok and right_ok and round(float(depth[i]), 9) >= cutoff:
            out.append(i + 1)
    return tuple(out)


def topic_ids(n_sentences: int, boundaries: tuple[int, ...]) -> tuple[int, ...]:
    """Topic number of each sentence given the boundaries."""
    ids = []
    t = 0
    bset = set(boundaries)
    for i in range(n_sentences):
        if i in bset:
            t += 1
        ids.append(t)
    return tuple(ids)
