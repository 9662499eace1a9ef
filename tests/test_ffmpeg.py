"""The FFmpeg runner: argv resolution, typed errors, binary lookup."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import media

from clipforge import ffmpeg
from clipforge.errors import ConfigError, FfprobeError, RenderError


def test_resolve_argv_adds_nostdin_and_hide_banner() -> None:
    argv = ffmpeg.resolve_argv(["ffmpeg", "-i", "x.mp4", "-f", "null", "-"])
    assert Path(argv[0]).name == "ffmpeg" and Path(argv[0]).is_absolute()
    assert argv[1:3] == ["-nostdin", "-hide_banner"]
    assert argv[3:] == ["-i", "x.mp4", "-f", "null", "-"]


def test_resolve_argv_does_not_duplicate_flags() -> None:
    argv = ffmpeg.resolve_argv(["ffmpeg", "-nostdin", "-hide_banner", "-version"])
    assert argv.count("-nostdin") == 1 and argv.count("-hide_banner") == 1


def test_ffprobe_gets_no_nostdin() -> None:
    argv = ffmpeg.resolve_argv(["ffprobe", "-version"])
    assert "-nostdin" not in argv  # ffprobe rejects it
    assert "-hide_banner" in argv


def test_resolve_argv_rejects_other_tools() -> None:
    with pytest.raises(ValueError):
        ffmpeg.resolve_argv(["sh", "-c", "true"])
    with pytest.raises(ValueError):
        ffmpeg.resolve_argv([])


def test_missing_binary_says_to_install_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLIPFORGE_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent-bin-dir")
    with pytest.raises(ConfigError, match=r"apt-get install ffmpeg"):
        ffmpeg.binary("ffmpeg")


def test_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = shutil.which("ffprobe")
    assert real is not None
    link = tmp_path / "my-ffprobe"
    link.symlink_to(real)
    monkeypatch.setenv("CLIPFORGE_FFPROBE", str(link))
    assert ffmpeg.binary("ffprobe") == str(link)
    monkeypatch.setenv("CLIPFORGE_FFPROBE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="CLIPFORGE_FFPROBE"):
        ffmpeg.binary("ffprobe")


def test_run_failure_raises_render_error_with_stderr_tail(tmp_path: Path) -> None:
    missing = tmp_path / "missing.mp4"
    argv = ["ffmpeg", "-v", "error", "-i", str(missing), "-f", "null", "-"]
    with pytest.raises(RenderError) as info:
        ffmpeg.run(argv)
    err = info.value
    assert str(missing) in err.stderr_tail
    assert "No such file" in err.stderr_tail
    assert err.argv[-5:] == argv[-5:]
    assert "exited with status" in err.message


def test_run_timeout_raises_render_error() -> None:
    argv = ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "anullsrc", "-f", "null", "-"]
    with pytest.raises(RenderError, match="did not finish"):
        ffmpeg.run(argv, timeout=0.5)


def test_run_handles_awkward_paths_without_a_shell(tmp_path: Path) -> None:
    target = tmp_path / "it's $(odd) name; rm -rf.wav"
    ffmpeg.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.1", str(target)])
    assert target.exists()
    data = ffmpeg.ffprobe_json(target)
    assert data["streams"][0]["codec_type"] == "audio"


def test_ffprobe_json_reads_real_media() -> None:
    data = ffmpeg.ffprobe_json(media("talk_en_42s__auto-editor_example.mp4"))
    kinds = [s["codec_type"] for s in data["streams"]]
    assert kinds == ["video", "audio"]
    assert data["format"]["format_name"].startswith("mov")


def test_ffprobe_failure_is_ffprobe_error_not_render_error() -> None:
    with pytest.raises(FfprobeError) as info:
        ffmpeg.ffprobe_json(media("corrupt_nomoov__androidx-media_sample_malformed_free_box.mp4"))
    assert not isinstance(info.value, RenderError) and not info.value.timed_out
    assert info.value.argv[0].endswith("ffprobe") and "moov" in info.value.stderr_tail


def test_stderr_tail_keeps_last_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n\n"
    tail = ffmpeg.stderr_tail(text.encode(), lines=3)
    assert tail == "line 97\nline 98\nline 99"
    assert ffmpeg.stderr_tail(None) == ""
