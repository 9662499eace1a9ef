"""The audio analysis in one streaming pass: decode once, transcribe, measure delivery.

The source's audio is decoded block by block (PyAV, 16 kHz mono). Every block feeds the
audio-signal accumulator; the speech recogniser gets pieces of about ``piece_s``
seconds, each cut at the quietest 0.25 s cell within ``search_s`` of the nominal
boundary, so no word is split and memory stays bounded by one piece whatever the
source's length. Pieces are independent for the recogniser (no text conditioning), so
the transcript equals a whole-file one up to where whisper's 30 s windows fall.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE, cell_db, stream_mono_16k
from .config import Settings
from .signals import AudioAccumulator, AudioSignals
from .timeutil import s_to_us
from .transcribe import Transcript, Word, resolve_model, transcribe_piece

PIECE_S = 600
SEARCH_S = 30
CELL = SAMPLE_RATE // 4  # 0.25 s


def quiet_cut(buffer: np.ndarray, nominal: int, search: int) -> int:
    """Sample index of the middle of the quietest cell in ``nominal ± search`` samples
    (earliest on ties), never 0 and never past the buffer."""
    lo = max(CELL, nominal - search)
    hi = min(buffer.size - CELL, nominal + search)
    if hi <= lo:
        return min(nominal, buffer.size)
    db = cell_db(buffer[lo:hi], CELL)
    best = int(np.argmin(db))
    return lo + best * CELL + CELL // 2


def analyse_audio(
    path: str | Path,
    settings: Settings,
    *,
    duration_us: int,
    piece_s: int = PIECE_S,
    search_s: int = SEARCH_S,
    progress: Callable[[float], None] | None = None,
) -> tuple[Transcript, AudioSignals]:
    acc = AudioAccumulator()
    piece = piece_s * SAMPLE_RATE
    search = search_s * SAMPLE_RATE
    words: list[Word] = []
    language = settings.whisper_language or ""
    parts: list[np.ndarray] = []
    buffered = 0
    start = 0  # absolute sample index of the buffer's first sample
    total = 0

    def report(t_us: int) -> None:
        if progress is not None and duration_us:
            progress(min(1.0, t_us / duration_us))

    def recognise(chunk: np.ndarray, offset: int) -> None:
        nonlocal language
        got, lang = transcribe_piece(chunk, settings, offset_us=s_to_us(offset / SAMPLE_RATE),
                                     source=str(path), progress=report)
        words.extend(got)
        language = lang or language

    for block in stream_mono_16k(path):
        acc.feed(block)
        total += block.size
        parts.append(block)
        buffered += block.size
        while buffered >= piece + search:
            buf = np.concatenate(parts)
            cut = quiet_cut(buf, piece, search)
            recognise(buf[:cut], start)
            start += cut
            parts = [buf[cut:]]
            buffered = parts[0].size
    if buffered:
        recognise(np.concatenate(parts), start)
    words.sort(key=lambda w: (w.start_us, w.end_us))
    transcript = Transcript(words=tuple(words), language=language,
                            duration_us=s_to_us(total / SAMPLE_RATE),
                            model=resolve_model(settings))
    return transcript, acc.finish()
