"""clipforge.visual: faces, motion and scene cuts on a grid, on real media; the optional
image-text scorer on a tiny random CLIP built from a config (nothing is downloaded)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO, media

from clipforge.errors import ConfigError, CorruptInputError
from clipforge.imagetext import ImageTextScorer, image_text_scores
from clipforge.visual import (
    CUT_MERGE_US,
    VisualTrack,
    _cell_series,
    _cut_times,
    _flag_cuts,
    _video_stream,
    visual_track,
)

SCENES = "noaudio_real_720p2997__pyscenedetect_testvideo.mp4"
TALKING_HEAD = "bt601_talkinghead_1s__androidx-media_bt601.mov"
BLACK_6MIN = "silent_black_6min__androidx-media_long_1080p_lowbitrate.mp4"
TALK_42S = "talk_en_42s__auto-editor_example.mp4"
AUDIO_ONLY = "speech_en_11s__whisper_jfk.flac"


def _duration_us(path: Path) -> int:
    with av.open(str(path)) as container:
        return int(container.duration or 0)


@pytest.fixture(scope="module")
def scenes() -> tuple[VisualTrack, int]:
    path = media(SCENES)
    duration = _duration_us(path)
    return visual_track(str(path), duration_us=duration), duration


# ------------------------------------------------------------------ real media


def test_scene_video_has_cuts_motion_and_covers_duration(scenes: tuple[VisualTrack, int]) -> None:
    track, duration = scenes
    # 4 key frames in 24 s (median gap 5 s): the long-GOP fallback is chosen by itself.
    assert track.method == "sampled"
    assert len(track.faces) == len(track.motion) == -(-duration // track.hop_us)
    assert len(track.faces) * track.hop_us >= duration
    assert len(track.scene_cuts) >= 2
    assert list(track.scene_cuts) == sorted(track.scene_cuts)
    assert all(0 <= t < duration for t in track.scene_cuts)
    # The hard cut from black to the leaf shot (~1 s) and from the leaf to black (~6 s).
    assert any(500_000 <= t <= 1_500_000 for t in track.scene_cuts)
    assert any(5_500_000 <= t <= 6_600_000 for t in track.scene_cuts)
    assert max(track.motion) > 0.2
    assert all(0.0 <= v <= 1.0 for v in track.motion + track.faces)
    # ~2 analysed frames per second, strictly increasing.
    times = track.frame_times_us
    assert 40 <= len(times) <= 52
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert track.cuts_between(0, duration) == len(track.scene_cuts)
    assert 0.0 <= track.score_between(0, duration) <= 1.0


def test_same_file_gives_identical_track(scenes: tuple[VisualTrack, int]) -> None:
    track, duration = scenes
    again = visual_track(str(media(SCENES)), duration_us=duration)
    assert again == track
    assert hash(again) == hash(track)
    assert VisualTrack.from_json(json.loads(json.dumps(track.to_json()))) == track


def test_talking_head_has_a_face() -> None:
    path = media(TALKING_HEAD)
    seen: list[float] = []
    track = visual_track(str(path), duration_us=_duration_us(path), progress=seen.append)
    assert max(track.faces) > 0.0
    assert track.score_between(0, 1_000_000) >= 0.5 * max(track.faces[:1])
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_black_six_minutes_is_empty_of_interest_and_fast() -> None:
    path = media(BLACK_6MIN)
    duration = _duration_us(path)
    start = time.perf_counter()
    track = visual_track(str(path), duration_us=duration)
    elapsed = time.perf_counter() - start
    print(f"\n6-min black 1080p: {track.method}, {len(track.frame_times_us)} frames, "
          f"{elapsed:.1f} s, {duration / 1e6 / elapsed:.0f}x realtime")
    assert len(track.faces) == -(-duration // 1_000_000)
    assert max(track.faces) == 0.0
    assert max(track.motion) < 0.05
    assert track.scene_cuts == ()
    assert track.score_between(0, duration) < 0.05
    assert elapsed < 120  # generous: a loaded 2-core machine; the report has the real number


def test_audio_only_file_gives_an_empty_track() -> None:
    track = visual_track(str(media(AUDIO_ONLY)), duration_us=11_000_000)
    assert track.faces == track.motion == ()
    assert track.scene_cuts == track.frame_times_us == ()
    assert not track.has_video
    assert track.score_between(0, 11_000_000) == 0.0
    assert track.cuts_between(0, 11_000_000) == 0


def test_cover_art_is_not_video() -> None:
    from types import SimpleNamespace

    from av.stream import Disposition

    art = SimpleNamespace(disposition=Disposition.attached_pic | Disposition.default)
    real = SimpleNamespace(disposition=Disposition.default)
    assert _video_stream(SimpleNamespace(streams=SimpleNamespace(video=[art]))) is None
    assert _video_stream(SimpleNamespace(streams=SimpleNamespace(video=[art, real]))) is real


def test_keyframes_by_default_and_forced_sampled_decode() -> None:
    path = media(TALK_42S)
    duration = _duration_us(path)
    keyframes = visual_track(str(path), duration_us=duration)
    assert keyframes.method == "keyframes"  # key frame every 2 s
    assert 15 <= len(keyframes.frame_times_us) <= 25
    sampled = visual_track(str(path), duration_us=duration, method="sampled")
    assert sampled.method == "sampled"
    gaps = np.diff(np.asarray(sampled.frame_times_us))
    assert 75 <= len(sampled.frame_times_us) <= 90
    assert gaps.min() > 0 and gaps.max() <= 600_000
    assert len(sampled.faces) == len(keyframes.faces) == -(-duration // 1_000_000)
    # Green screen with a burnt-in timecode: the motion floor keeps it near still.
    assert max(sampled.motion) < 0.5


def test_forced_keyframes_on_a_long_gop_file(scenes: tuple[VisualTrack, int]) -> None:
    _, duration = scenes
    track = visual_track(str(media(SCENES)), duration_us=duration, method="keyframes")
    assert track.method == "keyframes"
    assert len(track.frame_times_us) == 4
    assert len(track.faces) == -(-duration // 1_000_000)


def test_unreadable_file_raises_and_damaged_packets_are_skipped() -> None:
    with pytest.raises(CorruptInputError, match="corrupt_nomoov"):
        visual_track(str(media("corrupt_nomoov__androidx-media_sample_malformed_free_box.mp4")),
                     duration_us=1_000_000)
    track = visual_track(str(media("corrupt_h264__decord_corrupted.mp4")), duration_us=5_000_000)
    assert len(track.faces) == 5
    assert track.undecodable_packets > 0  # counted, not silently dropped
    again = VisualTrack.from_json(json.loads(json.dumps(track.to_json())))
    assert again == track and again.undecodable_packets == track.undecodable_packets
    clean = visual_track(str(media(SCENES)), duration_us=2_000_000)
    assert clean.undecodable_packets == 0


# ------------------------------------------------------------------ pure helpers


def test_score_and_cuts_between_use_the_grid() -> None:
    track = VisualTrack(hop_us=1_000_000, faces=(0.0, 1.0, 0.0, 0.0), motion=(0.2, 0.4, 0.6, 0.0),
                        scene_cuts=(1_000_000, 2_500_000), frame_times_us=(0, 1_000_000),
                        method="sampled")
    assert track.score_between(0, 2_000_000) == pytest.approx(0.5 * 0.5 + 0.5 * 0.3)
    # a face in one of four cells counts for its share, not for the whole range
    assert track.score_between(0, 4_000_000) == pytest.approx(0.5 * 0.25 + 0.5 * 0.3)
    assert track.score_between(1_000_000, 2_000_000) == pytest.approx(0.5 * 1.0 + 0.5 * 0.4)
    assert track.score_between(2_000_000, 3_000_000) == pytest.approx(0.3)
    assert track.score_between(5_000_000, 6_000_000) == 0.0
    assert track.score_between(2_000_000, 2_000_000) == 0.0
    assert track.cuts_between(0, 4_000_000) == 2
    assert track.cuts_between(1_000_000, 2_000_000) == 0  # a cut at the start is not inside
    assert track.image_text_between(0, 1_000_000, np.ones(4)) == 0.0


def test_cell_series_fills_forward_and_backward() -> None:
    times, values = [0, 2_500_000], [1.0, 0.5]
    assert _cell_series(4, 1_000_000, times, values, max, "forward") == [1.0, 1.0, 0.5, 0.5]
    assert _cell_series(4, 1_000_000, times, values, max, "backward") == [1.0, 0.5, 0.5, 0.5]
    assert _cell_series(2, 1_000_000, [], [], max, "forward") == [0.0, 0.0]


def test_a_fade_through_black_is_one_cut() -> None:
    dists = [0.0, 0.0, 0.9, 0.8, 0.0, 0.0, 0.0, 0.0, 0.5]
    times = [i * 500_000 for i in range(len(dists) + 1)]
    flags = _flag_cuts(dists)
    assert flags == [False, False, True, True, False, False, False, False, True]
    assert _cut_times(flags, times) == [1_500_000, 4_500_000]
    assert CUT_MERGE_US == 1_000_000
    # A distance that stays high (a long pan) is no jump.
    assert _flag_cuts([0.5] * 10)[5:] == [False] * 5


# ------------------------------------------------------------------ image-text scoring


def _tiny_config():
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 32, "pad_token_id": 0, "eos_token_id": 1,
                     "bos_token_id": 3},
        vision_config={"image_size": 32, "patch_size": 8, "hidden_size": 32,
                       "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2},
        projection_dim=16,
    )


@pytest.fixture(scope="module")
def tiny_scorer() -> ImageTextScorer:
    return ImageTextScorer.from_config(_tiny_config(), seed=0)


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8) for _ in range(3)]


def test_tiny_model_embeds_normalised_and_deterministic(tiny_scorer: ImageTextScorer) -> None:
    images = tiny_scorer.embed_images(_frames())
    assert images.shape == (3, 16) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    text = tiny_scorer.embed_text("a person talking to the camera")
    assert text.shape == (16,)
    assert float(np.linalg.norm(text)) == pytest.approx(1.0, abs=1e-5)
    scores = image_text_scores(images, text)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(tiny_scorer.embed_images(_frames()), images)
    np.testing.assert_array_equal(tiny_scorer.embed_text("a person talking to the camera"), text)
    assert tiny_scorer.embed_images([]).shape == (0, 16)
    same = ImageTextScorer.from_config(_tiny_config(), seed=0)
    np.testing.assert_array_equal(same.embed_images(_frames()), images)


def test_tiny_model_save_and_reload(tiny_scorer: ImageTextScorer, tmp_path: Path) -> None:
    tiny_scorer.save_pretrained(tmp_path / "tiny-clip")
    loaded = ImageTextScorer.from_pretrained(tmp_path / "tiny-clip")
    np.testing.assert_allclose(loaded.embed_images(_frames()), tiny_scorer.embed_images(_frames()),
                               atol=1e-5)
    np.testing.assert_allclose(loaded.embed_text("deer in the woods"),
                               tiny_scorer.embed_text("deer in the woods"), atol=1e-5)


def test_missing_or_invalid_model_dir_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match="no-such-model") as err:
        ImageTextScorer.from_pretrained(missing)
    assert "save_pretrained" in err.value.message
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="broken"):
        ImageTextScorer.from_pretrained(broken)


def test_cosine_maps_to_unit_interval() -> None:
    emb = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(image_text_scores(emb, np.array([3.0, 0.0])), [1.0, 0.0, 0.5])
    assert image_text_scores(np.zeros((0, 2)), np.array([1.0, 0.0])).shape == (0,)


def test_track_stores_image_embeddings(tiny_scorer: ImageTextScorer) -> None:
    path = media(TALKING_HEAD)
    track = visual_track(str(path), duration_us=_duration_us(path), image_embedder=tiny_scorer)
    emb = track.image_embeddings
    assert emb is not None and emb.shape == (len(track.frame_times_us), 16)
    text = tiny_scorer.embed_text("a face")
    assert 0.0 <= track.image_text_between(0, 1_000_000, text) <= 1.0
    assert track == visual_track(str(path), duration_us=_duration_us(path),
                                 image_embedder=tiny_scorer)
    assert track != visual_track(str(path), duration_us=_duration_us(path))


def test_import_does_not_load_torch_or_transformers() -> None:
    code = ("import sys, clipforge.visual; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_one_decode_gives_faces_and_frame_accurate_cuts() -> None:
    """Reframing asked: the visual pass's decode also yields the camera's faces, and the
    scene cuts it reports are the per-frame ones (the key-frame pass finds 1 of 3)."""
    path = media("face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4")
    track = visual_track(str(path), duration_us=10_000_000, faces_fps=5)
    ft = track.face_track
    assert ft is not None and track.method == "sampled"
    assert ft.cuts_us == track.scene_cuts
    for expected in (1.5, 3.6, 7.9):
        assert min(abs(expected - c / 1e6) for c in track.scene_cuts) < 0.1
    assert len(ft.times_us) >= 45  # >= ~5 fps
    assert sum(1 for bs in ft.boxes if bs) >= 10
    assert (ft.width, ft.height) == (640, 360)
    again = VisualTrack.from_json(json.loads(json.dumps(track.to_json())))
    assert again == track and again.face_track == ft
    assert visual_track(str(path), duration_us=10_000_000).face_track is None
