"""What was on screen, on a fixed time grid: faces, motion and scene cuts (PyAV + OpenCV).

One decoding pass per source, no seeks (before it, a demux-only scan of packet flags
over at most the first ``KEYFRAME_SCAN_US`` picks the method; it reads, never decodes):

* ``method="keyframes"``: only key frames are decoded (``skip_frame="NONKEY"``), which
  is 40-58x realtime at 1080p. Used when key frames are dense enough: the median
  key-frame gap (measured by demuxing, not decoding, at most the first
  ``KEYFRAME_SCAN_US`` of the source) is at most ``SPARSE_KEYFRAME_GAP_US`` (2 s).
* ``method="sampled"``: otherwise (long GOPs, a single key frame, short clips) every
  reference frame is decoded (``thread_type="AUTO"``, ``skip_frame="NONREF"``, which
  drops only B-frames nobody references) and about ``1 / SAMPLE_INTERVAL_US`` frames
  per second (2 fps) are converted and analysed. Converting is the cost: 8-bit planar
  YUV frames use the Y plane directly (0.3 ms) resized with ``cv2.INTER_AREA``; other
  formats go through ``frame.to_ndarray(format="gray", ...)`` at the small size.
  (Should skipping non-reference frames leave fewer than half the expected samples,
  as in a stream of mostly non-reference frames, the pass is repeated without it.)

Every analysed frame becomes a small gray image (longest side ``max_side``, default
320 px; rotation and sample aspect ratio are ignored: they do not change these
signals). Times are integer microseconds relative to the container's start time (the
same origin as ``clipforge.probe`` durations and FFmpeg's ``-ss``).

Signals, per analysed frame, then per grid cell ``[i * hop_us, (i + 1) * hop_us)``:

* **faces**: OpenCV's Haar frontal-face cascade (``scaleFactor`` 1.2,
  ``minNeighbors`` 5, faces of at least 20 px on the small frame); the largest face's
  share of the frame area mapped to ``min(1, sqrt(share / FACE_FULL_SHARE))``, so a
  face covering 8 % of the frame (a medium close-up) counts 1.0 and a small 20 px face
  about 0.3; no face is 0.0. Nearly flat frames (gray std < ``FLAT_STD``, e.g. black)
  are not searched. A cell takes the max over its frames; a cell without an analysed
  frame holds the value of the last frame before it (a key frame stands for its GOP).
* **motion**: mean absolute difference of consecutive analysed frames (gray levels
  0-255), normalised per source by ``max(95th percentile, MOTION_FLOOR)`` and clipped
  to 1. ``MOTION_FLOOR`` (1.5 gray levels) keeps a still or black source at ~0 instead
  of blowing compression noise up to 1. A difference across a detected scene cut is a
  cut, not motion, and is left out. The difference ending at frame ``i`` describes the
  interval before it, so a cell without one takes the next difference after it (the
  last one at the end of the source). With key frames the analysed frames are up to a
  GOP (<= 2 s median) apart, so motion is change over that span: coarser, same scale.
* **scene cuts**: total-variation distance ``0.5 * sum|h1 - h0|`` between the
  normalised 32-bin gray histograms of consecutive analysed frames, in [0, 1]. A cut is
  a distance >= ``CUT_THRESHOLD`` (0.35) that is also a jump: at least
  ``CUT_JUMP_RATIO`` (3x) the median distance of the previous ``CUT_CONTEXT`` pairs, so
  a long fast pan or flicker that keeps the distance high does not count every frame.
  Flagged pairs within ``CUT_MERGE_US`` (1 s) of the previous flagged pair belong to
  the same transition (a fade through black flags two pairs), reported once. The cut's
  time is that of the first analysed frame after it (late by up to one sampling
  interval, 0.5 s, or one key-frame gap).

``visual_track`` is deterministic: the same file gives an identical ``VisualTrack``.
Undecodable packets are counted (``VisualTrack.undecodable_packets``); when every packet
fails to decode the file is refused. The optional image embeddings come from
:mod:`clipforge.imagetext`; importing this module does not import torch or transformers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import av
import cv2
import numpy as np

from .errors import ConfigError, CorruptInputError
from .imagetext import ImageTextScorer, image_text_scores
from .timeutil import US_PER_S

DEFAULT_HOP_US = 1_000_000
SPARSE_KEYFRAME_GAP_US = 2_000_000  # median key-frame gap above this -> sampled decode
KEYFRAME_SCAN_US = 300 * US_PER_S  # the key-frame density is judged on this much source
SAMPLE_INTERVAL_US = 500_000  # sampled decode analyses ~2 frames per second
HIST_BINS = 32
CUT_THRESHOLD = 0.35  # total-variation distance between gray histograms, in [0, 1]
CUT_JUMP_RATIO = 3.0  # ... and at least this times the recent median distance
CUT_CONTEXT = 6  # recent pairs the median is taken over
CUT_MERGE_US = 1_000_000  # flagged pairs closer than this to the previous one: one transition
MOTION_PERCENTILE = 95.0
MOTION_FLOOR = 1.5  # gray levels; the normaliser never goes below this
FACE_FULL_SHARE = 0.08  # largest face covering this share of the frame -> faces = 1.0
FLAT_STD = 3.0  # frames flatter than this (gray std) are not searched for faces
FACE_MIN_SIDE = 20  # px on the small frame
FACE_SCALE_STEP = 1.2  # Haar pyramid step: 1.1 finds little more here and costs ~2x
FACE_WEIGHT = 0.5  # score_between = FACE_WEIGHT * max(faces) + (1 - FACE_WEIGHT) * mean(motion)
EMBED_BATCH = 16

Method = Literal["keyframes", "sampled"]

_Y_PLANE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
     "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"}
)


@dataclass(frozen=True, slots=True, eq=False)
class VisualTrack:
    """Visual signals on a fixed grid: ``faces[i]`` and ``motion[i]`` cover
    ``[i * hop_us, (i + 1) * hop_us)``. A source without video has empty tuples.

    ``image_embeddings`` (optional, off by default) holds one L2-normalised image
    embedding per analysed frame (row ``j`` belongs to ``frame_times_us[j]``), so a new
    prompt can be scored later without decoding again.
    """

    hop_us: int
    faces: tuple[float, ...]
    motion: tuple[float, ...]
    scene_cuts: tuple[int, ...]
    frame_times_us: tuple[int, ...]
    method: str
    image_embeddings: np.ndarray | None = None
    undecodable_packets: int = 0  # damaged packets the decoder rejected (skipped)

    def _key(self) -> tuple[Any, ...]:
        return (self.hop_us, self.faces, self.motion, self.scene_cuts, self.frame_times_us,
                self.method, self.undecodable_packets)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VisualTrack):
            return NotImplemented
        if self._key() != other._key():
            return False
        a, b = self.image_embeddings, other.image_embeddings
        if a is None or b is None:
            return a is None and b is None
        return a.shape == b.shape and bool(np.array_equal(a, b))

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def has_video(self) -> bool:
        return bool(self.faces)

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict for checkpoints. ``image_embeddings`` are not included
        (store them with ``np.save`` beside it when needed)."""
        return {"hop_us": self.hop_us, "faces": list(self.faces), "motion": list(self.motion),
                "scene_cuts": list(self.scene_cuts), "frame_times_us": list(self.frame_times_us),
                "method": self.method, "undecodable_packets": self.undecodable_packets}

    @classmethod
    def from_json(cls, data: dict[str, Any],
                  image_embeddings: np.ndarray | None = None) -> VisualTrack:
        return cls(hop_us=int(data["hop_us"]), faces=tuple(float(v) for v in data["faces"]),
                   motion=tuple(float(v) for v in data["motion"]),
                   scene_cuts=tuple(int(v) for v in data["scene_cuts"]),
                   frame_times_us=tuple(int(v) for v in data["frame_times_us"]),
                   method=str(data["method"]), image_embeddings=image_embeddings,
                   undecodable_packets=int(data.get("undecodable_packets", 0)))

    def _cells(self, start_us: int, end_us: int) -> tuple[int, int] | None:
        n = len(self.faces)
        if n == 0 or end_us <= start_us:
            return None
        i0 = max(0, start_us // self.hop_us)
        if i0 >= n:
            return None
        i1 = min(n, max(i0 + 1, -(-end_us // self.hop_us)))
        return i0, i1

    def score_between(self, start_us: int, end_us: int) -> float:
        """Visual interest of ``[start_us, end_us)`` in [0, 1]:
        ``0.5 * max(faces) + 0.5 * mean(motion)`` over the grid cells the range touches.
        0.0 for an empty range or a source without video."""
        cells = self._cells(start_us, end_us)
        if cells is None:
            return 0.0
        i0, i1 = cells
        face = max(self.faces[i0:i1])
        window = self.motion[i0:i1]
        motion = sum(window) / len(window)
        return float(min(1.0, max(0.0, FACE_WEIGHT * face + (1.0 - FACE_WEIGHT) * motion)))

    def cuts_between(self, start_us: int, end_us: int) -> int:
        """Scene cuts strictly inside ``(start_us, end_us)`` (a cut at the start is where
        the range begins, not a cut within it)."""
        return sum(1 for t in self.scene_cuts if start_us < t < end_us)

    def image_text_between(self, start_us: int, end_us: int, text_embedding: np.ndarray) -> float:
        """Best prompt match in [0, 1] of the frames analysed in ``[start_us, end_us)``
        (the last frame before the range when none falls inside). 0.0 without stored
        image embeddings."""
        emb = self.image_embeddings
        if emb is None or emb.shape[0] == 0 or end_us <= start_us:
            return 0.0
        times = np.asarray(self.frame_times_us, dtype=np.int64)
        lo = int(np.searchsorted(times, start_us, side="left"))
        hi = int(np.searchsorted(times, end_us, side="left"))
        if hi <= lo:
            if lo == 0:
                return 0.0
            lo, hi = lo - 1, lo
        return float(np.max(image_text_scores(emb[lo:hi], text_embedding)))


def empty_track(hop_us: int = DEFAULT_HOP_US, method: str = "keyframes") -> VisualTrack:
    return VisualTrack(hop_us=hop_us, faces=(), motion=(), scene_cuts=(), frame_times_us=(),
                       method=method)


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------


def _small_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def _small_gray(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    w, h = _small_size(frame.width, frame.height, max_side)
    if frame.format.name in _Y_PLANE_FORMATS:
        plane = frame.planes[0]
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        y = buf[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
        y = y[: frame.height, : frame.width]
        if (w, h) == (frame.width, frame.height):
            return np.ascontiguousarray(y)
        return cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    out = frame.to_ndarray(format="gray", width=w, height=h)
    return np.ascontiguousarray(out, dtype=np.uint8)


def _small_rgb(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    """RGB frame whose shorter side is ``short_side`` (never upscaled): what an
    image embedder resizes and centre-crops to its input size."""
    scale = min(1.0, short_side / max(1, min(frame.width, frame.height)))
    w = max(1, int(round(frame.width * scale)))
    h = max(1, int(round(frame.height * scale)))
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24", width=w, height=h))


_NOT_MOTION = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails


def _video_stream(container: Any) -> Any | None:
    """The first real video stream: cover art (``attached_pic``, e.g. in an MP3 or M4A)
    and thumbnail tracks are not video."""
    for stream in container.streams.video:
        if not (stream.disposition & _NOT_MOTION):
            return stream
    return None


def _start_us(container: Any) -> int:
    start = container.start_time
    return int(start) if start is not None and start > 0 else 0


def _ticks_to_us(ticks: int, time_base: Fraction) -> int:
    """``ticks * time_base`` seconds in microseconds, rounded half away from zero
    (integer arithmetic: called for every decoded frame)."""
    num = ticks * time_base.numerator * US_PER_S
    den = time_base.denominator
    if num >= 0:
        return (2 * num + den) // (2 * den)
    return -((-2 * num + den) // (2 * den))


def _frame_time_us(frame: av.VideoFrame, start_us: int) -> int | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return _ticks_to_us(int(frame.pts), frame.time_base) - start_us


def _median_keyframe_gap_us(path: str, duration_us: int) -> int | None:
    """Median gap between key frames (demux only, no decoding) over at most the first
    ``KEYFRAME_SCAN_US`` of the source; the end of the scanned span closes the last gap.
    None when fewer than two key frames are seen."""
    with av.open(path) as container:
        stream = _video_stream(container)
        if stream is None:
            return None
        start_us = _start_us(container)
        limit = min(duration_us, KEYFRAME_SCAN_US) if duration_us > 0 else KEYFRAME_SCAN_US
        times: list[int] = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            t = _ticks_to_us(int(packet.pts), packet.time_base) - start_us
            if t > limit:
                break
            if packet.is_keyframe:
                times.append(t)
    times = sorted(set(times))
    if len(times) < 2:
        return None
    # The end of the scanned span closes the last gap (only when the duration is known).
    edges = times + [limit] if duration_us > 0 and limit > times[-1] else times
    gaps = np.diff(np.asarray(edges, dtype=np.int64))
    return int(np.median(gaps))


def _choose_method(path: str, duration_us: int) -> Method:
    gap = _median_keyframe_gap_us(path, duration_us)
    if gap is None or gap > SPARSE_KEYFRAME_GAP_US:
        return "sampled"
    return "keyframes"


# ---------------------------------------------------------------------------------------
# The track
# ---------------------------------------------------------------------------------------


def _gray_hist(gray: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([gray], [0], None, [HIST_BINS], [0, 256]).reshape(-1)
    total = float(hist.sum())
    return hist / total if total > 0 else hist


def _largest_face_share(cascade: cv2.CascadeClassifier, gray: np.ndarray) -> float:
    if float(gray.std()) < FLAT_STD:
        return 0.0
    h, w = gray.shape[:2]
    if min(h, w) < FACE_MIN_SIDE:
        return 0.0
    faces = cascade.detectMultiScale(
        gray, scaleFactor=FACE_SCALE_STEP, minNeighbors=5, minSize=(FACE_MIN_SIDE, FACE_MIN_SIDE)
    )
    if len(faces) == 0:
        return 0.0
    largest = max(int(fw) * int(fh) for (_x, _y, fw, fh) in faces)
    return largest / float(w * h)


def _face_value(share: float) -> float:
    if share <= 0.0:
        return 0.0
    return min(1.0, math.sqrt(share / FACE_FULL_SHARE))


def _cell_series(
    n_cells: int, hop_us: int, times: Sequence[int], values: Sequence[float],
    reduce: Callable[[list[float]], float], fill: Literal["forward", "backward"],
) -> list[float]:
    """Per cell: ``reduce`` of the values whose time falls in it; empty cells are filled
    from the previous value (forward) or the next one (backward), then from the other
    side at the ends; 0.0 when there are no values at all."""
    buckets: list[list[float]] = [[] for _ in range(n_cells)]
    for t, v in zip(times, values, strict=True):
        i = min(n_cells - 1, max(0, t // hop_us))
        buckets[i].append(v)
    out: list[float | None] = [reduce(b) if b else None for b in buckets]
    order = range(n_cells) if fill == "forward" else range(n_cells - 1, -1, -1)
    last: float | None = None
    for i in order:
        if out[i] is None:
            out[i] = last
        else:
            last = out[i]
    last = None
    for i in reversed(order):
        if out[i] is None:
            out[i] = last
        else:
            last = out[i]
    return [round(float(v), 4) if v is not None else 0.0 for v in out]


def _flag_cuts(dists: Sequence[float]) -> list[bool]:
    """Pair ``i`` (frames ``i`` and ``i + 1``) is a cut candidate when its histogram
    distance is >= CUT_THRESHOLD and >= CUT_JUMP_RATIO x the median of the previous
    CUT_CONTEXT distances."""
    flags: list[bool] = []
    for i, d in enumerate(dists):
        context = dists[max(0, i - CUT_CONTEXT): i]
        base = float(np.median(context)) if context else 0.0
        flags.append(d >= CUT_THRESHOLD and d >= CUT_JUMP_RATIO * base)
    return flags


def _cut_times(flags: Sequence[bool], times: Sequence[int]) -> list[int]:
    """One time per transition: a flagged pair within CUT_MERGE_US of the previous
    flagged pair continues it (a fade through black flags the pair into and the pair
    out of the black frame); the transition is reported at its first flagged pair."""
    cuts: list[int] = []
    last_flagged: int | None = None
    for i, flagged in enumerate(flags):
        if not flagged:
            continue
        t = times[i + 1]
        if last_flagged is None or t - last_flagged >= CUT_MERGE_US:
            cuts.append(t)
        last_flagged = t
    return cuts


class _Analyser:
    """Per-frame work of one decoding pass: small gray frame, histogram distance and
    absolute difference to the previous analysed frame, largest face, optional
    image embedding (batched)."""

    def __init__(self, cascade: cv2.CascadeClassifier, max_side: int,
                 embedder: ImageTextScorer | None, report: Callable[[float], None],
                 duration_us: int) -> None:
        self.cascade = cascade
        self.max_side = max_side
        self.embedder = embedder
        self.report = report
        self.duration_us = duration_us
        self.times: list[int] = []
        self.face_shares: list[float] = []
        self.diffs: list[float] = []  # diffs[i]: frames i and i + 1
        self.dists: list[float] = []
        self.prev_gray: np.ndarray | None = None
        self.prev_hist: np.ndarray | None = None
        self.embeddings: list[np.ndarray] = []
        self.rgb_batch: list[np.ndarray] = []

    def analyse(self, frame: av.VideoFrame, t: int) -> None:
        gray = _small_gray(frame, self.max_side)
        hist = _gray_hist(gray)
        if self.prev_gray is not None and self.prev_hist is not None:
            same = self.prev_gray.shape == gray.shape
            self.diffs.append(float(cv2.absdiff(self.prev_gray, gray).mean()) if same else 0.0)
            self.dists.append(0.5 * float(np.abs(hist - self.prev_hist).sum()))
        self.prev_gray, self.prev_hist = gray, hist
        self.times.append(t)
        self.face_shares.append(_largest_face_share(self.cascade, gray))
        if self.embedder is not None:
            self.rgb_batch.append(_small_rgb(frame, self.embedder.image_size))
            if len(self.rgb_batch) >= EMBED_BATCH:
                self.embeddings.append(self.embedder.embed_images(self.rgb_batch))
                self.rgb_batch = []
        if self.duration_us > 0:
            self.report(min(1.0, t / self.duration_us))

    def finish_embeddings(self) -> np.ndarray | None:
        if self.embedder is None:
            return None
        if self.rgb_batch:
            self.embeddings.append(self.embedder.embed_images(self.rgb_batch))
            self.rgb_batch = []
        if not self.embeddings:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.concatenate(self.embeddings, axis=0)


def _decode_pass(src: str, method: Method, analyser: _Analyser, duration_us: int, *,
                 skip_nonref: bool) -> tuple[int, int, int]:
    """One pass over the first video stream; returns (frames decoded, packets read,
    packets the decoder rejected as invalid data)."""
    decoded = packets = bad = 0
    next_sample = 0
    with av.open(src) as container:
        stream = _video_stream(container)
        if stream is None:
            return decoded, packets, bad
        if method == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"
        else:
            stream.thread_type = "AUTO"
            if skip_nonref:
                stream.codec_context.skip_frame = "NONREF"
        start_us = _start_us(container)
        times = analyser.times
        for packet in container.demux(stream):
            if packet.size:
                packets += 1
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                bad += 1  # a damaged packet: skip it (counted), keep the rest
                continue
            for frame in frames:
                decoded += 1
                t = _frame_time_us(frame, start_us)
                if t is None:
                    continue
                t = max(0, t)
                if duration_us > 0 and t >= duration_us:
                    return decoded, packets, bad
                if times and t <= times[-1]:
                    continue
                if method == "sampled":
                    if t < next_sample:
                        continue
                    next_sample = (t // SAMPLE_INTERVAL_US + 1) * SAMPLE_INTERVAL_US
                analyser.analyse(frame, t)
    return decoded, packets, bad


def visual_track(
    path: str,
    *,
    duration_us: int,
    hop_us: int = DEFAULT_HOP_US,
    max_side: int = 320,
    progress: Callable[[float], None] | None = None,
    method: Literal["auto", "keyframes", "sampled"] = "auto",
    image_embedder: ImageTextScorer | None = None,
) -> VisualTrack:
    """Faces, motion and scene cuts of the first video stream of ``path`` on a
    ``hop_us`` grid of ``ceil(duration_us / hop_us)`` cells (see the module doc).

    ``method="auto"`` picks key frames or sampled decoding from the key-frame density;
    ``"keyframes"``/``"sampled"`` force one. ``progress`` gets fractions in [0, 1].
    ``image_embedder`` (default off) also stores one image embedding per analysed frame.
    A source without a video stream (cover art does not count) gives an empty track that
    scores 0. A file that
    cannot be opened raises ``CorruptInputError``; undecodable packets are skipped and
    counted in ``undecodable_packets`` (all of them undecodable: ``CorruptInputError``).
    """
    if hop_us <= 0:
        raise ValueError(f"hop_us must be positive, got {hop_us}")
    src = str(path)
    cv2.setNumThreads(2)
    try:
        with av.open(src) as probe_container:
            if _video_stream(probe_container) is None:
                return empty_track(hop_us, "keyframes" if method == "auto" else method)
            if duration_us <= 0 and probe_container.duration:
                duration_us = int(probe_container.duration)
        chosen: Method = _choose_method(src, duration_us) if method == "auto" else method
        reported = [-1.0]

        def report(frac: float) -> None:  # monotone, at most every 1 %
            if progress is not None and frac - reported[0] >= 0.01:
                reported[0] = frac
                progress(frac)

        cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        )
        if cascade.empty():
            raise ConfigError(
                "OpenCV's haarcascade_frontalface_default.xml could not be loaded. "
                "Reinstall opencv-python-headless<5 (5.0 dropped CascadeClassifier)."
            )
        analyser = _Analyser(cascade, max_side, image_embedder, report, duration_us)
        decoded, packets, bad = _decode_pass(src, chosen, analyser, duration_us,
                                             skip_nonref=True)
        expected = duration_us // SAMPLE_INTERVAL_US
        if (chosen == "sampled" and expected >= 4 and len(analyser.times) < expected // 2
                and decoded < packets // 2):
            # Skipping non-reference frames left too few: a stream whose frames are
            # mostly non-reference. Decode everything instead (rare; costs a second pass).
            analyser = _Analyser(cascade, max_side, image_embedder, report, duration_us)
            decoded, packets, bad = _decode_pass(src, chosen, analyser, duration_us,
                                                 skip_nonref=False)
    except av.error.FFmpegError as exc:
        raise CorruptInputError(
            f"{src}: the video stream could not be read ({exc}). Re-export the file "
            "(e.g. `ffmpeg -i IN -c:v libx264 -c:a copy OUT.mp4`) and try again."
        ) from exc
    if bad and decoded == 0:
        raise CorruptInputError(
            f"{src}: none of the video packets decode ({bad} of {packets} rejected as "
            "invalid data). The file is damaged or uses a codec this FFmpeg cannot decode; "
            "re-export it (e.g. `ffmpeg -i IN -c:v libx264 -c:a copy OUT.mp4`) and try again."
        )
    times, diffs, dists = analyser.times, analyser.diffs, analyser.dists
    face_shares = analyser.face_shares
    embeddings = analyser.finish_embeddings()

    n_cells = max(1, -(-duration_us // hop_us)) if duration_us > 0 else max(
        1, (times[-1] // hop_us + 1) if times else 1
    )
    cut_flags = _flag_cuts(dists)
    cuts = tuple(_cut_times(cut_flags, times))
    still = [d for d, is_cut in zip(diffs, cut_flags, strict=True) if not is_cut]
    scale = max(float(np.percentile(still, MOTION_PERCENTILE)) if still else 0.0, MOTION_FLOOR)
    motion_times = [times[i + 1] for i, is_cut in enumerate(cut_flags) if not is_cut]
    motion_values = [min(1.0, d / scale) for d in still]
    faces = _cell_series(n_cells, hop_us, times, [_face_value(s) for s in face_shares],
                         max, "forward")
    motion = _cell_series(n_cells, hop_us, motion_times, motion_values,
                          lambda v: sum(v) / len(v), "backward")
    if progress is not None:
        progress(1.0)
    return VisualTrack(
        hop_us=hop_us,
        faces=tuple(faces),
        motion=tuple(motion),
        scene_cuts=cuts,
        frame_times_us=tuple(times),
        method=chosen,
        image_embeddings=embeddings,
        undecodable_packets=bad,
    )
