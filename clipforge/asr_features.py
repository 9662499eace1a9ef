"""faster-whisper's log-mel spectrogram in bounded memory, with the library's numbers.

faster-whisper computes a piece's spectrogram in one go: for a 10-minute piece the
framed signal, its complex STFT and the magnitudes are held at once, about 580 MB for a
moment, once per recognition worker. That transient was most of clipforge's peak memory
on long inputs. :class:`ChunkedFeatures` computes the same frames in slices of
``FRAMES_PER_SLICE`` (each frame's FFT and each mel column depend on that frame alone),
keeps only the 80-band mel (19 MB per 10 minutes) and then applies the library's
whole-piece steps (log, the 8 dB range clamp below the piece's maximum, scaling)
unchanged. ``tests/test_transcribe_audio.py`` checks the result against the library's on
real speech: identical on some CPUs, within a float32 rounding step (1.2e-7) on others,
where the BLAS kernel of the mel product rounds a column by its place in the matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FRAMES_PER_SLICE = 6000  # 60 s of 10 ms frames: about 30 MB of transient arrays


class ChunkedFeatures:
    """Drop-in for a ``faster_whisper.feature_extractor.FeatureExtractor`` instance."""

    def __init__(self, inner: Any, frames_per_slice: int = FRAMES_PER_SLICE) -> None:
        self._inner = inner
        self._slice = max(1, int(frames_per_slice))

    def __getattr__(self, name: str) -> Any:  # sampling_rate, hop_length, ...
        return getattr(self._inner, name)

    def __call__(self, waveform: np.ndarray, padding: int = 160,
                 chunk_length: int | None = None) -> np.ndarray:
        fe = self._inner
        if chunk_length is not None:  # as the library does
            fe.n_samples = chunk_length * fe.sampling_rate
            fe.nb_max_frames = fe.n_samples // fe.hop_length
        if waveform.dtype is not np.float32:
            waveform = waveform.astype(np.float32)
        if padding:
            waveform = np.pad(waveform, (0, padding))
        n_fft, hop = int(fe.n_fft), int(fe.hop_length)
        window = np.hanning(n_fft + 1)[:-1].astype("float32")
        x = np.pad(waveform[np.newaxis, :], ((0, 0), (n_fft // 2, n_fft // 2)),
                   mode="reflect")[0]
        if x.size < n_fft:  # what the library would do with it (it raises)
            return fe(waveform, padding=0)
        n_frames = 1 + (x.size - n_fft) // hop
        kept = n_frames - 1  # the library drops the last STFT frame
        filters = fe.mel_filters
        mel = np.empty((filters.shape[0], kept), dtype=np.float32)
        stride = x.strides[0]
        for a, b in _slices(kept, self._slice):
            frames = np.lib.stride_tricks.as_strided(
                x[a * hop:], (b - a, n_fft), (hop * stride, stride), writeable=False)
            spec = np.fft.rfft(frames * window, n=n_fft, axis=-1).astype("complex64")
            mel[:, a:b] = filters @ (np.abs(spec.T) ** 2)
        log_spec = np.log10(np.clip(mel, a_min=1e-10, a_max=None))
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return (log_spec + 4.0) / 4.0


def _slices(n: int, size: int) -> list[tuple[int, int]]:
    """[a, b) ranges of about ``size`` covering ``n``; the last one takes a remainder
    under half a slice (a matrix product over a handful of columns may round
    differently from the library's one product over all of them)."""
    bounds = list(range(0, n, size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < size // 2:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:], strict=False))


def install(model: Any) -> None:
    """Give a loaded ``WhisperModel`` the bounded-memory spectrogram."""
    if not isinstance(model.feature_extractor, ChunkedFeatures):
        model.feature_extractor = ChunkedFeatures(model.feature_extractor)
