"""Real decode (PyAV), real faster-whisper model, real librosa on shared media."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import media

from clipforge.audio import SAMPLE_RATE, decode_mono_16k, energy_track, forget_decoded
from clipforge.config import Settings
from clipforge.errors import ConfigError
from clipforge.transcribe import load_model, transcribe


def test_decode_is_16k_mono_and_memoised() -> None:
    path = media("speech_en_11s__whisper_jfk.flac")
    samples = decode_mono_16k(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size / SAMPLE_RATE - 11.0) < 0.05
    assert decode_mono_16k(path) is samples  # one decode shared by the stages
    forget_decoded()
    assert decode_mono_16k(path) is not samples


def test_video_without_audio_decodes_to_nothing() -> None:
    assert decode_mono_16k(media("noaudio_real_720p2997__pyscenedetect_testvideo.mp4")).size == 0
    forget_decoded()


def test_energy_is_normalised_and_silence_is_zero() -> None:
    speech = energy_track(decode_mono_16k(media("speech_en_11s__whisper_jfk.flac")))
    assert 0.0 <= min(speech.values) and max(speech.values) <= 1.0
    assert max(speech.values) == 1.0 and speech.mean_between(0, 11_000_000) > 0.2
    silence = energy_track(np.zeros(SAMPLE_RATE * 5, dtype=np.float32))
    assert set(silence.values) == {0.0}
    forget_decoded()


@pytest.mark.slow
def test_transcribes_jfk_with_word_timestamps() -> None:
    samples = decode_mono_16k(media("speech_en_11s__whisper_jfk.flac"))
    forget_decoded()
    tr = transcribe(samples, Settings())
    text = tr.text.lower()
    assert "ask not what your country can do for you" in text.replace(",", "")
    starts = [w.start_us for w in tr.words]
    assert starts == sorted(starts)
    assert all(w.end_us > w.start_us for w in tr.words)
    assert tr.words[-1].end_us <= 11_100_000
    # deterministic: same audio, same settings -> same words
    assert transcribe(samples, Settings()).words == tr.words


def test_unknown_model_is_a_config_error_offline(tmp_path) -> None:
    with pytest.raises(ConfigError, match="CLIPFORGE_WHISPER_MODEL"):
        load_model(Settings(whisper_model=str(tmp_path / "no-such-model")))
