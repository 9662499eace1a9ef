"""Editor hand-off: a real render, then its .otio and FCP7 XML read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from conftest import media

from clipforge import ffmpeg
from clipforge.config import Settings
from clipforge.edl import Edl, Reframe, Segment, Transition, edl_to_bytes, load_edl
from clipforge.errors import ClipforgeError, ExportError
from clipforge.export import FORMATS, CaptionCue, export_edl, to_otio, to_otio_document
from clipforge.export.fcp7 import xml_bytes
from clipforge.export.otio import CAPTIONS_TRACK, CueInput, otio_bytes
from clipforge.probe import MediaInfo, probe
from clipforge.render import measure_loudness, output_format_for, plan_segments, render

TALK = "talk_en_42s__auto-editor_example.mp4"
HOSTILE = "say \"hi\" <b> & {\\an8} 🎉 שלום עולם مرحبا 'x'"
REFRAME = {"aspect": "9:16", "layout": "track", "width": 202, "height": 360, "cropped": True,
           "shots": [{"start": 20.0, "end": 24.5, "layout": "track"}],
           "keyframes": [{"t": 20.0, "cx": 640.0, "cy": 360.0, "w": 404.0, "h": 720.0},
                         {"t": 22.5, "cx": 780.8, "cy": 360.0, "w": 404.0, "h": 720.0}],
           "split_keyframes": []}


def _edl(uri: str, info: MediaInfo, segments: list[Any], **over: Any) -> Edl:
    fps = output_format_for(info).fps
    base: dict[str, Any] = dict(
        source={"uri": uri, "sha256": "ab" * 32, "duration": info.duration_s},
        prompt=f"prompt {HOSTILE}",
        output={"width": 320, "height": 180, "fps": f"{fps.numerator}/{fps.denominator}",
                "loudness_lufs": -14.0},
        highlights=[
            {"rank": 1, "start": 20.5, "end": 25.0, "score": 0.8125, "text": HOSTILE,
             "evidence": {"keyword_density": 0.1, "audio_energy": 0.5}},
            {"rank": 2, "start": 3.2, "end": 7.5, "score": 0.5, "text": "second <one>",
             "evidence": {"keyword_density": 0.1, "audio_energy": 0.5}},
            {"rank": 3, "start": 38.0, "end": 40.0, "score": 0.1, "text": "not in the reel",
             "evidence": {"keyword_density": 0.0, "audio_energy": 0.5}},
        ],
        segments=segments,
    )  # fmt: skip
    base.update(over)
    return Edl(**base)


def _segments() -> list[Any]:
    return [
        {"source_in": 3.0, "source_out": 8.0},
        Segment(source_in=20.0, source_out=24.5, reframe=Reframe(**REFRAME),
                transition_in=Transition(type="crossfade", duration=0.5)),
        {"source_in": 30.0, "source_out": 33.0, "transition_in": {"type": "fade",
                                                                 "duration": 0.3}},
    ]


@pytest.fixture(scope="module")
def talk() -> MediaInfo:
    return probe(media(TALK))


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("export") / "it's \"a\" dir: v1"
    d.mkdir()
    return d


@pytest.fixture(scope="module")
def rendered(talk: MediaInfo, hostile_dir: Path) -> Iterator[tuple[Edl, Path]]:
    src = hostile_dir / "my talk: 'take 1'.mp4"
    src.symlink_to(media(TALK))
    info = probe(src)
    edl = _edl(src.as_uri(), info, _segments())
    out = hostile_dir / "highlights.mp4"
    # the stand-in reframe dict is export metadata only: the renderer applies a real
    # `Segment.reframe` (a `Reframe`), so render the same cuts without it
    plain = edl.model_copy(update={"segments": [Segment(**s.model_dump(exclude={"reframe"}))
                                                for s in edl.segments]})
    render(plain, info, out, settings=Settings(video_preset="ultrafast"),
           loudness=measure_loudness(info.path, info))
    yield edl, out


def _mp4_frames(path: Path) -> int:
    proc = ffmpeg.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                       "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0",
                       str(path)])  # fmt: skip
    return int(proc.stdout.decode().strip())


def _cut_list(track: otio.schema.Track) -> list[tuple[int, int]]:
    """(first source frame, frames shown) per clip, dissolve handles added back."""
    items = [it for it in track if not (isinstance(it, otio.schema.Gap)
                                        and it.duration().value == 0)]
    cuts = []
    for k, it in enumerate(items):
        if not isinstance(it, otio.schema.Clip):
            continue
        prev = items[k - 1] if k > 0 else None
        nxt = items[k + 1] if k + 1 < len(items) else None
        head = prev.in_offset.value if isinstance(prev, otio.schema.Transition) else 0
        tail = nxt.out_offset.value if isinstance(nxt, otio.schema.Transition) else 0
        # a dip to black uses no handles: its offsets on the clip's side are 0
        if isinstance(prev, otio.schema.Transition) and prev.in_offset.value and \
                prev.out_offset.value == 0:
            head = 0
        if isinstance(nxt, otio.schema.Transition) and nxt.out_offset.value and \
                nxt.in_offset.value == 0:
            tail = 0
        rng = it.source_range
        cuts.append((int(rng.start_time.value - head), int(rng.duration.value + head + tail)))
    return cuts


def _expected_cuts(edl: Edl) -> list[tuple[int, int]]:
    fps = Fraction(edl.output.fps)
    plans = plan_segments([Segment(**s.model_dump(exclude={"reframe"}))
                           for s in edl.segments], fps)
    return [(round(Fraction(s.source_in) * fps), p.frames)
            for s, p in zip(edl.segments, plans, strict=True)]


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary/AnyVector as plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str):
        return value
    if hasattr(value, "__iter__"):
        return [_plain(v) for v in value]
    return value


def _video(tl: otio.schema.Timeline) -> otio.schema.Track:
    return next(t for t in tl.tracks if t.kind == otio.schema.TrackKind.Video
                and t.name != CAPTIONS_TRACK)


# --------------------------------------------------------------------------- .otio


def test_otio_cut_list_and_duration_match_the_render(rendered: tuple[Edl, Path],
                                                     hostile_dir: Path) -> None:
    edl, mp4 = rendered
    path = export_edl(_write_edl(edl, hostile_dir), "otio")
    assert path == hostile_dir / "highlights.otio"
    back = otio.adapters.read_from_file(str(path))
    assert isinstance(back, otio.schema.Timeline)
    fps = Fraction(edl.output.fps)
    video = _video(back)
    assert _cut_list(video) == _expected_cuts(edl)
    assert [c[0] for c in _cut_list(video)] == [round(x * fps) for x in (3, 20, 30)]
    frames = _mp4_frames(mp4)
    assert back.duration().value == frames
    assert back.duration().rate == pytest.approx(float(fps))
    clip = video.find_clips()[0]
    assert clip.media_reference.target_url == edl.source.uri
    assert clip.media_reference.available_range.duration.value == \
        round(Fraction(edl.source.duration) * fps)
    trans = [it for it in video if isinstance(it, otio.schema.Transition)]
    xfade = round(Fraction(1, 2) * fps)
    dip = round(Fraction(3, 10) * fps)
    assert [(t.metadata["clipforge"]["type"], t.in_offset.value, t.out_offset.value)
            for t in trans] == [("crossfade", xfade // 2, xfade - xfade // 2),
                                ("fade", dip, 0), ("fade", 0, dip)]
    assert all(t.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve for t in trans)


def _write_edl(edl: Edl, folder: Path) -> Path:
    """The EDL as `clipforge run` writes it (the reframe path included)."""
    path = folder / "edl.json"
    path.write_bytes(edl_to_bytes(edl))
    assert json.loads(path.read_bytes())["segments"][1].get("reframe") == \
        (REFRAME if edl.segments[1].reframe is not None else None)
    return path


def test_markers_carry_highlights_and_hostile_text(rendered: tuple[Edl, Path]) -> None:
    edl, _ = rendered
    back = otio.adapters.read_from_string(otio_bytes(edl).decode(), "otio_json")
    clips = _video(back).find_clips()
    meta = {m.metadata["clipforge"]["rank"]: (k, m.metadata["clipforge"])
            for k, c in enumerate(clips) for m in c.markers}
    assert sorted(meta) == [1, 2]
    k1, m1 = meta[1]
    assert k1 == 1 and m1["text"] == HOSTILE and m1["score"] == 0.8125
    assert m1["prompt"] == edl.prompt and m1["clip_id"] is None
    assert meta[2][0] == 0 and meta[2][1]["text"] == "second <one>"
    assert list(back.metadata["clipforge"]["highlights_not_in_timeline"]) == [3]
    fps = Fraction(edl.output.fps)
    marker = next(m for m in clips[1].markers)
    assert marker.marked_range.start_time.value == round(Fraction(41, 2) * fps)
    assert marker.marked_range.end_time_exclusive().value <= \
        clips[1].source_range.end_time_exclusive().value


def test_reframe_path_is_a_clip_effect() -> None:
    info = probe(media(TALK))
    edl = _edl("file:///x.mp4", info, _segments())
    back = otio.adapters.read_from_string(otio_bytes(edl).decode(), "otio_json")
    effects = [c.effects for c in _video(back).find_clips()]
    assert [len(e) for e in effects] == [0, 1, 0]
    assert effects[1][0].effect_name == "clipforge.reframe"
    assert _plain(effects[1][0].metadata["clipforge"]["reframe"]) == REFRAME
    # the audio track carries no picture effects
    audio = next(t for t in back.tracks if t.kind == otio.schema.TrackKind.Audio)
    assert all(not c.effects for c in audio.find_clips())


def test_same_edl_same_bytes(rendered: tuple[Edl, Path], tmp_path: Path) -> None:
    edl, _ = rendered
    path = _write_edl(edl, tmp_path)
    a = export_edl(path, "otio", tmp_path / "a.otio").read_bytes()
    b = export_edl(path, "otio", tmp_path / "b.otio").read_bytes()
    assert a == b and a == otio_bytes(load_edl(path))
    assert otio_bytes(edl) == otio_bytes(edl) and xml_bytes(edl) == xml_bytes(edl)


def test_captions_are_markers_on_a_captions_track(rendered: tuple[Edl, Path]) -> None:
    edl, _ = rendered
    total = to_otio(edl).duration().value
    cues: list[CueInput] = [CaptionCue(0, 30, HOSTILE), (40, 25, "second line")]
    tl = to_otio(edl, cues)
    assert tl.duration().value == total
    track = next(t for t in tl.tracks if t.name == CAPTIONS_TRACK)
    assert [(m.marked_range.start_time.value, m.marked_range.duration.value,
             m.metadata["clipforge"]["caption"]) for m in track.markers] == \
        [(0, 30, HOSTILE), (40, 25, "second line")]
    with pytest.raises(ExportError, match="outside the reel"):
        to_otio(edl, [(int(total) - 5, 10, "late")])


# --------------------------------------------------------------------------- FCP7 XML


def test_fcp7_xml_round_trip(rendered: tuple[Edl, Path], hostile_dir: Path) -> None:
    edl, mp4 = rendered
    path = export_edl(_write_edl(edl, hostile_dir), "xml", hostile_dir / "cut: 'v1'.xml")
    back = otio.adapters.read_from_file(str(path), adapter_name="fcp_xml")
    assert isinstance(back, otio.schema.Timeline)
    assert _cut_list(_video(back)) == _expected_cuts(edl)
    assert back.duration().value == _mp4_frames(mp4)
    clips = _video(back).find_clips()
    assert clips[0].media_reference.target_url == edl.source.uri
    comments = [m.metadata["fcp_xml"]["comment"] for c in clips for m in c.markers]
    assert sorted(comments) == sorted([HOSTILE, "second <one>"])


def test_fcp7_xml_captions_become_sequence_markers(rendered: tuple[Edl, Path]) -> None:
    edl, _ = rendered
    back = otio.adapters.read_from_string(
        xml_bytes(edl, [(10, 20, HOSTILE)]).decode(), "fcp_xml")
    assert [(m.marked_range.start_time.value, m.metadata["fcp_xml"]["comment"])
            for m in back.tracks.markers] == [(10, HOSTILE)]
    assert all(t.name != CAPTIONS_TRACK for t in back.tracks)


# --------------------------------------------------------------------------- clips, errors


def test_clips_edl_gives_one_timeline_per_clip(talk: MediaInfo) -> None:
    edl = _edl("file:///x.mp4", talk, _segments(),
               clips=[{"rank": 1, "segment": 1}, {"rank": 2, "segment": 0}])
    doc = to_otio_document(edl, {1: [(0, 10, "one")]})
    assert isinstance(doc, otio.schema.SerializableCollection)
    names = [t.name for t in doc]
    assert names == ["clip_01", "clip_02"]
    fps = Fraction(edl.output.fps)
    # a lone crossfading segment fades in from black; it keeps all its frames
    assert [t.duration().value for t in doc] == [round(Fraction(9, 2) * fps), round(5 * fps)]
    assert [len([t for t in tl.tracks if t.name == CAPTIONS_TRACK]) for tl in doc] == [1, 0]
    back = otio.adapters.read_from_string(xml_bytes(edl).decode(), "fcp_xml")
    assert [t.duration().value for t in back] == [t.duration().value for t in doc]
    with pytest.raises(ExportError, match="clip_rank"):
        to_otio(edl)


def test_export_refuses_bad_input(tmp_path: Path, talk: MediaInfo) -> None:
    with pytest.raises(ExportError) as bad:
        export_edl(tmp_path / "edl.json", "mov")
    assert all(f in str(bad.value) for f in FORMATS) and isinstance(bad.value, ClipforgeError)
    missing = tmp_path / "no such edl.json"
    with pytest.raises(ExportError, match="no such edl.json"):
        export_edl(missing, "otio")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{\"version\": \"1\"}")
    with pytest.raises(ExportError, match="garbage.json: not a valid clipforge EDL"):
        export_edl(garbage, "xml")
    with pytest.raises(ExportError, match="FCPXML"):
        export_edl(garbage, "fcpxml")
    good = tmp_path / "edl.json"
    good.write_bytes(edl_to_bytes(_edl("file:///x.mp4", talk, [{"source_in": 1,
                                                               "source_out": 2}])))
    with pytest.raises(ExportError, match="output folder does not exist"):
        export_edl(good, "otio", tmp_path / "nope" / "x.otio")


def test_adapters_load_from_the_installed_manifest() -> None:
    names = {a.name for a in otio.plugins.ActiveManifest().adapters}
    assert {"otio_json", "fcp_xml"} <= names
