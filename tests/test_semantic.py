"""Sentence embeddings: the ONNX backend against sentence-transformers (real model), its
determinism, the first-use export, and a run path that never imports torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import EVAL, REPO, media

from clipforge import semantic
from clipforge.semantic import onnx_encoder

# loads a real model (the fast lane, make test-fast, leaves it out)
pytestmark = pytest.mark.slow

FORBIDDEN = ("torch", "transformers", "sentence_transformers")


def _sentences() -> list[str]:
    """Real transcript lines (the pyannote sample's reference), the evaluation prompts,
    and edge cases: padding-length mixes, one sentence past the 256-token limit, spaces."""
    stm = media("multispeaker_30s__pyannote_sample.stm").read_text().splitlines()
    lines = [" ".join(row.split()[5:]) for row in stm if row.strip()]
    import json

    cases = json.loads((EVAL / "public_episode.truth.json").read_text())["cases"]
    lines += [c["prompt"] for c in cases]
    lines += [
        "And so, my fellow Americans: ask not what your country can do for you, ask what "
        "you can do for your country.",
        "Permission is hereby granted, free of charge, to any person obtaining a copy of "
        "this software and associated documentation files.",
        "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.",
        "This example video may be used for testing the editor.",
        "Where are you calling from?", "Um.", "Okay!", "  padded with spaces  ",
        "Café, naïve, déjà vu — unicode and punctuation…", "12 345 and 3.14159",
        "The quarterly results beat expectations, and the team celebrated late.",
        "We moved the launch to Tuesday because the weather looked bad on Monday.",
        " ".join(["the long sentence keeps going"] * 80),  # ~400 tokens, truncated
    ]
    return lines


@pytest.fixture(scope="module")
def both() -> tuple[np.ndarray, np.ndarray, list[str]]:
    texts = _sentences()
    onnx = semantic.load("")
    assert type(onnx).__name__ == "OnnxEncoder"
    mp = pytest.MonkeyPatch()
    mp.setenv(semantic.BACKEND_ENV, "sentence-transformers")
    try:
        reference = semantic.embed(texts)
    finally:
        mp.undo()
    return semantic.embed(texts), reference, texts


def test_onnx_matches_sentence_transformers(both: tuple[np.ndarray, np.ndarray, list[str]]
                                            ) -> None:
    got, ref, texts = both
    assert len(texts) >= 30
    assert got.dtype == np.float32 and got.shape == ref.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * ref).sum(axis=1)
    assert cos.min() >= 0.9999, texts[int(cos.argmin())]
    # the similarities selection uses agree too
    np.testing.assert_allclose(got @ got.T, ref @ ref.T, atol=2e-4)


def test_onnx_is_deterministic_and_batch_independent(
        both: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    got, _, texts = both
    assert semantic.embed(texts).tobytes() == got.tobytes()
    alone = np.vstack([semantic.embed([t]) for t in texts[:6]])
    np.testing.assert_allclose(alone, got[:6], atol=1e-5)
    assert semantic.load("") is semantic.load("")  # loaded once per process


def test_empty_input_has_the_model_dimension() -> None:
    assert semantic.embed([]).shape == (0, 384)
    assert semantic.embed([]).dtype == np.float32


def test_backend_choice_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert semantic.backend("") == "onnx"
    assert semantic.backend(str(tmp_path)) == "sentence-transformers"
    monkeypatch.setenv(semantic.BACKEND_ENV, "tensorflow")
    with pytest.raises(semantic.ConfigError, match="CLIPFORGE_EMBEDDING_BACKEND"):
        semantic.backend("")
    monkeypatch.setenv(semantic.BACKEND_ENV, "onnx")
    with pytest.raises(semantic.ConfigError, match="bundled"):
        semantic.backend(str(tmp_path))


def test_missing_export_is_built_on_first_use(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = Path(semantic.default_model_path())
    monkeypatch.setattr(onnx_encoder, "_candidate_dirs", lambda: [tmp_path / "models"])
    target = onnx_encoder.onnx_path(model_dir)
    assert not target.exists() and target.parent == tmp_path / "models"
    encoder = onnx_encoder.load_onnx(model_dir)
    assert target.is_file() and "exporting the sentence model" in capsys.readouterr().err
    texts = ["how to cook pasta", "Hello?"]
    np.testing.assert_allclose(encoder.encode(texts), semantic.embed(texts), atol=1e-5)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp left


def test_run_path_imports_no_torch(tmp_path: Path) -> None:
    """Analysis, text analysis, the prompt's embedding and selection, in one process that
    has also imported the CLI, the flow and its tasks: torch and friends stay unloaded."""
    script = textwrap.dedent(f"""
        import sys
        import clipforge_cli.main, flows.clip, tasks.stages  # noqa: F401
        from clipforge import analysis, select, semantic, textanalysis
        from clipforge.config import Settings
        from clipforge.picks import SelectionParams
        from clipforge.context import prompt_context
        from clipforge.probe import probe
        path = {str(media("speech_en_11s__whisper_jfk.flac"))!r}
        settings = Settings(home={str(tmp_path)!r})
        info = probe(path)
        tr, sig = analysis.analyse_audio(path, settings, duration_us=info.duration_us)
        text = textanalysis.analyse_text(tr, lambda t: semantic.embed(t, settings.embedding_model))
        ctx = prompt_context(tr, text, sig, "what you can do for your country", settings)
        picks = select.select(ctx, SelectionParams(target_us=5_000_000),
                              prompt="what you can do for your country")
        print(len(text.sentences), len(picks), text.embeddings.shape)
        print(",".join(m for m in {FORBIDDEN!r} if m in sys.modules) or "none")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    counts, loaded = out.stdout.strip().splitlines()[-2:]
    n_sentences, n_picks, _ = counts.split(" ", 2)
    assert int(n_sentences) >= 1 and int(n_picks) >= 1
    assert "384" in counts
    assert loaded == "none", f"imported on the run path: {loaded}"
