"""Real decode (PyAV), real faster-whisper model, real librosa on shared media."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import media

from clipforge.analysis import analyse_audio, quiet_cut
from clipforge.audio import SAMPLE_RATE, decode_mono_16k, energy_track, stream_mono_16k
from clipforge.config import Settings
from clipforge.errors import ConfigError
from clipforge.signals import AudioAccumulator, audio_signals
from clipforge.transcribe import load_model, transcribe

JFK = "speech_en_11s__whisper_jfk.flac"


def test_decode_is_16k_mono_and_streams_in_bounded_blocks() -> None:
    path = media(JFK)
    samples = decode_mono_16k(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size / SAMPLE_RATE - 11.0) < 0.05
    blocks = list(stream_mono_16k(path, block_s=2.0))
    assert len(blocks) >= 5 and max(b.size for b in blocks) < 3 * SAMPLE_RATE
    assert np.array_equal(np.concatenate(blocks), samples)


def test_video_without_audio_decodes_to_nothing() -> None:
    assert decode_mono_16k(media("noaudio_real_720p2997__pyscenedetect_testvideo.mp4")).size == 0


def test_energy_is_normalised_and_silence_is_zero() -> None:
    speech = energy_track(decode_mono_16k(media(JFK)))
    assert 0.0 <= min(speech.values) and max(speech.values) <= 1.0
    assert max(speech.values) == 1.0 and speech.mean_between(0, 11_000_000) > 0.2
    silence = energy_track(np.zeros(SAMPLE_RATE * 5, dtype=np.float32))
    assert set(silence.values) == {0.0}


def test_signals_do_not_depend_on_how_the_audio_was_cut_into_blocks() -> None:
    samples = decode_mono_16k(media(JFK))
    whole = audio_signals(samples)
    acc = AudioAccumulator()
    for b0 in range(0, samples.size, 70_001):  # odd block sizes: carried over in seconds
        acc.feed(samples[b0 : b0 + 70_001])
    fed = acc.finish()
    assert fed.energy == whole.energy
    assert len(fed.bursts) == len(whole.bursts) == len(whole.energy.values)
    assert max(whole.bursts) == 1.0 and max(whole.pitch_var) > 0


def test_pieces_are_cut_at_the_quietest_moment() -> None:
    rng = np.random.default_rng(0)
    loud = rng.uniform(-0.5, 0.5, SAMPLE_RATE * 20).astype(np.float32)
    loud[12 * SAMPLE_RATE : 12 * SAMPLE_RATE + SAMPLE_RATE // 2] = 0.0  # a pause at 12 s
    cut = quiet_cut(loud, 10 * SAMPLE_RATE, 5 * SAMPLE_RATE)
    assert 12 * SAMPLE_RATE <= cut <= 12 * SAMPLE_RATE + SAMPLE_RATE // 2


@pytest.mark.slow
def test_transcribes_jfk_with_word_timestamps() -> None:
    samples = decode_mono_16k(media(JFK))
    tr = transcribe(samples, Settings())
    text = tr.text.lower()
    assert "ask not what your country can do for you" in text.replace(",", "")
    starts = [w.start_us for w in tr.words]
    assert starts == sorted(starts)
    assert all(w.end_us > w.start_us for w in tr.words)
    assert tr.words[-1].end_us <= 11_100_000
    # deterministic: same audio, same settings -> same words
    assert transcribe(samples, Settings()).words == tr.words


@pytest.mark.slow
def test_streaming_analysis_in_pieces_keeps_every_word(public_episode) -> None:
    """148 s in 40 s pieces (cut in pauses) vs one piece: the same words, offsets right."""
    settings = Settings()
    one, sig_one = analyse_audio(public_episode, settings, duration_us=148_500_000)
    pieces, sig_pieces = analyse_audio(public_episode, settings, duration_us=148_500_000,
                                       piece_s=40, search_s=8)
    assert [w.text for w in pieces.words] == [w.text for w in one.words] or \
        abs(len(pieces.words) - len(one.words)) <= 3
    jfk = [w for w in pieces.words if w.text.lower().startswith("country")]
    assert jfk and all(75_000_000 < w.start_us < 87_000_000 for w in jfk)
    assert sig_pieces.energy == sig_one.energy


def test_unknown_model_is_a_config_error_offline(tmp_path) -> None:
    with pytest.raises(ConfigError, match="CLIPFORGE_WHISPER_MODEL"):
        load_model(Settings(whisper_model=str(tmp_path / "no-such-model")))


@pytest.mark.parametrize(("given", "language"),
                         [("auto", None), ("", None), (" AUTO ", None), ("De", "de"),
                          ("en", "en")])
def test_auto_language_means_detect(given: str, language: str | None) -> None:
    assert Settings(whisper_language=given).whisper_language == language


def test_whisper_base_halves_are_joined_once(tmp_path, monkeypatch) -> None:
    import importlib.machinery
    import importlib.util

    from clipforge import transcribe as tr

    parts = {}
    for i, name in enumerate(tr._WHISPER_BASE_PARTS, 1):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        (data / f"model.bin.part{i}").write_bytes(bytes([i]) * 1000)
        if i == 1:
            for small in ("config.json", "tokenizer.json", "vocabulary.txt"):
                (data / small).write_text(small)
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(tmp_path / name)]
        parts[name] = spec
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: parts.get(n) or real(n, *a))
    got = tr.whisper_base_dir(tmp_path / "models")
    assert (got / "model.bin").read_bytes() == b"\x01" * 1000 + b"\x02" * 1000
    assert sorted(p.name for p in got.iterdir()) == [
        "config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    settings = Settings(whisper_model="whisper-base", home=tmp_path)
    assert tr.resolve_model(settings) == str(got)
    (tmp_path / parts[tr._WHISPER_BASE_PARTS[1]].name).rename(tmp_path / "gone")
    assert tr.whisper_base_dir(tmp_path / "models") == got  # joined: the parts not read


def test_whisper_base_without_its_extra_names_the_make_target(tmp_path, monkeypatch) -> None:
    import importlib.util

    from clipforge import transcribe as tr

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n in tr._WHISPER_BASE_PARTS else real(n, *a))
    with pytest.raises(ConfigError, match="make whisper-base"):
        tr.resolve_model(Settings(whisper_model="whisper-base", home=tmp_path))
    assert not (tmp_path / "models" / "whisper-base").exists()


@pytest.mark.slow
def test_pieces_recognised_at_once_give_the_same_transcript(public_episode) -> None:
    """Two workers of one thread each (pieces in parallel) against one worker: the same
    words, in order, whichever piece finished first."""
    args = dict(duration_us=148_500_000, piece_s=40, search_s=8)
    serial, _ = analyse_audio(public_episode, Settings(asr_workers=1, cpu_threads=1), **args)
    parallel, _ = analyse_audio(public_episode, Settings(asr_workers=2, cpu_threads=2), **args)
    assert len(serial.words) > 100
    assert parallel.words == serial.words
    assert parallel.language == serial.language == "en"


def test_recognition_workers_share_out_the_cores() -> None:
    from clipforge.transcribe import asr_threads, asr_workers

    assert asr_workers(Settings(cpu_threads=2)) == 2
    assert asr_threads(Settings(cpu_threads=2)) == 1
    assert asr_workers(Settings(cpu_threads=16)) == 4
    assert asr_threads(Settings(cpu_threads=16)) == 4
    assert (asr_workers(Settings(cpu_threads=1)), asr_threads(Settings(cpu_threads=1))) == (1, 1)
    assert (asr_workers(Settings(asr_workers=1, cpu_threads=4)),
            asr_threads(Settings(asr_workers=1, cpu_threads=4))) == (1, 4)


def test_bounded_memory_spectrogram_equals_the_library_one(public_episode) -> None:
    """The sliced log-mel spectrogram is the library's on real speech of several lengths
    (slices, a merged remainder, a single slice): number for number on some CPUs, within
    a float32 rounding step of the mel matrix product on others (its BLAS kernel rounds
    a column by where it falls in the matrix: seen on an AMD EPYC, 1.2e-7 at most)."""
    import numpy as np
    from faster_whisper.feature_extractor import FeatureExtractor

    from clipforge.asr_features import ChunkedFeatures

    samples = decode_mono_16k(public_episode)
    library = FeatureExtractor(feature_size=80)
    for seconds, size in ((148, 6000), (61, 6000), (95.5, 3000), (40, 997), (7, 6000)):
        piece = samples[: int(seconds * 16_000)]
        ours, theirs = ChunkedFeatures(library, size)(piece), library(piece)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype, seconds
        assert float(np.max(np.abs(ours - theirs))) <= 4 * float(np.finfo(np.float32).eps), \
            seconds
    model = load_model(Settings())
    assert isinstance(model.feature_extractor, ChunkedFeatures)
