"""Golden render: a fixed EDL over shared media must give a bit-exact, known MP4.

What it pins: the whole render path (seek, zscale BT.709, fps, exact lengths, fade dips,
global loudness gain, FIFO join, x264/AAC encode, MP4 mux). Threads are pinned to 1
(decoders, filter graphs, x264) and every bitexact flag is set, so the bytes depend only
on the EDL, the source and the FFmpeg/x264 build.

    .venv/bin/pytest -q tests/test_golden.py                      # check
    CLIPFORGE_BLESS=1 .venv/bin/pytest -q tests/test_golden.py    # re-bless on purpose

Re-blessing rewrites ``tests/golden/render.sha256`` and ``tests/golden/render.json``
(ffprobe facts: duration, frames, colour tags, plus the FFmpeg version that produced the
hash); review the diff before committing it. A different FFmpeg or libx264 build changes
the hash but should not change the facts: the facts are checked first, so a facts
failure means behaviour changed, a hash-only failure means bytes changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

from conftest import media

from clipforge.config import Settings
from clipforge.edl import Edl
from clipforge.probe import probe
from clipforge.render import render

GOLDEN = Path(__file__).resolve().parent / "golden"
HASH_FILE = GOLDEN / "render.sha256"
FACTS_FILE = GOLDEN / "render.json"
SOURCE = "talk_en_42s__auto-editor_example.mp4"
BLESS = os.environ.get("CLIPFORGE_BLESS", "") not in ("", "0")
BLESS_CMD = "CLIPFORGE_BLESS=1 .venv/bin/pytest -q tests/test_golden.py"

# fixed EDL: 3 segments, a cut and one 0.5 s fade (dip to black), 320x180 at 30 fps
SEGMENTS: list[dict[str, Any]] = [
    {"source_in": 2.0, "source_out": 4.0},
    {"source_in": 12.5, "source_out": 14.0, "transition_in": {"type": "cut", "duration": 0}},
    {"source_in": 30.0, "source_out": 32.0, "transition_in": {"type": "fade", "duration": 0.5}},
]
SETTINGS = dict(cpu_threads=1, video_preset="veryfast", video_crf=23, audio_bitrate="128k")


def _edl(info_path: str, duration: float) -> Edl:
    return Edl(
        source={"uri": Path(info_path).as_uri(), "sha256": "0" * 64, "duration": duration},
        prompt="golden",
        output={"width": 320, "height": 180, "fps": "30", "loudness_lufs": -14.0},
        highlights=[],
        segments=SEGMENTS,
    )


def _ffmpeg_version() -> str:
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def facts(path: Path) -> dict[str, Any]:
    """The output's explainable ffprobe facts (no decode except the frame count)."""
    argv = [
        "ffprobe", "-v", "error", "-count_frames", "-show_entries",
        "format=duration,format_name:stream=codec_type,codec_name,profile,width,height,"
        "pix_fmt,r_frame_rate,color_range,color_space,color_primaries,color_transfer,"
        "sample_aspect_ratio,nb_read_frames,sample_rate,channels,duration",
        "-of", "json", str(path),
    ]  # fmt: skip
    data = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
    v = next(s for s in data["streams"] if s["codec_type"] == "video")
    a = next(s for s in data["streams"] if s["codec_type"] == "audio")
    return {
        "format": data["format"]["format_name"],
        "duration_s": round(float(data["format"]["duration"]), 3),
        "video": {
            "codec": v["codec_name"],
            "profile": v.get("profile"),
            "size": f"{v['width']}x{v['height']}",
            "pix_fmt": v["pix_fmt"],
            "fps": v["r_frame_rate"],
            "sar": v.get("sample_aspect_ratio"),
            "frames": int(v["nb_read_frames"]),
            "duration_s": round(float(v["duration"]), 3),
            "color_range": v.get("color_range"),
            "color_space": v.get("color_space"),
            "color_primaries": v.get("color_primaries"),
            "color_transfer": v.get("color_transfer"),
        },
        "audio": {
            "codec": a["codec_name"],
            "sample_rate": int(a["sample_rate"]),
            "channels": int(a["channels"]),
            "frames": int(a["nb_read_frames"]),
        },
    }


def render_golden(out: Path) -> Path:
    """Render the fixed EDL to ``out`` (also used by hand to check stability)."""
    info = probe(media(SOURCE))
    render(_edl(info.path, info.duration_s), info, out, settings=Settings(**SETTINGS))
    return out


def test_golden_render(tmp_path: Path) -> None:
    out = render_golden(tmp_path / "golden.mp4")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    got = facts(out)
    version = _ffmpeg_version()
    if BLESS:
        GOLDEN.mkdir(exist_ok=True)
        HASH_FILE.write_text(f"{digest}  golden.mp4\n", encoding="utf-8")
        FACTS_FILE.write_text(
            json.dumps({"ffmpeg": version, "facts": got}, indent=2, sort_keys=True) + "\n",
            encoding="utf-8",
        )
        print(f"\nCLIPFORGE_BLESS: wrote {HASH_FILE} ({digest}) and {FACTS_FILE}")
        return
    assert HASH_FILE.exists(), f"no golden hash yet: create it with `{BLESS_CMD}`"
    want = json.loads(FACTS_FILE.read_text(encoding="utf-8"))
    inspect = (
        f"\nThe produced file is kept at {out}"
        f"\nInspect it: ffprobe -show_streams {out}; ffplay {out}"
        f"\nBlessed with: {want['ffmpeg']}\nThis run:     {version}"
        f"\nIf the change is intended, re-bless: {BLESS_CMD} (and review the diff of "
        "tests/golden/)."
    )
    assert got == want["facts"], (
        "golden render: the output's ffprobe facts changed (behaviour, not just bytes):\n"
        f"  expected {json.dumps(want['facts'], sort_keys=True)}\n"
        f"  got      {json.dumps(got, sort_keys=True)}" + inspect
    )
    expected = HASH_FILE.read_text(encoding="utf-8").split()[0]
    assert digest == expected, (
        f"golden render: sha256 {digest} != blessed {expected}; the facts still match, so "
        "the bytes differ (encoder settings, filter rounding or another FFmpeg/x264 "
        "build)." + inspect
    )


def test_golden_edl_is_what_the_facts_describe() -> None:
    """The fixed EDL's planned length matches the blessed duration (cheap, no render)."""
    want = json.loads(FACTS_FILE.read_text(encoding="utf-8"))["facts"]
    frames = sum(round(Fraction(s["source_out"] - s["source_in"]) * 30) for s in SEGMENTS)
    assert want["video"]["frames"] == frames
