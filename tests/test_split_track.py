"""Split-track recordings (a speaker per channel): real decode, real model, real media."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import media

from clipforge.analysis import analyse_audio
from clipforge.audio import (
    SAMPLE_RATE,
    AudioStream,
    decode_channels_16k,
    decode_mono_16k,
    detect_split_track,
)
from clipforge.config import Settings
from clipforge.text import tokens
from clipforge.transcribe import Word, merge_channel_words, transcribe

STEREO_2SPK = "multispeaker_stereo_5s__faster-whisper_stereo_diarization.wav"
TALK = "talk_en_42s__auto-editor_example.mp4"  # ordinary stereo (the same signal twice)
JFK = "speech_en_11s__whisper_jfk.flac"


def _lcs(a: list[str], b: list[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _coverage(reference: list[str], words: tuple[Word, ...] | list[Word]) -> float:
    """Share of the reference's tokens recovered in order (LCS)."""
    hyp = [t for w in words for t in tokens(w.text)]
    return _lcs(reference, hyp) / max(1, len(reference))


def _tokens(samples: np.ndarray, settings: Settings) -> list[str]:
    return [t for w in transcribe(samples, settings).words for t in tokens(w.text)]


def _panned(tmp: Path, quiet_db: float) -> Path:
    """JFK hard left, the talk's first 15 s hard right ``quiet_db`` below it (both first
    brought to the same loudness), the talk starting at 5 s: half of it overlaps."""
    out = tmp / f"split_{-quiet_db:g}.wav"
    mono = "aformat=sample_fmts=flt:channel_layouts=mono"
    graph = (
        f"[0:a]aformat=channel_layouts=mono,loudnorm=I=-20,aresample=16000,"
        f"apad=whole_dur=20,{mono}[a];"
        f"[1:a]atrim=0:15,asetpts=PTS-STARTPTS,aformat=channel_layouts=mono,loudnorm=I=-20,"
        f"aresample=16000,volume={quiet_db}dB,adelay=5000,apad=whole_dur=20,{mono}[b];"
        "[a][b]amerge=inputs=2,pan=stereo|c0=c0|c1=c1,atrim=0:20[out]"
    )
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(media(JFK)),
                    "-i", str(media(TALK)), "-filter_complex", graph, "-map", "[out]",
                    "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", str(out)], check=True)
    return out


def test_detection_tells_split_track_from_ordinary_stereo() -> None:
    split = detect_split_track(decode_channels_16k(media(STEREO_2SPK)))
    assert split.split and split.channels == 2 and split.correlation < 0.5
    assert split.note.startswith("split-track: 2 channels")
    talk = decode_channels_16k(media(TALK))[:, : 30 * SAMPLE_RATE]
    ordinary = detect_split_track(talk)
    assert talk.shape[0] == 2 and not ordinary.split and ordinary.note == ""
    assert not detect_split_track(decode_channels_16k(media(JFK))).split  # dual mono
    assert detect_split_track(decode_channels_16k(media(STEREO_2SPK))) == split  # stable


def test_channels_stream_beside_the_mono_downmix_and_stop_when_not_wanted() -> None:
    path = media(TALK)
    stream = AudioStream(path, block_s=5.0)
    blocks = []
    for block in stream:
        blocks.append(block)
        if len(blocks) == 2:
            stream.want_channels = False
    assert stream.channel_count == 2
    assert all(b.channels is not None and b.channels.shape[0] == 2 for b in blocks[:2])
    assert all(b.channels is None for b in blocks[3:]) and len(blocks) > 5
    assert max(b.mono.size for b in blocks) < 6 * SAMPLE_RATE
    # the mono blocks are the downmix the pipeline always used, block for block
    assert np.array_equal(np.concatenate([b.mono for b in blocks]), decode_mono_16k(path))


def test_merge_keeps_a_word_both_channels_heard_once() -> None:
    a = [Word(0, 400_000, "Hello", 0.9), Word(500_000, 900_000, "there.", 0.5)]
    b = [Word(520_000, 880_000, "There", 0.8), Word(600_000, 1_000_000, "yes", 0.7),
         Word(2_000_000, 2_300_000, "hello", 0.9)]
    merged = merge_channel_words([a, b])
    assert [w.text for w in merged] == ["Hello", "There", "yes", "hello"]
    starts = [(w.start_us, w.end_us) for w in merged]
    assert starts == sorted(starts)
    assert merge_channel_words([b, a]) == merged
    # two speakers saying the same word 0.3 s apart: both kept
    c = [Word(2_250_000, 2_600_000, "hello", 0.95)]
    assert [w.text for w in merge_channel_words([b, c])].count("hello") == 2


@pytest.mark.slow
def test_both_speakers_of_the_stereo_diarization_file_reach_the_transcript() -> None:
    path = media(STEREO_2SPK)
    settings = Settings(whisper_language="en")
    tr, _ = analyse_audio(path, settings, duration_us=5_000_000)
    assert tr.channels == 2 and tr.channel_note.startswith("split-track: 2 channels")
    channels = decode_channels_16k(path)
    for ch in channels:  # reference: each channel transcribed alone
        ref = _tokens(ch, settings)
        assert len(ref) >= 5 and _coverage(ref, tr.words) >= 0.9
    starts = [(w.start_us, w.end_us) for w in tr.words]
    assert starts == sorted(starts)
    assert analyse_audio(path, settings, duration_us=5_000_000)[0] == tr  # deterministic


@pytest.mark.slow
def test_a_quiet_speaker_alone_on_one_channel_is_not_lost(tmp_path: Path) -> None:
    path = _panned(tmp_path, -30.0)
    settings = Settings(whisper_language="en")
    tr, signals = analyse_audio(path, settings, duration_us=20_000_000)
    assert tr.channels == 2 and "split-track" in tr.channel_note
    # reference: each recording transcribed alone, at its own level
    ref_loud = _tokens(decode_mono_16k(media(JFK)), settings)
    ref_quiet = _tokens(decode_channels_16k(path)[1] * np.float32(10 ** 1.5), settings)
    assert len(ref_quiet) >= 20
    assert _coverage(ref_loud, tr.words) >= 0.9
    quiet = _coverage(ref_quiet, tr.words)
    downmix = _coverage(ref_quiet, transcribe(decode_mono_16k(path), settings).words)
    assert quiet >= 0.8 and quiet > downmix
    # the delivery signals still come from the mono downmix
    assert len(signals.energy.values) == pytest.approx(20 / 0.25, abs=1)


@pytest.mark.slow
def test_ordinary_stereo_is_transcribed_from_the_downmix_as_before() -> None:
    path = media(TALK)
    settings = Settings()
    tr, _ = analyse_audio(path, settings, duration_us=42_000_000)
    assert tr.channels == 1 and tr.channel_note == ""
    # one piece (< 600 s): exactly the whole-file transcript of the mono downmix
    assert tr.words == transcribe(decode_mono_16k(path), settings).words
