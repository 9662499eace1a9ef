"""The bundled sentence model on onnxruntime + ``tokenizers``: no torch, no transformers.

The ONNX file (transformer + attention-masked mean pooling, made by :mod:`.onnx_export`)
lives per install: ``<venv>/share/clipforge/onnx/`` when that is writable, else
``$CLIPFORGE_HOME/models/`` (default ``~/.clipforge/models/``). Its name carries a key of
the source model's config, tokenizer and weights file (name, size, mtime), so a changed
model (or onnxruntime version: the file holds the graph it optimised) is exported again
rather than silently reused. When it is missing, the first use
exports it (one line on stderr, ~10 s with torch) and later runs load it in ~0.5 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..errors import ConfigError

EXPORT_VERSION = "2"  # bump when the exported graph changes
BATCH = 64
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the sentence model's settings ({exc}); "
                          "reinstall the model package") from exc
    return data if isinstance(data, dict) else {}


def weights_file(model_dir: Path) -> Path:
    for name in _WEIGHTS:
        if (model_dir / name).is_file():
            return model_dir / name
    raise ConfigError(f"{model_dir}: no {' or '.join(_WEIGHTS)} in the sentence model folder; "
                      "reinstall the model package")


def model_key(model_dir: Path) -> str:
    """Identity of the source model, cheap enough for every run (no 90 MB hash)."""
    import onnxruntime as ort  # the saved graph is optimised for this version

    h = hashlib.sha256(f"{EXPORT_VERSION}:{ort.__version__}".encode())
    for name in ("config.json", "tokenizer.json", "sentence_bert_config.json",
                 "1_Pooling/config.json", "modules.json"):
        p = model_dir / name
        h.update(name.encode())
        h.update(p.read_bytes() if p.is_file() else b"-")
    w = weights_file(model_dir)
    st = w.stat()
    h.update(f"{w.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _candidate_dirs() -> list[Path]:
    home = Path(os.environ.get("CLIPFORGE_HOME") or Path.home() / ".clipforge")
    return [Path(sys.prefix) / "share" / "clipforge" / "onnx", home / "models"]


def _writable(d: Path) -> bool:
    probe = d
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def onnx_path(model_dir: Path) -> Path:
    """Where the export of ``model_dir`` is (or would be written): the first candidate
    folder that already has it, else the first writable one."""
    resolved = model_dir.resolve()
    name = f"{resolved.parent.name}-{resolved.name}-{model_key(model_dir)}.onnx"
    dirs = _candidate_dirs()
    for d in dirs:
        if (d / name).is_file():
            return d / name
    for d in dirs:
        if _writable(d):
            return d / name
    raise ConfigError(f"no writable folder for the ONNX sentence model (tried "
                      f"{', '.join(map(str, dirs))}); set CLIPFORGE_HOME to a writable folder")


def max_seq_length(model_dir: Path) -> int:
    cfg = model_dir / "sentence_bert_config.json"
    value = _read_json(cfg).get("max_seq_length", 256) if cfg.is_file() else 256
    return int(value) if isinstance(value, int | float | str) else 256


class OnnxEncoder:
    """Tokenise (truncate to the model's max length, pad per batch), run, L2-normalise."""

    def __init__(self, onnx_file: Path, model_dir: Path, threads: int = 0) -> None:
        """``threads``: onnxruntime's intra-op thread count (0: its default, one per
        physical core)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tok.no_padding()
        tok.enable_truncation(max_seq_length(model_dir))
        self._tok = tok
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = max(0, int(threads))
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            self._session = ort.InferenceSession(str(onnx_file), opts,
                                                 providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"{onnx_file}: onnxruntime cannot load the sentence model "
                              f"({exc}); delete the file and run `python -m clipforge.warmup`"
                              ) from exc
        self._inputs = {i.name for i in self._session.get_inputs()}
        dim = self._session.get_outputs()[0].shape[-1]
        self.dimension = int(dim) if isinstance(dim, int) else \
            int(str(_read_json(model_dir / "config.json").get("hidden_size", 0)))

    def encode(self, texts: list[str]) -> np.ndarray:
        # like sentence-transformers: stripped text, batches of similar lengths
        encs = self._tok.encode_batch([str(t).strip() for t in texts])
        order = sorted(range(len(encs)), key=lambda i: -len(encs[i].ids))
        out = np.zeros((len(encs), self.dimension), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
                types[row, :n] = encs[i].type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            vecs = self._session.run(None, {k: v for k, v in feed.items()
                                            if k in self._inputs})[0]
            out[idx] = vecs
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return (out / norms).astype(np.float32)


def load_onnx(model_dir: Path) -> OnnxEncoder:
    """The encoder, exporting the model first when no install-time export exists."""
    target = onnx_path(model_dir)
    if not target.is_file():
        print(f"clipforge: exporting the sentence model to ONNX once ({target}); "
              "`python -m clipforge.warmup` does this at install time", file=sys.stderr)
        from .onnx_export import export

        export(model_dir, target)
    return OnnxEncoder(target, model_dir)
