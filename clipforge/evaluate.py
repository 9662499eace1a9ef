"""Scoring ranked highlights against ground truth (see ../shared/eval/README.md).

A case is a hit@k when one of the top k highlights has at least half of its own length
inside the expected span. Also: the top highlight's overlap share, and how many cut
points (segment in/out points) fall inside a spoken word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CaseScore:
    id: str
    prompt: str
    expected: tuple[float, float]
    top: tuple[float, float] | None
    top_text: str
    hit1: bool
    hit3: bool
    overlap: float  # share of the top highlight inside the expected span
    cuts: int
    cuts_inside_words: int
    error: str = ""


def inside_share(span: tuple[float, float], expected: tuple[float, float]) -> float:
    start, end = span
    if end <= start:
        return 0.0
    return max(0.0, min(end, expected[1]) - max(start, expected[0])) / (end - start)


def cut_inside_word(t: float, words: list[tuple[float, float]], tolerance: float = 0.0) -> bool:
    """True if time ``t`` falls strictly inside a word (beyond ``tolerance`` at its edges)."""
    return any(w0 + tolerance < t < w1 - tolerance for w0, w1 in words)


def score_case(case: dict[str, Any], edl: dict[str, Any] | None,
               words: list[tuple[float, float]], error: str = "") -> CaseScore:
    expected = (float(case["expected"][0]), float(case["expected"][1]))
    if edl is None:
        return CaseScore(case["id"], case["prompt"], expected, None, "", False, False, 0.0, 0, 0,
                         error)
    spans = [(float(h["start"]), float(h["end"])) for h in edl["highlights"]]
    hits = [inside_share(s, expected) >= 0.5 for s in spans]
    cuts = [t for seg in edl["segments"] for t in (seg["source_in"], seg["source_out"])]
    return CaseScore(
        id=case["id"],
        prompt=case["prompt"],
        expected=expected,
        top=spans[0] if spans else None,
        top_text=edl["highlights"][0]["text"] if spans else "",
        hit1=bool(hits[:1] and hits[0]),
        hit3=any(hits[:3]),
        overlap=inside_share(spans[0], expected) if spans else 0.0,
        cuts=len(cuts),
        cuts_inside_words=sum(cut_inside_word(t, words) for t in cuts),
        error=error,
    )


def summary(scores: list[CaseScore]) -> dict[str, Any]:
    n = len(scores)
    return {
        "cases": n,
        "hit@1": sum(s.hit1 for s in scores),
        "hit@3": sum(s.hit3 for s in scores),
        "mean_overlap": round(sum(s.overlap for s in scores) / n, 4) if n else 0.0,
        "cuts": sum(s.cuts for s in scores),
        "cuts_inside_words": sum(s.cuts_inside_words for s in scores),
    }


def table(scores: list[CaseScore]) -> str:
    head = f"{'case':<16} {'expected':>15} {'top highlight':>15} {'@1':>3} {'@3':>3} " \
           f"{'overlap':>7} {'in-word':>7}  text"
    lines = [head, "-" * len(head)]
    for s in scores:
        top = f"{s.top[0]:.1f}-{s.top[1]:.1f}" if s.top else "-"
        text = s.error or s.top_text
        lines.append(
            f"{s.id:<16} {s.expected[0]:>7.1f}-{s.expected[1]:<7.1f} {top:>15} "
            f"{'Y' if s.hit1 else 'n':>3} {'Y' if s.hit3 else 'n':>3} {s.overlap:>7.2f} "
            f"{s.cuts_inside_words:>3}/{s.cuts:<3}  {text[:60]}"
        )
    return "\n".join(lines)
