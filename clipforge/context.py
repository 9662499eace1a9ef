"""What selection needs for one prompt: the prompt's embedding, the image-text model's
view of it, and the selection context over the analysed video.

Models are loaded once per process and only when used (a run whose text analysis is
cached and that has no image-text model configured loads only the sentence model)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from . import semantic
from .config import Settings
from .feedback.weights import DEFAULT_WEIGHTS, ScoreWeights
from .picks import Context
from .select import build_context
from .signals import AudioSignals
from .textanalysis import TextAnalysis
from .transcribe import Transcript

_scorers: dict[str, Any] = {}
_lock = threading.Lock()


def image_text_scorer(settings: Settings) -> Any | None:
    """The configured image-text model, loaded once per process (None when not set)."""
    if not settings.image_text_model:
        return None
    with _lock:
        if settings.image_text_model not in _scorers:
            from .imagetext import ImageTextScorer

            _scorers[settings.image_text_model] = ImageTextScorer.from_pretrained(
                settings.image_text_model)
        return _scorers[settings.image_text_model]


def prompt_context(transcript: Transcript, text: TextAnalysis, audio: AudioSignals,
                   prompt: str, settings: Settings, visual: Any | None = None,
                   weights: ScoreWeights = DEFAULT_WEIGHTS) -> Context:
    """The selection context for ``prompt``: embeds it with the model the sentences were
    embedded with (none when the transcript has no sentences) and with the image-text
    model when one is configured."""
    prompt_vec: np.ndarray | None = None
    if text.embeddings.shape[1]:
        prompt_vec = semantic.embed([prompt], settings.embedding_model)[0]
    scorer = image_text_scorer(settings)
    return build_context(transcript, text, audio, prompt, prompt_vec, visual,
                         scorer.embed_text(prompt) if scorer else None, weights)
