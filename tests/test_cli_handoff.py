"""`clipforge export` and the hand-off files of `clipforge run`, end to end (issue 12).

One real vertical `clipforge run` (real services, real speech model, real render), then
`clipforge export EDL --format ...` from its edl.json: every file reads back with the
library an editor's tool would use, and matches what the run itself wrote.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio
import pysubs2
import pytest
from conftest import cli_environment, clipforge

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
JFK = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def cli_env(service_urls, clipforge_home, tmp_path_factory) -> dict[str, str]:
    return cli_environment(service_urls, clipforge_home, tmp_path_factory.mktemp("prefect"))


@pytest.fixture(scope="module")
def run_dir(cli_env, public_episode, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vertical")
    p = clipforge(cli_env, "run", str(public_episode), "--prompt", JFK, "--aspect", "9:16",
                  "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def _video_track(tl: otio.schema.Timeline) -> otio.schema.Track:
    return next(t for t in tl.tracks if t.kind == otio.schema.TrackKind.Video
                and t.find_clips())


def test_run_folder_holds_the_handoff_beside_the_edl(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {"edl.json", "highlights.mp4", "highlights.otio", "highlights.xml",
            "highlights.srt", "highlights.vtt"} <= names, names
    doc = json.loads((run_dir / "edl.json").read_text())
    assert doc["output"]["height"] > doc["output"]["width"]  # 9:16
    assert doc["words"] and doc["captions"]["mode"] == "burn"  # vertical: burned + sidecars


@pytest.mark.parametrize("fmt", ["otio", "xml"])
def test_export_timeline_reads_back_with_the_cut_list(run_dir: Path, cli_env, tmp_path,
                                                      fmt: str) -> None:
    out = tmp_path / f"again.{fmt}"
    p = clipforge(cli_env, "export", str(run_dir / "edl.json"), "--format", fmt,
                  "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out)
    # the same EDL gives the same bytes as the file the run wrote
    assert out.read_bytes() == (run_dir / f"highlights.{fmt}").read_bytes()
    tl = otio.adapters.read_from_file(str(out), adapter_name="otio_json" if fmt == "otio"
                                      else "fcp_xml")
    assert isinstance(tl, otio.schema.Timeline)
    doc = json.loads((run_dir / "edl.json").read_text())
    fps = Fraction(doc["output"]["fps"])
    clips = _video_track(tl).find_clips()
    assert len(clips) == len(doc["segments"])
    for clip, seg in zip(clips, doc["segments"], strict=True):
        rng = clip.source_range
        assert rng.start_time.rate == pytest.approx(float(fps))
        assert abs(rng.start_time.value - float(Fraction(seg["source_in"]) * fps)) <= 1
        assert abs(rng.duration.value
                   - float(Fraction(seg["source_out"] - seg["source_in"]) * fps)) <= 1
    if fmt == "otio":
        assert "country" in tl.to_json_string().lower()  # marker / caption text


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_export_captions_read_back(run_dir: Path, cli_env, tmp_path, fmt: str) -> None:
    out = tmp_path / f"again.{fmt}"
    p = clipforge(cli_env, "export", str(run_dir / "edl.json"), "--format", fmt,
                  "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == (run_dir / f"highlights.{fmt}").read_bytes()
    subs = pysubs2.load(str(out))
    assert len(subs) >= 2
    assert "country" in " ".join(e.plaintext for e in subs).lower()
    doc = json.loads((run_dir / "edl.json").read_text())
    reel_ms = sum(s["source_out"] - s["source_in"] for s in doc["segments"]) * 1000
    assert all(0 <= a.start < a.end for a in subs)
    assert all(a.end <= b.start for a, b in zip(subs, subs[1:], strict=False))
    assert subs[-1].end <= reel_ms + 1


def test_export_fcpxml_is_refused_with_one_line(run_dir: Path, cli_env, tmp_path) -> None:
    out = tmp_path / "x.fcpxml"
    p = clipforge(cli_env, "export", str(run_dir / "edl.json"), "--format", "fcpxml",
                  "--out", str(out))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clipforge: ") and "FCPXML" in lines[0]
    assert not out.exists()


def test_export_unknown_format_exits_2(run_dir: Path, cli_env) -> None:
    p = clipforge(cli_env, "export", str(run_dir / "edl.json"), "--format", "aaf")
    assert p.returncode == 2 and "aaf" in p.stderr


def test_export_missing_edl_exits_2_naming_it(cli_env, tmp_path) -> None:
    missing = tmp_path / "no such" / "edl.json"
    for fmt in ("otio", "srt"):
        p = clipforge(cli_env, "export", str(missing), "--format", fmt)
        assert p.returncode == 2, (fmt, p.stderr)
        assert str(missing) in p.stderr and "internal error" not in p.stderr
