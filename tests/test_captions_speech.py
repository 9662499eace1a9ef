"""Real speech: transcribe, cut two segments, render with burned captions, re-transcribe."""

from __future__ import annotations

import re
import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pysubs2
import pytest
from conftest import media

from clipforge import ffmpeg
from clipforge.audio import decode_mono_16k
from clipforge.captions import reel_words
from clipforge.captions.reeltime import frame_to_ms, reel_length, words_for_edl
from clipforge.captions.sidecar import write_sidecars
from clipforge.config import Settings
from clipforge.edl import Edl, EdlCaptions, EdlOutput, EdlSource, Segment
from clipforge.probe import probe
from clipforge.render import render
from clipforge.transcribe import Word, transcribe

JFK = "speech_en_11s__whisper_jfk.flac"


def _norm(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


def _cut_between(words: list[Word], k: int) -> float:
    """A cut in the pause between word k and k+1 (seconds)."""
    return (words[k].end_us + words[k + 1].start_us) / 2e6


@pytest.mark.slow
def test_rereading_the_captioned_reel_matches_the_srt(tmp_path: Path) -> None:
    path = media(JFK)
    info = probe(path)
    settings = Settings(video_preset="ultrafast")
    words = list(transcribe(decode_mono_16k(path), settings, source=str(path)).words)
    assert len(words) >= 15
    # two segments: the first third of the speech and its last half, skipping the middle
    n = len(words)
    a, b = n // 3, n // 2
    segs = [Segment(source_in=max(0.0, words[0].start_us / 1e6 - 0.3),
                    source_out=round(_cut_between(words, a), 3)),
            Segment(source_in=round(_cut_between(words, b), 3),
                    source_out=min(info.duration_s, words[-1].end_us / 1e6 + 0.4))]
    edl = Edl(
        source=EdlSource(uri=f"file://{path}", sha256="ab" * 32, duration=info.duration_s),
        prompt="jfk",
        output=EdlOutput(width=640, height=360, fps="25", loudness_lufs=-14.0),
        highlights=[], segments=segs, words=words_for_edl(words, segs),
        captions=EdlCaptions(mode="burn"),
    )
    fps = Fraction(edl.output.fps)
    reel = tmp_path / "reel.mp4"
    result = render(edl, info, reel, settings=settings)
    assert result.frames == reel_length(segs, fps)

    # the captions were burned by the joiner (captions.mode == "burn"): the same words
    rwords = reel_words(edl.words, segs, fps)
    captioned = reel
    grab = ffmpeg.run(["ffmpeg", "-v", "error", "-i", str(reel), "-vf",
                       f"select=eq(n\\,{rwords[0].start + 1})", "-frames:v", "1",
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).stdout
    rgb = np.frombuffer(grab, np.uint8).reshape(360, 640, 3).astype(int)
    lit = (rgb[..., 0] > 190) & (rgb[..., 1] > 160) & (rgb[..., 2] < 100)  # #FFD400
    assert lit.sum() > 20  # the first word is lit on its frame, over black
    srt, _ = write_sidecars(edl, fps, tmp_path)
    cues = pysubs2.load(str(srt))
    assert len(cues) >= 4

    again = list(transcribe(decode_mono_16k(captioned), settings).words)
    onsets = [w.start_us / 1000 for w in again]
    assert len(again) >= len(rwords) - 3
    cue_gaps = [min(abs(c.start - t) for t in onsets) for c in cues]
    assert statistics.median(cue_gaps) <= 100, cue_gaps
    # word by word: the same words, in order, start where the captions light them
    by_text: dict[str, list[float]] = {}
    for w in again:
        by_text.setdefault(_norm(w.text), []).append(w.start_us / 1000)
    word_gaps = [min(abs(frame_to_ms(r.start, fps) - t) for t in by_text[_norm(r.text)])
                 for r in rwords if _norm(r.text) in by_text]
    assert len(word_gaps) >= 0.8 * len(rwords)
    assert statistics.median(word_gaps) <= 100, word_gaps
    print(f"median gap: cues {statistics.median(cue_gaps):.0f} ms, "
          f"words {statistics.median(word_gaps):.0f} ms over {len(word_gaps)} words")
