"""Captions: reel-time mapping, ASS events burned by real libass, SRT/VTT sidecars, fonts."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from clipforge import ffmpeg
from clipforge.captions import (
    FontMissingError,
    ReelWord,
    caption_filter,
    check_font,
    clip_sidecars,
    load_style,
    reel_words,
    words_for_edl,
    write_ass,
    write_sidecars,
)
from clipforge.captions.ass import escape_ass_text, word_states
from clipforge.captions.reeltime import reel_frames, reel_length
from clipforge.captions.sidecar import _plain
from clipforge.edl import (
    Edl,
    EdlCaptions,
    EdlOutput,
    EdlSource,
    EdlWord,
    Segment,
    Transition,
    edl_to_bytes,
)
from clipforge.transcribe import Word

FPS = Fraction(25)
HOSTILE = "odd/dir 'q\" a:b, [c] ;d \\e"


def _w(start: float, end: float, text: str) -> Word:
    return Word(round(start * 1e6), round(end * 1e6), text, 0.9)


def _segs(transition: str = "cut") -> list[Segment]:
    tr = Transition(type="crossfade", duration=0.4) if transition != "cut" else Transition()
    return [Segment(source_in=1.0, source_out=3.0),
            Segment(source_in=5.0, source_out=7.0, transition_in=tr)]


def _edl(segments: list[Segment], words: list[EdlWord], w: int = 640, h: int = 360) -> Edl:
    return Edl(
        source=EdlSource(uri="file:///src.mp4", sha256="ab" * 32, duration=60.0),
        prompt="t",
        output=EdlOutput(width=w, height=h, fps="25", loudness_lufs=-14.0),
        highlights=[], segments=segments, words=words,
        captions=EdlCaptions(mode="burn", style="default"),
    )


# --------------------------------------------------------------------------- reel time


def test_straddling_words_are_trimmed_outside_words_dropped_cut() -> None:
    words = [_w(0.2, 0.8, "before"), _w(2.5, 3.3, "straddles"), _w(3.5, 4.0, "gap"),
             _w(4.9, 5.4, "enters"), _w(5.5, 5.8, "inside")]
    got = reel_words(words, _segs("cut"), FPS)
    # seg 0: frames 0-50 (source 1.0-3.0); seg 1 starts at frame 50 (source 5.0)
    assert [(r.start, r.end, r.text) for r in got] == [
        (38, 50, "straddles"), (50, 60, "enters"), (62, 70, "inside")]


def test_crossfade_overlap_is_subtracted_and_split_at_its_middle() -> None:
    words = [_w(2.5, 3.3, "straddles"), _w(4.9, 5.4, "enters"), _w(5.5, 5.8, "inside")]
    spans = reel_frames(_segs("crossfade"), FPS)
    assert spans == [(0, 50), (40, 50)]  # 0.4 s = 10 frames of overlap
    assert reel_length(_segs("crossfade"), FPS) == 90
    got = reel_words(words, _segs("crossfade"), FPS)
    assert [(r.start, r.end, r.text) for r in got] == [
        (38, 45, "straddles"), (45, 50, "enters"), (52, 60, "inside")]


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(30000, 1001), Fraction(60)])
def test_mapping_is_robust_to_word_times_moving_by_40ms(fps: Fraction) -> None:
    base = [_w(1.05 + 0.31 * k, 1.05 + 0.31 * k + 0.22, f"w{k}") for k in range(18)]
    segs = [Segment(source_in=1.0, source_out=3.1),
            Segment(source_in=3.6, source_out=6.9,
                    transition_in=Transition(type="crossfade", duration=0.3))]
    end = reel_length(segs, fps)
    for shift in (-0.04, 0.0, 0.04):
        moved = [_w(w.start_us / 1e6 + shift, w.end_us / 1e6 + shift, w.text) for w in base]
        got = reel_words(moved, segs, fps)
        assert all(0 <= r.start < r.end <= end for r in got)
        assert all(a.end <= b.start for a, b in zip(got, got[1:], strict=False))
        ref = {r.text: r for r in reel_words(base, segs, fps)}
        # words away from the cuts move by the shift, rounded to whole frames
        step = round(Fraction(shift) * fps)
        for r in got:
            if r.text in ref and r.text not in {"w0", "w6", "w7", "w8", "w17"}:
                assert abs(r.start - ref[r.text].start - step) <= 1


def test_words_for_edl_keeps_overlapping_words_in_source_seconds() -> None:
    words = [_w(0.2, 0.8, "out"), _w(2.9, 3.2, "edge"), _w(5.1234567, 5.5, "in")]
    got = words_for_edl(words, _segs())
    assert [(w.start, w.end, w.text) for w in got] == [(2.9, 3.2, "edge"), (5.123457, 5.5, "in")]


def test_old_edls_stay_valid_and_words_round_trip() -> None:
    edl = _edl(_segs(), [EdlWord(start=1.5, end=1.9, text="{hi}")])
    old = json.loads(edl_to_bytes(edl))
    del old["words"], old["captions"]
    assert Edl.model_validate(old).words == [] and Edl.model_validate(old).captions is None
    again = Edl.model_validate_json(edl_to_bytes(edl))
    assert again == edl and again.captions is not None and again.captions.mode == "burn"


# --------------------------------------------------------------------------- ASS + libass


def _burn(ass: Path, w: int, h: int, frames: int, fontsdir: Path | None = None) -> np.ndarray:
    """The captions burned over a known background, decoded as RGB frames (no encode)."""
    proc = ffmpeg.run([
        "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
        "-i", f"color=c=0x203040:s={w}x{h}:r=25", "-vf", caption_filter(ass, fontsdir),
        "-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-",
    ], timeout=120)  # fmt: skip
    return np.frombuffer(proc.stdout, np.uint8).reshape(frames, h, w, 3)


def _lit(frames: np.ndarray) -> np.ndarray:
    """Pixels in the highlight colour (#FFD400)."""
    r, g, b = (frames[..., i].astype(int) for i in range(3))
    return (r > 200) & (g > 170) & (g < 240) & (b < 90)


def _text_pixels(frames: np.ndarray) -> np.ndarray:
    return frames.astype(int).sum(axis=-1) > 600  # white fill of the caption


def test_first_highlighted_frame_of_each_word_is_its_remapped_start(tmp_path: Path) -> None:
    words = [_w(1.2, 1.5, "Ask"), _w(1.5, 1.7, "not"), _w(1.75, 2.3, "what."),
             _w(2.5, 2.9, "your"), _w(5.2, 5.6, "country"), _w(5.6, 6.1, "can")]
    segs = _segs("crossfade")
    reel = reel_words(words, segs, FPS)
    style = load_style("default", 640, 360)
    end = reel_length(segs, FPS)
    ass = write_ass(tmp_path / "c.ass", reel, FPS, style, end)
    lit = _lit(_burn(ass, 640, 360, end))
    counts = lit.sum(axis=(1, 2))
    # a new word state starts where the lit mask changes (or appears)
    changes = []
    for f in range(end):
        if counts[f] > 20 and (f == 0 or counts[f - 1] <= 20 or
                               (lit[f] ^ lit[f - 1]).sum() > 0.3 * counts[f]):
            changes.append(f)
    expected = [r.start for r in reel]
    assert len(changes) == len(expected), (changes, expected)
    assert all(abs(c - e) <= 1 for c, e in zip(changes, expected, strict=True)), (changes,
                                                                                  expected)
    # highlight is the spoken word only (not cumulative): the lit area stays word-sized
    assert lit.any(axis=(1, 2)).sum() > 0 and counts.max() < 0.02 * 640 * 360


def test_states_are_contiguous_within_a_group_and_never_overlap() -> None:
    words = [ReelWord(10, 15, "one", 0), ReelWord(17, 20, "two", 0), ReelWord(21, 30, "three,", 0),
             ReelWord(60, 70, "four", 0), ReelWord(70, 80, "five", 1)]
    style = load_style("default", 640, 360)
    states = word_states(words, style, FPS, 85)
    assert [(s.start, s.end, s.lit) for s in states] == [
        (10, 17, 0), (17, 21, 1), (21, 37, 2), (60, 70, 0), (70, 85, 0)]


def test_hostile_text_renders_literally_in_hostile_folders(tmp_path: Path) -> None:
    out = tmp_path / HOSTILE
    out.mkdir(parents=True)
    texts = ["{\\an8}top?", "a{b}c\\N", "\\h\\", "line\nbreak", "😀🎉", "مرحبا", "שלום",
             "{\\fs200\\c&H0000FF&}"]
    words = [ReelWord(5 + 8 * k, 12 + 8 * k, t, 0) for k, t in enumerate(texts)]
    style = load_style("default", 640, 360)
    ass = write_ass(out / "it's: [x], y.ass", words, FPS, style, 80)
    doc = ass.read_text(encoding="utf-8")
    assert "{\\an8}" not in doc and "\\{\\\u2060an8\\}" in doc
    frames = _burn(ass, 640, 360, 80, fontsdir=out)
    text = _text_pixels(frames) | _lit(frames)
    for k in range(len(texts)):
        shown = text[6 + 8 * k]
        assert shown.sum() > 30, texts[k]  # something is drawn for every word
        rows = np.nonzero(shown.any(axis=1))[0]
        assert rows.min() > 360 // 2, texts[k]  # bottom-aligned: the tags had no effect
        assert rows.max() - rows.min() < 120, texts[k]  # \fs200 did not apply either


def test_vertical_captions_stay_inside_safe_margins(tmp_path: Path) -> None:
    w, h = 360, 640
    style = load_style("default", w, h)
    assert style.max_chars < load_style("default", 640, 360).max_chars
    words = [ReelWord(0, 10, "Extraordinarily", 0), ReelWord(10, 20, "long", 0),
             ReelWord(20, 30, "captions", 0)]
    ass = write_ass(tmp_path / "v.ass", words, FPS, style, 30)
    frames = _burn(ass, w, h, 30)
    drawn = (_text_pixels(frames) | _lit(frames)).any(axis=0)
    ys, xs = np.nonzero(drawn)
    assert xs.min() >= style.margin_l * 0.5 and xs.max() <= w - style.margin_r * 0.5
    assert ys.max() <= h - style.margin_v


def test_missing_font_is_a_typed_error_naming_it() -> None:
    assert "Inter" in check_font("Inter", True)
    with pytest.raises(FontMissingError) as err:
        check_font("NoSuchFontFamilyXyz", True)
    assert "NoSuchFontFamilyXyz" in str(err.value) and err.value.substitute
    assert err.value.code == "font_missing"


# --------------------------------------------------------------------------- sidecars


def test_sidecar_cues_are_monotonic_inside_the_reel_and_round_trip(tmp_path: Path) -> None:
    raw = [_w(1.0 + 0.27 * k, 1.0 + 0.27 * k + 0.2, t) for k, t in enumerate(
        "So {\\an8} we <b>go & then, the a\\Nb tests run. again and then more".split())]
    segs = [Segment(source_in=1.1, source_out=2.9),
            Segment(source_in=3.2, source_out=4.6,
                    transition_in=Transition(type="crossfade", duration=0.2))]
    edl = _edl(segs, words_for_edl(raw, segs))
    out = tmp_path / HOSTILE
    out.mkdir(parents=True)
    paths = write_sidecars(edl, FPS, out)
    assert [p.name for p in paths] == ["highlights.srt", "highlights.vtt"]
    end_ms = reel_length(segs, FPS) * 40
    for p in paths:
        subs = pysubs2.load(str(p))
        assert len(subs) >= 4
        assert all(e.start < e.end for e in subs)
        assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))
        assert subs[-1].end <= end_ms
        assert all(len(e.plaintext.split()) <= 3 for e in subs)
    srt = paths[0].read_text(encoding="utf-8")
    assert "{\\an8}" in srt and "<b>go" in srt
    vtt = paths[1].read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT") and "&lt;b&gt;go &amp;" in vtt


def test_clip_sidecars_start_at_zero_per_clip(tmp_path: Path) -> None:
    raw = [_w(1.2, 1.6, "first"), _w(5.3, 5.7, "second")]
    data = _edl(_segs(), words_for_edl(raw, _segs())).model_dump()
    edl = Edl.model_validate({**data, "clips": [{"rank": 1, "segment": 1},
                                                {"rank": 2, "segment": 0}]})
    paths = clip_sidecars(edl, FPS, tmp_path)
    assert [p.name for p in paths] == ["clip_01.srt", "clip_01.vtt", "clip_02.srt",
                                       "clip_02.vtt"]
    one = pysubs2.load(str(paths[0]))
    assert [(e.start, e.text) for e in one] == [(280, "second")]
    two = pysubs2.load(str(paths[2]))
    assert [(e.start, e.text) for e in two] == [(200, "first")]


def test_escape_ass_text() -> None:
    assert escape_ass_text("{\\an8}x") == "\\{\\\u2060an8\\}x"
    assert escape_ass_text("a\nb\r\nc\td") == "a b c d"
    assert _plain("a\\Nb <i>&", vtt=False) == "a\\\u2060Nb <i>&"
    assert _plain("x --> y <i>&", vtt=True) == "x -&gt; y &lt;i&gt;&amp;"
