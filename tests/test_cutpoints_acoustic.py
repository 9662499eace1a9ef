"""Cut points on the acoustic gap: words the speech model ends early or starts late, quiet
spots between video frame boundaries, sustained sound that is not a word (issue 10)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import media

from clipforge import cutpoints
from clipforge.audio import decode_mono_16k
from clipforge.evaluate import CUT_QUIET_DB, cut_excess_db
from clipforge.signals import fine_envelope

S = 1_000_000
SR = 16_000
FRAME = 40_000  # one 25 fps frame: how far word times may move between CPUs
FPS25 = Fraction(25)


def noise(duration_us: int, spans: list[tuple[int, int, float]], seed: int = 5) -> np.ndarray:
    """A -60 dB noise floor plus noise bursts (start, end, standard deviation)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 0.001, duration_us * SR // S).astype(np.float32)
    for a, b, sd in spans:
        i0, i1 = a * SR // S, b * SR // S
        y[i0:i1] += rng.normal(0, sd, i1 - i0).astype(np.float32)
    return y


def test_a_word_that_starts_before_its_transcript_time_is_not_clipped() -> None:
    # word B really starts at 1.30 s; the transcript says 1.70 s (a late start). The old
    # rule cut after the transcript gap's middle (1.35 s), inside B's sound.
    y = noise(3 * S, [(500_000, 1_000_000, 0.3), (1_300_000, 2_200_000, 0.3)])
    env = fine_envelope(y)
    a, b = cutpoints.acoustic_gap(env, 1_000_000, 1_700_000)
    assert 1_000_000 <= a <= 1_020_000 and 1_280_000 <= b <= 1_310_000
    for d in (-FRAME, 0, FRAME):  # robust to the word time moving by a frame
        t = cutpoints.cut_in(env, 1_000_000, 1_700_000 + d, lead_pad_us=100_000, fps=FPS25)
        assert (a + b) // 2 <= t <= 1_300_000
        assert cut_excess_db(y, t / S) <= CUT_QUIET_DB


def test_a_word_that_ends_after_its_transcript_time_is_not_clipped() -> None:
    # word A really ends at 1.35 s; the transcript says 1.00 s (an early end).
    y = noise(3 * S, [(500_000, 1_350_000, 0.3), (1_800_000, 2_300_000, 0.3)])
    env = fine_envelope(y)
    for d in (-FRAME, 0, FRAME):
        t = cutpoints.cut_out(env, 1_000_000 + d, 1_800_000, tail_pad_us=100_000,
                              fps=FPS25)
        assert 1_350_000 <= t <= 1_800_000
        assert cut_excess_db(y, t / S) <= CUT_QUIET_DB


def test_the_lead_cap_counts_from_where_the_word_is_heard() -> None:
    # B is heard from 1.40 s, the transcript says 2.00 s: more than the 0.4 s lead cap.
    y = noise(3 * S, [(300_000, 600_000, 0.3), (1_400_000, 2_400_000, 0.3)])
    env = fine_envelope(y)
    t = cutpoints.cut_in(env, 600_000, 2_000_000, lead_pad_us=100_000)
    assert 1_000_000 <= t < 1_400_000
    assert cut_excess_db(y, t / S) <= CUT_QUIET_DB


def test_sustained_sound_after_a_word_is_not_taken_for_the_word() -> None:
    # a music bed as loud as the speech runs on for 2 s after A: A keeps its transcript
    # end, and the cut is no further than the tail cap from it.
    y = noise(5 * S, [(500_000, 1_000_000, 0.3), (1_000_000, 3_000_000, 0.2),
                      (3_600_000, 4_000_000, 0.3)])
    env = fine_envelope(y)
    assert cutpoints.acoustic_gap(env, 1_000_000, 3_600_000)[0] == 1_000_000
    t = cutpoints.cut_out(env, 1_000_000, 3_600_000, tail_pad_us=100_000)
    assert 1_000_000 <= t <= 1_000_000 + cutpoints.MAX_TAIL_US


def test_a_quiet_spot_between_frame_boundaries_is_used_and_ties_stay_on_frames() -> None:
    # a loud gap with one 30 ms quiet spot at 1.210-1.240 s, between the 25 fps frame
    # boundaries 1.20 and 1.24: the cut goes into the spot (the renderer puts the video on
    # the nearest frame, the audio exactly at the cut).
    y = noise(3 * S, [(500_000, 1_000_000, 0.3), (1_000_000, 1_210_000, 0.05),
                      (1_240_000, 1_500_000, 0.05), (1_500_000, 2_000_000, 0.3)])
    env = fine_envelope(y)
    t = cutpoints.quietest(env, 1_000_000, 1_400_000, 1_100_000, FPS25)
    assert 1_210_000 <= t <= 1_240_000 and t % FRAME != 0
    assert cut_excess_db(y, t / S) <= CUT_QUIET_DB
    # flat noise: a frame boundary is among the ties and is taken
    flat = fine_envelope(noise(3 * S, []))
    t = cutpoints.quietest(flat, 1_005_000, 1_395_000, 1_100_000, FPS25)
    assert t % FRAME == 0


def test_digital_silence_is_one_level_so_the_pad_decides() -> None:
    env = np.full(300, -120.0, np.float32)
    env[120:140] = -110.0  # quieter or louder digital silence makes no difference
    assert cutpoints.cut_in(env, 0, 1_600_000, lead_pad_us=100_000) == 1_500_000


def _pauses(env: np.ndarray, min_us: int = 150_000) -> list[tuple[int, int]]:
    """Pauses of a real recording: runs at least 25 dB under its 90th percentile."""
    quiet = env < np.percentile(env, 90) - 25
    out, start = [], None
    for i, q in enumerate(list(quiet) + [False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * 10_000 >= min_us and start > 0 and i < env.size:
                out.append((start * 10_000, i * 10_000))
            start = None
    return out


@pytest.mark.parametrize("late_us", [100_000, 200_000])
def test_real_speech_with_late_word_starts_and_early_ends_cuts_in_the_pause(
        late_us: int) -> None:
    """JFK's inaugural line (real room noise between phrases): a transcript whose words
    end 100 ms early and start ``late_us`` late (and a frame either way) still gets both
    cut points of every pause within 6 dB of the local quietest 20 ms, and never after
    the real onset / before the real end."""
    y = decode_mono_16k(str(media("speech_en_11s__whisper_jfk.flac")))
    env = fine_envelope(y)
    pauses = _pauses(env)
    assert len(pauses) >= 3
    for p0, p1 in pauses:
        for d in (-FRAME, 0, FRAME):
            prev_end, next_start = p0 - 100_000 + d, p1 + late_us + d
            t_in = cutpoints.cut_in(env, prev_end, next_start, lead_pad_us=100_000,
                                    fps=FPS25)
            t_out = cutpoints.cut_out(env, prev_end, next_start, tail_pad_us=100_000,
                                      fps=FPS25)
            assert prev_end <= t_out <= t_in <= next_start  # no crossing, no word cut
            assert t_in <= p1 + 10_000 and t_out >= p0 - 10_000
            assert cut_excess_db(y, t_in / S) <= CUT_QUIET_DB, (p0, p1, d, t_in)
            assert cut_excess_db(y, t_out / S) <= CUT_QUIET_DB, (p0, p1, d, t_out)
