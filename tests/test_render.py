"""The renderer: pure argv/filter builders, then real renders of shared media."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import media

from clipforge import ffmpeg
from clipforge.config import Settings
from clipforge.edl import Edl, Segment
from clipforge.errors import RenderError
from clipforge.probe import AudioInfo, MediaInfo, VideoInfo, probe
from clipforge.render import (
    Loudness,
    OutputFormat,
    RenderResult,
    concat_list,
    escape_concat_path,
    input_colour,
    join_argv,
    measure_loudness,
    output_format_for,
    parse_ebur128,
    part_argv,
    plan_parts,
    plan_segments,
    reel_gain,
    reel_loudness,
    render,
    seek_point,
    video_filter,
)

TALK = "talk_en_42s__auto-editor_example.mp4"
SMALL = (64, 36)


# --------------------------------------------------------------------------- helpers


def _video(**over: Any) -> VideoInfo:
    base: dict[str, Any] = dict(
        index=0, codec="h264", width=1280, height=720, display_width=1280,
        display_height=720, sar=Fraction(1), fps=Fraction(30), avg_fps=Fraction(30),
        vfr=False, rotation=0, pix_fmt="yuv420p", color_range=None, color_space=None,
        color_primaries=None, color_transfer=None, hdr=False,
    )  # fmt: skip
    base.update(over)
    return VideoInfo(**base)


def _info(video: VideoInfo | None = None, audio: bool = True) -> MediaInfo:
    return MediaInfo(
        path="/src/in.mp4",
        size=1,
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        duration_us=60_000_000,
        video=video,
        audio=AudioInfo(index=1, codec="aac", sample_rate=48000, channels=2) if audio else None,
    )


def _edl(info: MediaInfo, segments: list[dict[str, Any]], fmt: OutputFormat) -> Edl:
    return Edl(
        source={"uri": f"file://{info.path}", "sha256": "ab" * 32, "duration": info.duration_s},
        prompt="test",
        output={
            "width": fmt.width,
            "height": fmt.height,
            "fps": f"{fmt.fps.numerator}/{fmt.fps.denominator}",
            "loudness_lufs": -14.0,
            "true_peak_db": -1.0,
        },
        highlights=[],
        segments=segments,
    )


def _streams(path: Path) -> dict[str, dict[str, Any]]:
    data = ffmpeg.ffprobe_json(path)
    return {s["codec_type"]: s for s in data["streams"]}


def _assert_decodes(path: Path) -> None:
    ffmpeg.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"])


def _gray_frames(path: Path, first: int, last: int, size: tuple[int, int] = SMALL) -> np.ndarray:
    """Frames first..last (inclusive, decode order from 0) as float gray arrays."""
    w, h = size
    vf = f"select='between(n\\,{first}\\,{last})',scale={w}:{h},format=gray"
    proc = ffmpeg.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", vf,
         "-fps_mode", "passthrough", "-f", "rawvideo", "-"]
    )  # fmt: skip
    frames = np.frombuffer(proc.stdout, dtype=np.uint8).reshape(-1, h, w)
    assert len(frames) == last - first + 1
    return frames.astype(np.float64)


def _integrated_lufs(path: Path) -> float:
    proc = ffmpeg.run(
        ["ffmpeg", "-nostats", "-v", "info", "-i", str(path), "-map", "0:a:0",
         "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    )  # fmt: skip
    loud = parse_ebur128(proc.stderr.decode())
    assert loud is not None
    return loud.integrated_lufs


def _render_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("clipforge-render-*")}


# --------------------------------------------------------------------------- pure builders


def test_escape_concat_path_with_quote() -> None:
    assert escape_concat_path("/tmp/it's here.nut") == "'/tmp/it'\\''s here.nut'"


def test_concat_list_absolute_quoted_with_durations() -> None:
    text = concat_list(
        [(Path("/tmp/a b/seg0.nut"), Fraction(5)), (Path("/tmp/o'k/seg1.nut"), Fraction(1001, 300))]
    )
    assert text.splitlines() == [
        "ffconcat version 1.0",
        "file '/tmp/a b/seg0.nut'",
        "duration 5.000000000",
        "file '/tmp/o'\\''k/seg1.nut'",
        "duration 3.336666667",
    ]
    with pytest.raises(ValueError):
        concat_list([(Path("seg0.nut"), Fraction(1))])


def test_input_colour_defaults_and_tags() -> None:
    hd = input_colour(_video())
    assert (hd.range, hd.matrix, hd.primaries, hd.transfer, hd.assumed) == (
        "tv", "bt709", "bt709", "bt709", True,
    )  # fmt: skip
    sd = input_colour(_video(width=640, height=480))
    assert (sd.matrix, sd.primaries) == ("smpte170m", "smpte170m")
    bt601 = input_colour(
        _video(color_range="tv", color_space="smpte170m", color_primaries="smpte170m",
               color_transfer="bt709")
    )  # fmt: skip
    assert (bt601.matrix, bt601.primaries, bt601.assumed) == ("smpte170m", "smpte170m", False)
    full = input_colour(_video(width=320, height=240, pix_fmt="yuvj420p"))
    assert full.range == "pc"


def test_input_colour_rgb_source() -> None:
    rgb = input_colour(_video(width=320, height=240, pix_fmt="rgb24"))
    assert (rgb.range, rgb.matrix, rgb.primaries, rgb.transfer) == ("pc", "gbr", "bt709", "bt709")
    assert input_colour(_video(pix_fmt="pal8")).matrix == "gbr"


def _plan(frames: int = 30) -> Any:
    return plan_segments([Segment(source_in=1.0, source_out=1.0 + frames / 30)], Fraction(30))[0]


def test_video_filter_tags_untagged_then_converts_to_bt709() -> None:
    canvas = OutputFormat(1280, 720, Fraction(30))
    graph = video_filter(_video(width=640, height=480, display_width=640, display_height=480),
                         canvas, _plan(), src_label="0:0")  # fmt: skip
    setparams = graph.index(
        "setparams=range=tv:color_primaries=smpte170m:color_trc=bt709:colorspace=smpte170m"
    )
    zscale = graph.index("zscale=w=960:h=720:f=bicubic:p=bt709:t=bt709:m=bt709:r=tv")
    assert setparams < zscale  # tag first, then convert
    assert "pad=1280:720:(ow-iw)/2:(oh-ih)/2:black" in graph
    assert "setsar=1" in graph and "fps=30/1" in graph
    assert "tpad=stop=-1:stop_mode=clone,trim=end_frame=30" in graph


def test_video_filter_full_range_and_bt601() -> None:
    canvas = OutputFormat(320, 240, Fraction(60))
    full = _video(width=320, height=240, display_width=320, display_height=240,
                  pix_fmt="yuvj420p", color_range="pc", color_space="smpte170m",
                  color_primaries="bt709", color_transfer="bt470m")  # fmt: skip
    graph = video_filter(full, canvas, _plan(), src_label="0:0")
    assert "setparams=range=pc:color_primaries=bt709:color_trc=bt470m:colorspace=smpte170m" in graph
    assert "r=tv" in graph and "format=yuv420p" in graph


def test_video_filter_hdr_tonemaps() -> None:
    hdr = _video(pix_fmt="yuv420p10le", color_range="tv", color_space="bt2020nc",
                 color_primaries="bt2020", color_transfer="smpte2084", hdr=True)  # fmt: skip
    graph = video_filter(hdr, OutputFormat(1280, 720, Fraction(30)), _plan(), src_label="0:0")
    assert "zscale=t=linear:npl=100" in graph and "tonemap=tonemap=hable" in graph
    assert graph.index("tonemap") < graph.index("t=bt709:m=bt709:r=tv")


def test_video_filter_odd_size_is_cropped_even() -> None:
    odd = _video(width=720, height=405, display_width=720, display_height=405)
    graph = video_filter(odd, OutputFormat(720, 404, Fraction(25)), _plan(), src_label="0:0")
    assert graph.index("crop=floor(iw/2)*2") < graph.index("zscale")


def test_output_format_for() -> None:
    assert output_format_for(_info(_video())) == OutputFormat(1280, 720, Fraction(30))
    portrait = _video(width=3840, height=2160, display_width=2160, display_height=3840,
                      rotation=90, fps=Fraction(60))  # fmt: skip
    assert output_format_for(_info(portrait)) == OutputFormat(404, 720, Fraction(60))
    sar = _video(width=720, height=478, display_width=640, display_height=478,
                 fps=Fraction(30000, 1001))  # fmt: skip
    assert output_format_for(_info(sar)) == OutputFormat(640, 478, Fraction(30000, 1001))
    small = _video(width=321, height=241, display_width=321, display_height=241, fps=Fraction(120))
    assert output_format_for(_info(small)) == OutputFormat(320, 240, Fraction(30))  # no upscale
    assert output_format_for(_info(None)) == OutputFormat(1280, 720, Fraction(30))
    assert output_format_for(_info(None), 640, 360) == OutputFormat(640, 360, Fraction(30))


def test_plan_segments_cumulative_frames_and_samples() -> None:
    third = 1 / 3
    segs = [Segment(source_in=i, source_out=i + third) for i in range(3)]
    fps = Fraction(30000, 1001)
    plans = plan_segments(segs, fps)
    total = sum(p.frames for p in plans)
    assert total == round(Fraction(1) * fps)  # 30 frames, not 3 x round(9.99) = 30 by luck
    assert [p.frames for p in plans] == [10, 10, 10]
    assert sum(p.samples for p in plans) == round(Fraction(total) / fps * 48000)
    segs = [Segment(source_in=0, source_out=0.05 * (i + 1)) for i in range(7)]
    plans = plan_segments(segs, Fraction(30))
    exact = sum(0.05 * (i + 1) for i in range(7)) * 30
    assert abs(sum(p.frames for p in plans) - exact) <= 0.5


def test_plan_segments_fades_gain_and_refusals() -> None:
    segs = [
        Segment(source_in=0, source_out=2, gain_db=-3),
        Segment(source_in=5, source_out=7, transition_in={"type": "fade", "duration": 0.5}),
    ]
    first, second = plan_segments(segs, Fraction(30), global_gain=6.0)
    assert (first.fade_in_frames, first.fade_out_frames) == (0, 15)
    assert (second.fade_in_frames, second.fade_out_frames) == (15, 0)
    assert (first.fade_out_samples, second.fade_in_samples) == (24000, 24000)
    assert (first.gain_db, second.gain_db) == (3.0, 6.0)
    with pytest.raises(RenderError, match="too short for a crossfade"):
        plan_segments(
            [Segment(source_in=0, source_out=0.02),
             Segment(source_in=5, source_out=7,
                     transition_in={"type": "crossfade", "duration": 0.5})],
            Fraction(30),
        )  # fmt: skip
    with pytest.raises(RenderError, match="reserved"):
        plan_segments(
            [Segment(source_in=0, source_out=1, effects=[{"type": "crop"}])], Fraction(30)
        )
    with pytest.raises(RenderError, match="no segments"):
        plan_segments([], Fraction(30))


def test_parse_ebur128() -> None:
    text = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -21.9 LUFS
    Threshold: -32.2 LUFS

  Loudness range:
    LRA:         9.1 LU
    Threshold: -43.0 LUFS

  True peak:
    Peak:       -9.2 dBFS
"""
    assert parse_ebur128(text) == Loudness(-21.9, -9.2, 9.1, -32.2)
    silent = text.replace("-21.9 LUFS", "-70.0 LUFS").replace("-9.2 dBFS", "-inf dBFS")
    assert parse_ebur128(silent) is None
    with pytest.raises(ValueError):
        parse_ebur128("nothing here")


def test_plan_parts_groups_crossfades() -> None:
    xf = {"type": "crossfade", "duration": 0.5}
    segs = [
        Segment(source_in=0, source_out=2),
        Segment(source_in=5, source_out=7, transition_in=xf),
        Segment(source_in=9, source_out=10, transition_in=xf),
        Segment(source_in=20, source_out=21, transition_in={"type": "fade", "duration": 0.2}),
        Segment(source_in=30, source_out=31),
    ]
    parts = plan_parts(segs, Fraction(30))
    assert [len(p.segments) for p in parts] == [3, 1, 1]
    assert [p.frames for p in parts] == [60 + 60 + 30 - 15 - 15, 30, 30]
    assert [p.segments[1].xfade_frames for p in parts[:1]] == [15]
    assert parts[0].segments[2].xfade_samples == 24000
    assert sum(p.samples for p in parts) == round(
        Fraction(sum(p.frames for p in parts), 30) * 48000
    )
    assert parts[0].whole.fade_out_frames == 6 and parts[1].whole.fade_in_frames == 6


def test_part_argv_crossfade_graph() -> None:
    xf = {"type": "crossfade", "duration": 0.5}
    segs = [
        Segment(source_in=2, source_out=4),
        Segment(source_in=8, source_out=10, transition_in=xf),
    ]
    (part,) = plan_parts(segs, Fraction(30))
    argv = part_argv("/s.mp4", _info(_video()), OutputFormat(1280, 720, Fraction(30)), part,
                     "/t.nut", Settings())  # fmt: skip
    # half a source frame early (nearest frame), audio skips it again (800 samples)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-ss"] == ["1.983333", "7.983333"]
    assert "atrim=start_sample=800" in argv[argv.index("-filter_complex") + 1]
    graph = argv[argv.index("-filter_complex") + 1]
    assert "[v0][v1]xfade=transition=fade:duration=0.5:offset=1.5[x1]" in graph
    assert "[a0][a1]acrossfade=ns=24000:c1=tri:c2=tri[y1]" in graph
    assert "trim=end_frame=105" in graph and "atrim=end_sample=168000" in graph


def test_part_argv_near_the_start_decodes_from_zero_and_trims() -> None:
    (part,) = plan_parts([Segment(source_in=0.5, source_out=1.5)], Fraction(30))
    argv = part_argv("/s.flv", _info(_video()), OutputFormat(1280, 720, Fraction(30)), part,
                     "/t.nut", Settings())  # fmt: skip
    assert "-ss" not in argv  # FFmpeg 5.1 cannot seek near the start of some FLV files
    graph = argv[argv.index("-filter_complex") + 1]
    assert "trim=start=0.483333,setpts=PTS-STARTPTS" in graph
    assert "atrim=start_sample=24000" in graph


def test_part_argv_seeks_on_input_and_writes_raw_nut() -> None:
    info = _info(_video(color_range="tv", color_space="bt709", color_primaries="bt709",
                        color_transfer="bt709"))  # fmt: skip
    canvas = OutputFormat(1280, 720, Fraction(30))
    (plan,) = plan_parts([Segment(source_in=12.5, source_out=14.5)], Fraction(30), 7.9)
    argv = part_argv(info.path, info, canvas, plan, "/tmp/x/seg0.nut", Settings(cpu_threads=2))
    assert argv[argv.index("-ss") + 1] == "12.483333"
    assert argv.index("-ss") < argv.index("-i") and argv[argv.index("-i") + 1] == "/src/in.mp4"
    assert argv[argv.index("-c:v") + 1] == "rawvideo"
    assert argv[argv.index("-c:a") + 1] == "pcm_f32le"
    assert argv[-3:] == ["nut", "-y", "/tmp/x/seg0.nut"]
    assert argv[argv.index("-threads") + 1] == "2"
    graph = argv[argv.index("-filter_complex") + 1]
    assert "volume=7.90dB" in graph and "atrim=end_sample=96000" in graph
    assert "anullsrc" not in argv


def test_part_argv_fills_missing_streams() -> None:
    canvas = OutputFormat(1280, 720, Fraction(30))
    (plan,) = plan_parts([Segment(source_in=0, source_out=1)], Fraction(30))
    no_audio = part_argv("/s.mp4", _info(_video(), audio=False), canvas, plan, "/t.nut",
                            Settings())  # fmt: skip
    assert "anullsrc=r=48000:cl=stereo" in no_audio
    audio_only = part_argv("/s.flac", _info(None), canvas, plan, "/t.nut", Settings())
    assert any(a.startswith("color=c=black:s=1280x720:r=30/1") for a in audio_only)
    assert "[1:v]" in audio_only[audio_only.index("-filter_complex") + 1]


def test_join_argv_encodes_once_with_tags_and_determinism() -> None:
    argv = join_argv(Path("/t/list.ffconcat"), Path("/o/out.mp4"),
                     OutputFormat(1280, 720, Fraction(30)), Settings(cpu_threads=2))  # fmt: skip
    joined = " ".join(argv)
    assert "-f concat -safe 0 -i /t/list.ffconcat" in joined
    assert "-c:v libx264 -preset veryfast -crf 20 -pix_fmt yuv420p" in joined
    for flag in ("-color_primaries bt709", "-color_trc bt709", "-colorspace bt709",
                 "-color_range tv", "-map_metadata -1", "-fflags +bitexact", "-flags:v +bitexact",
                 "-flags:a +bitexact", "-movflags +faststart", "-threads 2",
                 "-c:a aac", "-ar 48000", "-ac 2", "-progress pipe:1"):  # fmt: skip
        assert flag in joined, flag


@pytest.fixture(autouse=True, scope="module")
def private_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Renders' temp dirs go to a folder of this module's own, so the leftover checks
    cannot see other processes' renders on the same machine."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.mktemp("render-tmp"))
    try:
        yield
    finally:
        tempfile.tempdir = saved


# --------------------------------------------------------------------------- real renders


@pytest.fixture(scope="module")
def talk() -> MediaInfo:
    return probe(media(TALK))


@pytest.fixture(scope="module")
def talk_render(
    talk: MediaInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RenderResult, Edl, list[float]]]:
    out = tmp_path_factory.mktemp("render") / "talk reel's.mp4"
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 3.0, "source_out": 8.0},
                      {"source_in": 20.0, "source_out": 26.5}], fmt)  # fmt: skip
    before = _render_dirs()
    seen: list[float] = []
    result = render(edl, talk, out, loudness=measure_loudness(talk.path, talk),
                    progress=seen.append)  # fmt: skip
    assert _render_dirs() == before  # temp dir with FIFOs removed
    yield result, edl, seen


def test_talk_render_decodes_and_lasts_exactly(
    talk_render: tuple[RenderResult, Edl, list[float]],
) -> None:
    result, edl, seen = talk_render
    assert result.path.exists() and result.used_fifo
    _assert_decodes(result.path)
    streams = _streams(result.path)
    v, a = streams["video"], streams["audio"]
    fps = Fraction(edl.output.fps)
    assert result.frames == 345 == int(v["nb_frames"])
    assert abs(float(v["duration"]) - edl.duration) <= float(1 / fps)
    assert abs(float(a["duration"]) - edl.duration) <= float(1 / fps)
    assert (v["codec_name"], v["pix_fmt"], v["width"], v["height"]) == (
        "h264",
        "yuv420p",
        1280,
        720,
    )
    assert (a["codec_name"], int(a["sample_rate"]), a["channels"]) == ("aac", 48000, 2)
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    assert seen == sorted(seen)


def test_talk_render_is_bt709_tagged(talk_render: tuple[RenderResult, Edl, list[float]]) -> None:
    v = _streams(talk_render[0].path)["video"]
    assert (v["color_primaries"], v["color_transfer"], v["color_space"], v["color_range"]) == (
        "bt709", "bt709", "bt709", "tv",
    )  # fmt: skip


def test_talk_render_cut_is_frame_accurate(
    talk: MediaInfo, talk_render: tuple[RenderResult, Edl, list[float]]
) -> None:
    """First frame of segment 2 (output frame 150) is source frame 600 (20.0 s at 30 fps)."""
    result = talk_render[0]
    out = _gray_frames(result.path, 150, 150)[0]
    src = _gray_frames(Path(talk.path), 596, 604)
    diffs = [float(np.abs(out - f).mean()) for f in src]
    best = int(np.argmin(diffs))
    assert best == 4, f"closest source frame is {596 + best}, diffs {diffs}"
    assert diffs[4] < 0.5 * min(diffs[3], diffs[5])
    # and the last frame of segment 1 is source frame 239 (8.0 s - one frame)
    last = _gray_frames(result.path, 149, 149)[0]
    src1 = _gray_frames(Path(talk.path), 237, 241)
    diffs1 = [float(np.abs(last - f).mean()) for f in src1]
    assert int(np.argmin(diffs1)) == 2, diffs1


def test_seek_point() -> None:
    assert seek_point(20.0, _video()) == Fraction(20) - Fraction(1, 60)
    assert seek_point(0.0, _video()) == 0
    assert seek_point(5.0, None) == 5


def test_cut_between_frames_takes_the_nearest_frame(talk: MediaInfo, tmp_path: Path) -> None:
    """source_in 20.01 s -> frame 600 (20.000 s); 30.025 s -> frame 901 (30.033 s)."""
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 20.01, "source_out": 20.5},
                      {"source_in": 30.025, "source_out": 30.5}], fmt)  # fmt: skip
    out = tmp_path / "nearest.mp4"
    render(edl, talk, out, settings=Settings(video_preset="ultrafast"),
           loudness=Loudness(-21.9, -9.2, 9.1, -32.2))  # fmt: skip
    got = _gray_frames(out, 0, 15)
    for out_index, src_index in ((0, 600), (15, 901)):
        src = _gray_frames(Path(talk.path), src_index - 2, src_index + 2)
        diffs = [float(np.abs(got[out_index] - f).mean()) for f in src]
        assert int(np.argmin(diffs)) == 2, (out_index, diffs)


def test_talk_render_loudness(talk_render: tuple[RenderResult, Edl, list[float]]) -> None:
    result, edl, _ = talk_render
    measured = measure_loudness(media(TALK), probe(media(TALK)))
    assert measured is not None
    reel = reel_loudness(measured, edl.segments)
    assert reel is not None
    assert result.gain_db == pytest.approx(-14.0 - reel[0], abs=0.05)
    assert abs(_integrated_lufs(result.path) - (-14.0)) <= 1.0


def test_reel_from_a_quiet_part_of_a_loud_source_lands_on_target(tmp_path: Path,
                                                                  public_episode: Path) -> None:
    """One measurement of the whole source; the gain is set for the kept segments."""
    info = probe(public_episode)
    measured = measure_loudness(public_episode, info)
    assert measured is not None and len(measured.frames) > 1000
    whole = reel_loudness(measured, [Segment(source_in=0.0, source_out=148.0)])
    assert whole is not None and whole[0] == pytest.approx(measured.integrated_lufs, abs=0.2)
    licence = [{"source_in": 117.0, "source_out": 125.0}, {"source_in": 130.0,
                                                          "source_out": 136.0}]
    edl = _edl(info, licence, output_format_for(info))
    gain, limit = reel_gain(measured, edl.segments, -14.0, -1.0)
    whole_gain = min(-14.0 - measured.integrated_lufs, -1.0 - measured.true_peak_db)
    assert gain > whole_gain + 3  # quieter part, more gain than the whole-source rule
    out = tmp_path / "licence.mp4"
    result = render(edl, info, out, loudness=measured)
    assert result.gain_db == gain
    assert abs(_integrated_lufs(out) - (-14.0)) <= 1.0
    assert limit is not None  # this reel needs the limiter to stay under -1 dBTP


def _quick_render(tmp_path: Path, name: str, seconds: float = 0.8) -> tuple[Path, MediaInfo]:
    info = probe(media(name))
    fmt = output_format_for(info)
    end = min(seconds, info.duration_s)
    edl = _edl(info, [{"source_in": 0.0, "source_out": end}], fmt)
    out = tmp_path / "out.mp4"
    result = render(edl, info, out)
    _assert_decodes(out)
    streams = _streams(out)
    v = streams["video"]
    assert (v["color_primaries"], v["color_transfer"], v["color_space"], v["color_range"]) == (
        "bt709", "bt709", "bt709", "tv",
    )  # fmt: skip
    assert (v["width"], v["height"]) == (fmt.width, fmt.height)
    assert abs(float(v["duration"]) - end) <= float(1 / fmt.fps) + 1e-6
    assert streams["audio"]["channels"] == 2
    assert result.frames == int(v["nb_frames"])
    return out, info


def test_render_bt601_source(tmp_path: Path) -> None:
    _quick_render(tmp_path, "bt601_talkinghead_1s__androidx-media_bt601.mov")


def test_render_full_range_source_is_limited_range(tmp_path: Path) -> None:
    out, _ = _quick_render(tmp_path, "fullrange_gamma22__androidx-media_sample_gamma2.2.mp4")
    luma = ffmpeg.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-vf", "extractplanes=y", "-f", "rawvideo", "-"]
    ).stdout
    y = np.frombuffer(luma, dtype=np.uint8)
    # limited range: the source's full-range 0..236 luma lands in 16..235 (the encoder
    # rings a few values past the edges, hence percentiles)
    assert np.percentile(y, 0.1) >= 15 and np.percentile(y, 99.9) <= 236


def test_render_audio_only_source_over_black(tmp_path: Path) -> None:
    out, info = _quick_render(tmp_path, "speech_en_11s__whisper_jfk.flac", seconds=2.0)
    assert not info.has_video
    assert _streams(out)["video"]["width"] == 1280


def test_render_no_audio_odd_size_source_gets_silence(tmp_path: Path) -> None:
    out, info = _quick_render(tmp_path, "mpeg2ps_noaudio__kivy_cityCC0.mpg", seconds=1.0)
    assert not info.has_audio and info.video is not None and info.video.height == 405
    assert _integrated_lufs_or_none(out) is None  # digital silence


def test_render_vfr_rotated_source_is_cfr(tmp_path: Path) -> None:
    out, info = _quick_render(tmp_path, "vfr_phone_rot180__moviepy_fire2.mp4", seconds=2.0)
    assert info.video is not None and info.video.vfr and info.video.rotation == 180
    proc = ffmpeg.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=duration",
         "-of", "csv=p=0", str(out)]
    )  # fmt: skip
    durations = {line for line in proc.stdout.decode().split() if line}
    assert len(durations) == 1  # constant frame rate


def _integrated_lufs_or_none(path: Path) -> float | None:
    proc = ffmpeg.run(
        ["ffmpeg", "-nostats", "-v", "info", "-i", str(path), "-map", "0:a:0",
         "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    )  # fmt: skip
    loud = parse_ebur128(proc.stderr.decode())
    return None if loud is None else loud.integrated_lufs


def test_render_fade_dips_to_black(talk: MediaInfo, tmp_path: Path) -> None:
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 3.0, "source_out": 4.0},
                      {"source_in": 20.0, "source_out": 21.0,
                       "transition_in": {"type": "fade", "duration": 0.3}}], fmt)  # fmt: skip
    out = tmp_path / "fade.mp4"
    render(edl, talk, out, settings=Settings(video_preset="ultrafast"))
    _assert_decodes(out)
    frames = _gray_frames(out, 0, 59)
    means = frames.mean(axis=(1, 2))
    assert means[29] < 25 and means[30] < 25  # both sides of the cut are black
    assert means[0] > 60 and means[59] > 60


def test_failed_render_cleans_up(talk: MediaInfo, tmp_path: Path) -> None:
    gone = tmp_path / "gone.mp4"
    broken = dataclasses.replace(talk, path=str(gone))
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 1.0, "source_out": 2.0},
                      {"source_in": 3.0, "source_out": 4.0}], fmt)  # fmt: skip
    out = tmp_path / "out.mp4"
    before = _render_dirs()
    with pytest.raises(RenderError) as raised:
        render(edl, broken, out, loudness=Loudness(-20, -6, 5, -30))
    err = raised.value
    assert "segment writer 0 failed" in err.message
    assert str(gone) in err.stderr_tail and "No such file" in err.stderr_tail
    assert err.argv and Path(err.argv[0]).name == "ffmpeg"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no partial output
    assert _render_dirs() == before  # FIFOs and temp dir removed
    leftovers = [
        p for p in Path(tempfile.gettempdir()).rglob("seg*.nut") if stat.S_ISFIFO(p.lstat().st_mode)
    ]
    assert leftovers == []


def test_failed_joiner_cleans_up(talk: MediaInfo, tmp_path: Path) -> None:
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 1.0, "source_out": 2.0}], fmt)
    out = tmp_path / "out.mp4"
    before = _render_dirs()
    with pytest.raises(RenderError) as raised:
        render(edl, talk, out, settings=Settings(video_preset="no-such-preset"),
               loudness=Loudness(-20, -6, 5, -30))  # fmt: skip
    assert re.search(r"joining FFmpeg failed|writer failed", raised.value.message)
    assert raised.value.stderr_tail
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert _render_dirs() == before


def test_render_crossfade(talk: MediaInfo, tmp_path: Path) -> None:
    fmt = output_format_for(talk)
    xf = {"type": "crossfade", "duration": 0.5}
    edl = _edl(talk, [{"source_in": 3.0, "source_out": 4.0},
                      {"source_in": 20.0, "source_out": 21.0, "transition_in": xf},
                      {"source_in": 30.0, "source_out": 31.0}], fmt)  # fmt: skip
    out = tmp_path / "xfade.mp4"
    result = render(edl, talk, out, settings=Settings(video_preset="ultrafast"),
                    loudness=Loudness(-21.9, -9.2, 9.1, -32.2))  # fmt: skip
    _assert_decodes(out)
    streams = _streams(out)
    assert result.frames == 75 == int(streams["video"]["nb_frames"])  # 90 - 15 overlap
    assert abs(float(streams["audio"]["duration"]) - 2.5) <= 1 / 30
    # frame 22 is in the middle of the crossfade: a blend of source frames 112 and 607
    mid = _gray_frames(out, 22, 22)[0]
    a = _gray_frames(Path(talk.path), 112, 112)[0]
    b = _gray_frames(Path(talk.path), 607, 607)[0]
    blend = np.abs(mid - (a + b) / 2).mean()
    assert blend < np.abs(mid - a).mean() and blend < np.abs(mid - b).mean()


def test_render_flv_near_the_start(tmp_path: Path) -> None:
    flv = tmp_path / "clip.flv"
    ffmpeg.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=3",
         "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-c:a", "aac", str(flv)]
    )  # fmt: skip
    info = probe(flv)
    fmt = output_format_for(info)
    edl = _edl(info, [{"source_in": 0.05, "source_out": 0.85},
                      {"source_in": 1.6, "source_out": 2.4}], fmt)  # fmt: skip
    out = tmp_path / "out.mp4"
    result = render(edl, info, out, settings=Settings(video_preset="ultrafast"))
    _assert_decodes(out)
    assert result.frames == 40 == int(_streams(out)["video"]["nb_frames"])
    assert abs(float(_streams(out)["audio"]["duration"]) - 1.6) <= 1 / 25


def test_render_is_deterministic(talk: MediaInfo, tmp_path: Path) -> None:
    fmt = output_format_for(talk)
    edl = _edl(talk, [{"source_in": 12.0, "source_out": 13.0}], fmt)
    settings = Settings(video_preset="ultrafast", cpu_threads=2)
    loud = Loudness(-21.9, -9.2, 9.1, -32.2)
    a = render(edl, talk, tmp_path / "a.mp4", settings=settings, loudness=loud)
    b = render(edl, talk, tmp_path / "b.mp4", settings=settings, loudness=loud)
    assert a.path.read_bytes() == b.path.read_bytes()


def test_full_disk_names_the_folder_not_the_follow_on_error(talk: MediaInfo,
                                                            tmp_path: Path) -> None:
    """A 100 kB tmpfs as the output folder: the error says "no space left on device" in
    that folder, the partial output and the temp dir are removed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(full)], check=True)
    try:
        fmt = output_format_for(talk)
        edl = _edl(talk, [{"source_in": 1.0, "source_out": 9.0}], fmt)
        out = full / "reel.mp4"
        before = _render_dirs()
        with pytest.raises(RenderError) as raised:
            render(edl, talk, out, loudness=Loudness(-20, -6, 5, -30))
        message = raised.value.one_line()
        assert message.startswith(f"no space left on device in {full}"), message
        assert "ffprobe" not in message and "Invalid data" not in message
        assert list(full.iterdir()) == []  # no partial output left behind
        assert _render_dirs() == before
    finally:
        subprocess.run(["umount", str(full)], check=True)


def test_spans_loudness_matches_the_whole_source_log_and_the_reel(tmp_path: Path,
                                                                  public_episode: Path) -> None:
    """Pass 1 over just the kept spans (input-seeked, joined) gives the loudness the
    whole-source frame log gives for them, and a render without a measurement uses it."""
    from clipforge.render import loudness_spans, measure_spans_loudness, spans_loudness_argv

    info = probe(public_episode)
    licence = [{"source_in": 117.0, "source_out": 125.0}, {"source_in": 130.0,
                                                          "source_out": 136.0}]
    edl = _edl(info, licence, output_format_for(info))
    spans = loudness_spans(edl)
    assert spans == [(117.0, 125.0), (130.0, 136.0)]
    argv = spans_loudness_argv(public_episode, info, spans)
    assert argv.count("-i") == 2 and argv[argv.index("-ss") + 1] == "117.000000"
    measured = measure_spans_loudness(public_episode, info, spans)
    assert measured is not None and measured.frames == ()
    whole = measure_loudness(public_episode, info)
    assert whole is not None
    from_log = reel_loudness(whole, edl.segments)
    assert from_log is not None
    assert measured.integrated_lufs == pytest.approx(from_log[0], abs=0.5)
    assert measured.true_peak_db == pytest.approx(from_log[1], abs=0.5)
    assert measured.integrated_lufs < whole.integrated_lufs - 3  # a quiet part, measured apart
    result = render(edl, info, tmp_path / "spans.mp4")  # pass 1 made by the render itself
    gain, _ = reel_gain(measured, edl.segments, -14.0, -1.0)
    assert result.gain_db == gain
    assert abs(_integrated_lufs(tmp_path / "spans.mp4") - (-14.0)) <= 1.0
    with pytest.raises(ValueError):
        spans_loudness_argv(public_episode, info, [(5.0, 2.0)])
