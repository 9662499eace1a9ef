"""The audio analysis in one streaming pass: decode once, transcribe, measure delivery.

The source's audio is decoded block by block (PyAV, 16 kHz mono). Every block feeds the
audio-signal accumulator; the speech recogniser gets pieces of about ``piece_s``
seconds, each cut at the quietest 0.25 s cell within ``search_s`` of the nominal
boundary, so no word is split and memory stays bounded by one piece whatever the
source's length. Pieces are independent for the recogniser (no text conditioning), so
the transcript equals a whole-file one up to where whisper's 30 s windows fall.

Split-track recordings (a speaker per channel, often at unequal levels) are detected
on the first block; then each channel gets its own pieces from the same decode and the
channels' words are merged. On 6 split-track files made from real recordings (the quiet
speaker at -12/-24/-36 dB) this recovers 0.945 of the quiet speaker's words against 0.591
through the mono downmix, for 1.3x the analysis time (``bench/downmix_bench.py``).
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .audio import (
    MONO_LAYOUT,
    SAMPLE_RATE,
    AudioStream,
    ChannelLayout,
    cell_db,
    detect_split_track,
)
from .config import Settings
from .signals import AudioAccumulator, AudioSignals
from .timeutil import s_to_us
from .transcribe import (
    Transcript,
    Word,
    asr_workers,
    merge_channel_words,
    resolve_model,
    transcribe_piece,
)
from .wordtimes import refine_words

PIECE_S = 600
SEARCH_S = 30
CELL = SAMPLE_RATE // 4  # 0.25 s


def release_freed_memory() -> None:
    """Give memory freed by the allocator back to the system (glibc ``malloc_trim``): each
    recognition thread allocates a piece's spectrogram and buffers in its own malloc
    arena, and without a trim the process keeps every arena's high-water mark.
    A no-op where the C library has no ``malloc_trim``."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


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


class _Pieces:
    """One track's piece buffer: fed decoded blocks, it hands the recogniser pieces of
    about ``piece`` samples, each cut at the quietest cell within ``search`` of the
    nominal boundary. Holds at most one piece plus the search span plus one block."""

    def __init__(self, piece: int, search: int,
                 recognise: Callable[[np.ndarray, int], None]) -> None:
        self.piece, self.search, self.recognise = piece, search, recognise
        self.parts: list[np.ndarray] = []
        self.buffered = 0
        self.start = 0  # absolute sample index of the buffer's first sample

    def feed(self, block: np.ndarray) -> None:
        if not block.size:
            return
        self.parts.append(block)
        self.buffered += block.size
        while self.buffered >= self.piece + self.search:
            buf = np.concatenate(self.parts)
            cut = quiet_cut(buf, self.piece, self.search)
            self.recognise(buf[:cut], self.start)
            self.start += cut
            self.parts = [buf[cut:]]
            self.buffered = self.parts[0].size

    def finish(self) -> None:
        if self.buffered:
            self.recognise(np.concatenate(self.parts), self.start)
            self.parts, self.buffered = [], 0


def analyse_audio(
    path: str | Path,
    settings: Settings,
    *,
    duration_us: int,
    piece_s: int = PIECE_S,
    search_s: int = SEARCH_S,
    progress: Callable[[float], None] | None = None,
) -> tuple[Transcript, AudioSignals]:
    """Transcript and delivery signals of ``path``'s first audio stream, in one decode.

    Split-track sources (one speaker per channel, decided on the first block by
    :func:`clipforge.audio.detect_split_track`) have each channel transcribed on its
    own and the words merged (:func:`clipforge.transcribe.merge_channel_words`), so a
    quiet speaker alone on a channel is not lost in the downmix; the delivery signals
    always come from the mono downmix. Other sources are transcribed from the mono
    downmix, exactly as a mono-only pass would.
    """
    acc = AudioAccumulator()
    piece = piece_s * SAMPLE_RATE
    search = search_s * SAMPLE_RATE
    total = 0
    stream = AudioStream(path)
    layout: ChannelLayout | None = None
    tracks: list[_Pieces] = []
    workers = asr_workers(settings)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clipforge-asr")
    # one piece per worker plus the one being cut: decoding never runs ahead of recognition
    slots = threading.BoundedSemaphore(workers + 1)
    pending: list[tuple[int, int, Future[tuple[list[Word], str]]]] = []
    done_us: dict[tuple[int, int], int] = {}
    n_tracks = 1
    progress_lock = threading.Lock()

    def report(key: tuple[int, int], reached_us: int) -> None:
        with progress_lock:
            done_us[key] = max(done_us.get(key, 0), reached_us)
            if progress is not None and duration_us:
                progress(min(1.0, sum(done_us.values()) / n_tracks / duration_us))

    def run_piece(track: int, chunk: np.ndarray, offset: int) -> tuple[list[Word], str]:
        offset_us = s_to_us(offset / SAMPLE_RATE)
        try:
            return transcribe_piece(
                chunk, settings, offset_us=offset_us, source=str(path),
                progress=lambda t_us: report((track, offset), t_us - offset_us))
        finally:
            release_freed_memory()  # a piece's transient buffers go back to the system
            slots.release()

    def recogniser(track: int) -> Callable[[np.ndarray, int], None]:
        def recognise(chunk: np.ndarray, offset: int) -> None:
            slots.acquire()
            pending.append((track, offset, pool.submit(run_piece, track, chunk, offset)))
        return recognise

    try:
        for block in stream:
            if block.mono.size:
                acc.feed(block.mono)
                total += block.mono.size
            if layout is None:
                layout = detect_split_track(block.channels)
                stream.want_channels = layout.split
                n_tracks = layout.channels if layout.split else 1
                tracks = [_Pieces(piece, search, recogniser(i)) for i in range(n_tracks)]
            if layout.split:
                if block.channels is not None:
                    for track, samples in zip(tracks, block.channels, strict=True):
                        track.feed(samples)
            else:
                tracks[0].feed(block.mono)
        for track in tracks:
            track.finish()
        results = [(track, offset, fut.result()) for track, offset, fut in pending]
    finally:
        for _track, _offset, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
    heard: list[list[Word]] = [[] for _ in range(n_tracks)]
    language = settings.whisper_language or ""
    detected = ""
    for index, _offset, (got, lang) in sorted(results, key=lambda r: (r[1], r[0])):
        heard[index].extend(got)
        # the first piece with speech decides; a channel's silent stretch says nothing
        if not detected and lang and (got or n_tracks == 1):
            detected = lang
    language = detected or language
    layout = layout or MONO_LAYOUT
    if layout.split:
        words = merge_channel_words(heard)
    else:
        words = sorted(heard[0], key=lambda w: (w.start_us, w.end_us))
    audio_signals = acc.finish()
    duration = s_to_us(total / SAMPLE_RATE)
    # word edges the envelope contradicts (a word run on into a pause, a pause between
    # two "touching" words) move to where the speech is heard: cuts go in those pauses
    words = list(refine_words(words, audio_signals.fine_db, duration))
    transcript = Transcript(words=tuple(words), language=language,
                            duration_us=duration,
                            model=resolve_model(settings),
                            channels=layout.channels if layout.split else 1,
                            channel_note=layout.note)
    return transcript, audio_signals
