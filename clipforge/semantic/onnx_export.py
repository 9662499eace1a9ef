"""Export a sentence-transformers BERT-style model (transformer + mean pooling) to ONNX.

A model whose transformer takes no ``token_type_ids`` (MPNet, for all-mpnet-base-v2) is
exported without that input; :class:`.onnx_encoder.OnnxEncoder` feeds only the inputs a
graph declares.

Install-time only (``python -m clipforge.warmup``) or a one-off on first use: this imports
torch and transformers, which the run path never does. The export is checked against
torch on a padded batch before it is published (written atomically).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

_CHECK = ["Hello world.", "The quarterly figures were better than anyone expected, "
          "and the team celebrated late into the night.", "ok"]


@contextlib.contextmanager
def _no_onnx_package() -> Iterator[None]:
    """torch's TorchScript exporter imports the ``onnx`` package only to splice in
    onnxscript custom functions, which this graph has none of; skip that step so the
    export needs no extra dependency."""
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils as utils

    original = utils._add_onnxscript_fn
    utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        utils._add_onnxscript_fn = original


def _pooled_module(model_dir: Path) -> Any:
    import inspect

    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    base = AutoModel.from_pretrained(str(model_dir), local_files_only=True,
                                     attn_implementation="eager").eval()
    takes_types = "token_type_ids" in inspect.signature(base.forward).parameters

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.input_names = ["input_ids", "attention_mask"] + \
                (["token_type_ids"] if takes_types else [])

        def forward(self, input_ids: Any, attention_mask: Any, *types: Any) -> Any:
            extra = {"token_type_ids": types[0]} if types else {}
            hidden = self.base(input_ids=input_ids, attention_mask=attention_mask,
                               **extra).last_hidden_state
            weight = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)

    return MeanPooled().eval()


def _batch(model_dir: Path, texts: list[str]) -> dict[str, np.ndarray]:
    from tokenizers import Tokenizer

    from .onnx_encoder import _read_json, max_seq_length

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_seq_length(model_dir))
    pad = _read_json(model_dir / "config.json").get("pad_token_id", 0)
    pad_id = int(pad) if isinstance(pad, int) else 0
    tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id) or "[PAD]")
    encs = tok.encode_batch(texts)
    return {"input_ids": np.array([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64)}


def export(model_dir: Path, target: Path) -> Path:
    """Write ``target`` (atomically) from ``model_dir``; returns ``target``."""
    import warnings

    import onnxruntime as ort
    import torch

    try:
        module = _pooled_module(model_dir)
    except Exception as exc:  # transformers raises many loader error types
        raise ConfigError(f"{model_dir}: cannot load the sentence model for export ({exc}); "
                          "reinstall the model package") from exc
    names: list[str] = module.input_names
    feed = {k: v for k, v in _batch(model_dir, _CHECK).items()  # padded rows, so the
            if k in names}                                       # mask stays in the graph
    args = tuple(torch.from_numpy(feed[k]) for k in names)
    dynamic = {k: {0: "batch", 1: "seq"} for k in feed} | {"embedding": {0: "batch"}}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    os.close(fd)
    optimised = tmp + ".opt"
    try:
        with torch.no_grad(), _no_onnx_package(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = module(*args).numpy()
            torch.onnx.export(module, args, tmp, input_names=names,
                              output_names=["embedding"], dynamic_axes=dynamic,
                              opset_version=17, dynamo=False)
        # Publish the graph onnxruntime optimises (fusions, constant folding, no
        # hardware-specific layouts), so each run's load skips that work (~0.5 s).
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.optimized_model_filepath = optimised
        ort.InferenceSession(tmp, opts, providers=["CPUExecutionProvider"])
        session = ort.InferenceSession(optimised, providers=["CPUExecutionProvider"])
        got = session.run(None, feed)[0]
        cos = (got * expected).sum(1) / (np.linalg.norm(got, axis=1)
                                         * np.linalg.norm(expected, axis=1))
        if not np.all(cos >= 0.99999):
            raise ConfigError(f"{model_dir}: the ONNX export disagrees with torch (cosine "
                              f"{cos.min():.6f}); set CLIPFORGE_EMBEDDING_BACKEND="
                              "sentence-transformers and report it")
        os.chmod(optimised, 0o644)
        os.replace(optimised, target)
    finally:
        for path in (tmp, optimised):
            if os.path.exists(path):
                os.unlink(path)
    return target
