"""The development set's composer and the cut-quality metrics, on real recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import MEDIA, media

from clipforge.audio import decode_mono_16k
from clipforge.episodes import EpisodeError, compose
from clipforge.evaluate import cut_excess_db, cut_quality, distinct_cuts, summary_with_cuts

REPO = Path(__file__).resolve().parents[1]


def _manifest(tmp: Path, parts: list[dict], cases: list[dict]) -> Path:
    path = tmp / "m.json"
    path.write_text(json.dumps({"name": "tiny", "media": str(MEDIA), "parts": parts,
                                "cases": cases}))
    return path


def test_compose_is_deterministic_and_truth_comes_from_the_parts(tmp_path: Path) -> None:
    media("speech_en_11s__whisper_jfk.flac")
    parts: list[dict[str, Any]] = [
        {"label": "jfk", "src": "speech_en_11s__whisper_jfk.flac", "start": 0, "end": 2.4,
         "video": "noaudio_real_720p2997__pyscenedetect_testvideo.mp4",
         "noise": {"src": "music_nospeech_30s__moviepy_big_buck_bunny_0_30.webm",
                   "gain_db": -6}},
        {"gap": 1},
        {"label": "h", "src": "face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4",
         "start": 9, "end": 10},
        {"label": "q", "src": "pkg:amfm_decompy/sample.wav", "start": 0, "end": 0.89,
         "video": "noaudio_real_720p2997__pyscenedetect_testvideo.mp4", "pan": "left"},
    ]
    m = _manifest(tmp_path, parts, [{"id": "c", "prompt": "p", "part": "q",
                                     "within": [0.1, 0.5]}])
    a = compose(m, tmp_path / "a")
    compose(m, tmp_path / "b")
    truth = json.loads(a.read_text())
    assert truth["parts"] == {"jfk": [0.0, 2.4], "h": [3.4, 4.4], "q": [4.4, 5.28]}
    assert truth["cases"][0]["expected"] == [4.5, 4.9]
    assert (tmp_path / "a" / "tiny.mp4").read_bytes() == (tmp_path / "b" / "tiny.mp4").read_bytes()
    import subprocess

    durations = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=duration", "-of", "csv=p=0",
         str(tmp_path / "a" / "tiny.mp4")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(abs(float(d) - 5.28) < 0.03 for d in durations), durations  # audio = video
    pcm = decode_mono_16k(tmp_path / "a" / "tiny.mp4")
    assert abs(len(pcm) / 16000 - 5.28) < 0.03
    # The music is mixed under the speech: the first part is never digitally silent,
    # the gap is.
    assert np.sqrt(np.mean(pcm[: 16000 * 2] ** 2)) > 1e-3
    assert np.max(np.abs(pcm[int(16000 * 2.6): int(16000 * 3.2)])) < 1e-3
    assert truth["speech_audio"] == "tiny.speech.flac"
    assert (tmp_path / "a" / "tiny.speech.flac").read_bytes() == \
        (tmp_path / "b" / "tiny.speech.flac").read_bytes()


def test_the_speech_track_is_the_timeline_without_its_noise(tmp_path: Path) -> None:
    """For the evaluation's independent word pass: the episode's speech with the music
    left out where it was mixed in, the same audio elsewhere, on the same timeline."""
    parts: list[dict[str, Any]] = [
        {"label": "jfk", "src": "speech_en_11s__whisper_jfk.flac", "start": 0, "end": 2.4,
         "video": "noaudio_real_720p2997__pyscenedetect_testvideo.mp4",
         "noise": {"src": "music_nospeech_30s__moviepy_big_buck_bunny_0_30.webm",
                   "gain_db": 0, "start": 20}},
        {"gap": 1},
        {"label": "h", "src": "face_stage_cuts_10s__face_recognition_short_hamilton_clip.mp4",
         "start": 9, "end": 10},
    ]
    truth = json.loads(compose(_manifest(tmp_path, parts, []), tmp_path / "a").read_text())
    mix = decode_mono_16k(tmp_path / "a" / truth["video"])
    speech = decode_mono_16k(tmp_path / "a" / truth["speech_audio"])
    assert abs(len(speech) - len(mix)) < 0.03 * 16000

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))

    noisy, clean = slice(800, int(2.3 * 16000)), slice(int(3.5 * 16000), int(4.3 * 16000))
    jfk = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))[noisy]
    # Under the first part the mix differs from the speech track by the music (several
    # times the AAC coding error seen where nothing was mixed in)...
    assert rms(mix[noisy] - speech[noisy]) > 4 * rms(mix[clean] - speech[clean])
    # ... and the speech track there is the recording itself, sample for sample.
    assert rms(speech[noisy] - jfk) < 0.05 * rms(jfk)
    assert rms(speech[clean]) > 0.05


def test_missing_package_resource_is_a_typed_error(tmp_path: Path) -> None:
    m = _manifest(tmp_path, [{"label": "x", "src": "pkg:no_such_module_xyz/a.wav",
                              "start": 0, "end": 1}], [])
    with pytest.raises(EpisodeError, match="no_such_module_xyz"):
        compose(m, tmp_path / "out")


def test_cut_excess_is_zero_in_a_pause_and_large_inside_speech() -> None:
    speech = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    # Real speech with 0.4 s of digital silence spliced in after 3 s.
    samples = np.concatenate([speech[: 3 * 16000], np.zeros(6400, np.float32),
                              speech[3 * 16000:]])
    assert cut_excess_db(samples, 3.2) == 0.0  # in the pause
    # Loudest 20 ms of speech within 1 s after the pause: far above the pause nearby.
    frames = samples[int(3.4 * 16000): int(4.4 * 16000)].reshape(-1, 320)
    loud = 3.4 + (int(np.argmax((frames ** 2).mean(axis=1))) * 320 + 160) / 16000
    assert loud - 3.4 > 0.0
    edl = {"segments": [{"source_in": 3.2, "source_out": loud},
                        {"source_in": loud, "source_out": 9.0}]}
    assert distinct_cuts(edl) == sorted({3.2, round(loud, 3), 9.0})
    q = cut_quality(edl, samples, [(loud - 0.05, loud + 0.05)])
    assert q.cuts == 3 and q.inside_words_independent == 1
    assert q.excess_db[0] == 0.0
    if loud - 3.4 < 0.25:  # the pause lies within the +-250 ms search
        assert q.excess_db[1] > 30.0
    assert q.worst_db == max(q.excess_db)


def test_summary_names_precision_and_counts_quiet_cuts() -> None:
    from clipforge.evaluate import CaseScore, CutQuality

    s = CaseScore("a", "p", (0.0, 10.0), (5.0, 15.0), "t", True, True, 0.5, 2, 0)
    out = summary_with_cuts([s], [CutQuality(2, 1, 12.0, (0.0, 12.0), 1)])
    assert out["mean_precision"] == 0.5
    assert out["cuts_quiet"] == 1 and out["cuts_distinct"] == 2
    assert out["cuts_quiet_share"] == 0.5 and out["cuts_inside_words_independent"] == 1


def test_reel_segments_from_another_part_are_counted_as_padding() -> None:
    """Parts 0-40 s and 40-80 s; the expected span lies in the second. Of a reel of 50-60,
    62-70 and 30-38 s (a moment of the first recording), 18 of 26 s lie in the expected
    part and one segment is off it; a segment half in counts as on."""
    from clipforge.evaluate import score_case, summary

    case = {"id": "c", "prompt": "p", "expected": [50.0, 60.0]}
    segs = [(50.0, 60.0), (62.0, 70.0), (30.0, 38.0)]
    edl = {"highlights": [{"start": 50.0, "end": 60.0, "text": "t"}],
           "segments": [{"source_in": a, "source_out": b} for a, b in segs]}
    s = score_case(case, edl, [], parts=[[0.0, 40.0], [40.0, 80.0]])
    assert s.segments == 3 and s.off_part_segments == 1
    assert s.reel_on_part == round(18 / 26, 4)
    half = score_case(case, {**edl, "segments": [{"source_in": 36.0, "source_out": 44.0}]},
                      [], parts=[[0.0, 40.0], [40.0, 80.0]])
    assert half.off_part_segments == 0 and half.reel_on_part == 0.5
    # without parts the expected span itself is the reference
    alone = score_case(case, edl, [])
    assert alone.off_part_segments == 2
    assert summary([s, half])["off_part_segments"] == 1
    assert summary([s, half])["segments"] == 4


@pytest.mark.parametrize("name", ["noisy.json", "speakers.json", "paraphrase.json"])
def test_shipped_manifests_resolve(name: str) -> None:
    from clipforge.episodes import resolve_source

    path = REPO / "eval" / name
    manifest = json.loads(path.read_text())
    parts = [p for p in manifest["parts"] if "src" in p]
    for p in parts:
        for key in ("src", "video"):
            if key in p:
                assert resolve_source(p[key], MEDIA, path).is_file()
    labels = {p["label"] for p in parts}
    assert all(c["part"] in labels for c in manifest["cases"])


def test_cuts_in_silence_are_told_apart_from_audible_ones() -> None:
    """A cut flagged by the independent pass (or loud by the relative measure) is also
    counted as 'in silence' when its own level is 50 dB under the source's speech level:
    then nothing audible is clipped and no word can be there. In speech it is not."""
    speech = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    samples = np.concatenate([speech[: 3 * 16000], np.zeros(6400, np.float32),
                              speech[3 * 16000:]])
    frames = samples[int(3.4 * 16000): int(4.4 * 16000)].reshape(-1, 320)
    loud = 3.4 + (int(np.argmax((frames ** 2).mean(axis=1))) * 320 + 160) / 16000
    edl = {"segments": [{"source_in": 3.2, "source_out": loud}]}
    words = [(3.1, 3.3), (loud - 0.05, loud + 0.05)]  # both cuts "inside a word"
    q = cut_quality(edl, samples, words)
    assert q.inside_words_independent == 2
    assert q.inside_words_in_silence == 1  # the one in the spliced digital silence
    assert q.level_db[0] == -100.0 and q.level_db[1] > -40.0
    assert q.loud_in_silence == 0
    out = summary_with_cuts([], [q])
    assert out["cuts_inside_words_in_silence"] == 1 and out["cuts_loud_in_silence"] == 0


def test_eval_checks_cuts_against_words_a_second_acoustic_model_aligned(tmp_path: Path) -> None:
    """`clipforge eval`'s independent word pass: a Whisper transcription configured unlike
    the pipeline's, force-aligned by PocketSphinx, cached per video and method. A cut in
    the middle of an aligned word counts; a cut in the speaker's long pause does not."""
    from clipforge.evaluate import INDEPENDENT_METHOD, CaseScore, cut_quality_for

    jfk = media("speech_en_11s__whisper_jfk.flac")
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps({"video": str(jfk), "cases": []}))
    out = tmp_path / "out"
    (out / "c").mkdir(parents=True)
    edl = out / "c" / "edl.json"
    edl.write_text(json.dumps({"segments": [{"source_in": 0.0, "source_out": 1.0}]}))
    score = CaseScore("c", "p", (0.0, 1.0), None, "", False, False, 0.0, 0, 0)
    quality, info = cut_quality_for(str(truth), str(out), [score])
    assert info["method"] == INDEPENDENT_METHOD and info["unaligned_segments"] == 0
    cache = json.loads((out / "independent_words.json").read_text())
    words = [tuple(w) for w in cache["words"]]
    assert len(words) >= 20  # the 22 words of the sentence, less any the speech model drops
    pause = max(zip(words, words[1:], strict=False), key=lambda p: p[1][0] - p[0][1])
    assert pause[1][0] - pause[0][1] > 0.4
    longest = max(words, key=lambda w: w[1] - w[0])
    in_word, in_pause = (longest[0] + longest[1]) / 2, (pause[0][1] + pause[1][0]) / 2
    edl.write_text(json.dumps({"segments": [{"source_in": in_pause, "source_out": in_word}]}))
    quality, _ = cut_quality_for(str(truth), str(out), [score])
    assert quality[0].cuts == 2 and quality[0].inside_words_independent == 1
    # The cache is read back for the same video and method (one word over everything:
    # both cuts inside it) and recomputed when the method differs.
    cache_file = out / "independent_words.json"
    cache_file.write_text(json.dumps({**cache, "words": [[0.0, 11.0]]}))
    assert cut_quality_for(str(truth), str(out), [score])[0][0].inside_words_independent == 2
    cache_file.write_text(json.dumps({**cache, "method": "older", "words": [[0.0, 11.0]]}))
    assert cut_quality_for(str(truth), str(out), [score])[0][0].inside_words_independent == 1
    assert json.loads(cache_file.read_text()) == cache


def test_a_missing_speech_track_is_a_typed_error_naming_it(tmp_path: Path) -> None:
    from clipforge.evaluate import reference_audio

    truth = {"video": "e.mp4", "speech_audio": "e.speech.flac"}
    with pytest.raises(EpisodeError, match=r"e\.speech\.flac is missing; compose"):
        reference_audio(tmp_path / "t.json", truth)
    assert reference_audio(tmp_path / "t.json", {"video": "e.mp4"}) == \
        (tmp_path / "e.mp4").resolve()
