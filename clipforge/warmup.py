"""Install-time warm-up: compile librosa's numba kernels into their on-disk cache.

librosa JIT-compiles its signal kernels (YIN, onset strength, RMS framing) on first use,
which cost a fresh machine's first run about 20 s. Running the same signal path once on a
few seconds of synthetic audio at install time writes numba's cache next to librosa, so
no run pays the compile. It also exports the bundled sentence model to ONNX
(:mod:`clipforge.semantic.onnx_export`), so no run imports torch to embed a prompt.
``make install`` runs ``python -m clipforge.warmup``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .signals import audio_signals


def warm_up() -> float:
    """Run the delivery-signal path once; returns the seconds it took."""
    t = time.monotonic()
    n = 3 * SAMPLE_RATE
    tone = 0.1 * np.sin(2 * np.pi * 150.0 * np.arange(n) / SAMPLE_RATE)
    noise = np.random.default_rng(0).normal(0.0, 0.01, n)
    audio_signals((tone + noise).astype(np.float32))
    return time.monotonic() - t


def export_sentence_model() -> tuple[Path, float]:
    """Export the bundled sentence model to ONNX unless already there; returns the file
    and the seconds it took (0 when it existed)."""
    from .semantic import default_model_path
    from .semantic.onnx_encoder import onnx_path
    from .semantic.onnx_export import export

    t = time.monotonic()
    model_dir = Path(default_model_path())
    target = onnx_path(model_dir)
    if target.is_file():
        return target, 0.0
    export(model_dir, target)
    return target, time.monotonic() - t


if __name__ == "__main__":
    print(f"clipforge: signal kernels compiled and cached ({warm_up():.1f} s)")
    path, took = export_sentence_model()
    print(f"clipforge: sentence model on ONNX at {path}"
          + (f" (exported in {took:.1f} s)" if took else " (already exported)"))
