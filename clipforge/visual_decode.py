"""The one PyAV decode behind the visual signals, the shot cuts and the faces.

``decode_pass`` walks the first real video stream once, in presentation order, and
hands every decoded frame (with its time in integer microseconds from the container's
start) to one callback; the consumers (``clipforge.visual``'s analyser, the per-frame
``CutDetector`` here, ``clipforge.reframe.faces.FaceSampler``) decide what they sample.

Decoding cost is kept down where the pictures are only analysed small:

* ``method="keyframes"``: ``skip_frame="NONKEY"`` (key frames only, 40-58x realtime at
  1080p);
* ``method="sampled"``: frame threading (``thread_type="AUTO"``), ``skip_frame="NONREF"``
  (drops the B-frames nobody references: about half the frames of an x264 stream) and
  ``skip_loop_filter=all`` (the deblocking filter is not applied: invisible on a 80-320 px
  gray thumbnail, ~20 % of H.264 decode time). At 1080p this decodes 10 s of H.264 in
  ~0.4 CPU-s instead of ~0.9 CPU-s.

The small gray pictures come from the raw Y plane of 8-bit planar YUV frames (0.3 ms,
no colour conversion), first subsampled by a stride, then resized with
``cv2.INTER_AREA``; other formats go through ``frame.to_ndarray(format="gray")``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any, Literal

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from .timeutil import US_PER_S

Method = Literal["keyframes", "sampled"]
KEYFRAME_SCAN_US = 300 * US_PER_S  # the key-frame density is judged on this much source
SPARSE_KEYFRAME_GAP_US = 2_000_000  # median key-frame gap above this -> sampled decode

FRAME_CUT_THUMB = 80  # px, longest side of the per-frame cut thumbnail
FRAME_CUT_THRESHOLD = 0.30  # histogram total-variation distance, in [0, 1]
FRAME_CUT_MAD = 20.0  # or: mean absolute thumbnail difference, gray levels
FRAME_CUT_JUMP_RATIO = 3.0  # ... and this many times the recent median of the same measure
FRAME_CUT_CONTEXT = 8
FRAME_CUT_MIN_GAP_US = 400_000
FLASH_US = 500_000
FLASH_RETURN = 0.4
REFINE_MAX_US = 10_000_000  # refine a cut only when its key frame is this close before it

_Y_PLANE_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv440p",
     "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"}
)
_NOT_MOTION = av.stream.Disposition.attached_pic | av.stream.Disposition.timed_thumbnails

FrameFn = Callable[[av.VideoFrame, int], bool]  # returns True to stop the pass


def small_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def gray_at(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """8-bit gray picture of ``frame`` resized to ``size`` (width, height)."""
    w, h = size
    if frame.format.name in _Y_PLANE_FORMATS:
        plane = frame.planes[0]
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        y = buf[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
        y = y[: frame.height, : frame.width]
        if (w, h) == (frame.width, frame.height):
            return np.ascontiguousarray(y)
        stride = max(1, min(frame.width // (2 * w), frame.height // (2 * h)))
        if stride > 1:  # INTER_AREA over a strided view: same picture at this size, 5x cheaper
            y = y[::stride, ::stride]
        return cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA)
    out = frame.to_ndarray(format="gray", width=w, height=h)
    return np.ascontiguousarray(out, dtype=np.uint8)


def small_gray(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    return gray_at(frame, small_size(frame.width, frame.height, max_side))


def small_rgb(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    """RGB frame whose shorter side is ``short_side`` (never upscaled): what an
    image embedder resizes and centre-crops to its input size."""
    scale = min(1.0, short_side / max(1, min(frame.width, frame.height)))
    w = max(1, int(round(frame.width * scale)))
    h = max(1, int(round(frame.height * scale)))
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24", width=w, height=h))


def video_stream(container: Any) -> Any | None:
    """The first real video stream: cover art (``attached_pic``, e.g. in an MP3 or M4A)
    and thumbnail tracks are not video."""
    for stream in container.streams.video:
        if not (stream.disposition & _NOT_MOTION):
            return stream
    return None


def start_us(container: Any) -> int:
    start = container.start_time
    return int(start) if start is not None and start > 0 else 0


def ticks_to_us(ticks: int, time_base: Fraction) -> int:
    """``ticks * time_base`` seconds in microseconds, rounded half away from zero
    (integer arithmetic: called for every decoded frame)."""
    num = ticks * time_base.numerator * US_PER_S
    den = time_base.denominator
    if num >= 0:
        return (2 * num + den) // (2 * den)
    return -((-2 * num + den) // (2 * den))


def frame_time_us(frame: av.VideoFrame, origin_us: int) -> int | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return ticks_to_us(int(frame.pts), frame.time_base) - origin_us


def median_keyframe_gap_us(path: str, duration_us: int) -> int | None:
    """Median gap between key frames (demux only, no decoding) over at most the first
    ``KEYFRAME_SCAN_US`` of the source; the end of the scanned span closes the last gap.
    None when fewer than two key frames are seen."""
    with av.open(path) as container:
        stream = video_stream(container)
        if stream is None:
            return None
        origin = start_us(container)
        limit = min(duration_us, KEYFRAME_SCAN_US) if duration_us > 0 else KEYFRAME_SCAN_US
        times: list[int] = []
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            t = ticks_to_us(int(packet.pts), packet.time_base) - origin
            if t > limit:
                break
            if packet.is_keyframe:
                times.append(t)
    times = sorted(set(times))
    if len(times) < 2:
        return None
    edges = times + [limit] if duration_us > 0 and limit > times[-1] else times
    gaps = np.diff(np.asarray(edges, dtype=np.int64))
    return int(np.median(gaps))


def choose_method(path: str, duration_us: int) -> Method:
    gap = median_keyframe_gap_us(path, duration_us)
    if gap is None or gap > SPARSE_KEYFRAME_GAP_US:
        return "sampled"
    return "keyframes"


def decode_pass(src: str, method: Method, on_frame: FrameFn, duration_us: int, *,
                skip_nonref: bool) -> tuple[int, int, int]:
    """One pass over the first video stream, calling ``on_frame(frame, t_us)`` for each
    decoded frame with a strictly increasing time in ``[0, duration_us)``; returns
    (frames decoded, packets read, packets the decoder rejected as invalid data)."""
    decoded = packets = bad = 0
    last_t = -1
    with av.open(src) as container:
        stream = video_stream(container)
        if stream is None:
            return decoded, packets, bad
        if method == "keyframes":
            stream.codec_context.skip_frame = "NONKEY"
        else:
            stream.thread_type = "AUTO"
            stream.codec_context.options = {"skip_loop_filter": "all"}
            if skip_nonref:
                stream.codec_context.skip_frame = "NONREF"
        origin = start_us(container)
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
                t = frame_time_us(frame, origin)
                if t is None:
                    continue
                t = max(0, t)
                if duration_us > 0 and t >= duration_us:
                    return decoded, packets, bad
                if t <= last_t:
                    continue
                last_t = t
                if on_frame(frame, t):
                    return decoded, packets, bad
    return decoded, packets, bad


def gray_hist(gray: np.ndarray, bins: int = 32) -> np.ndarray:
    hist = cv2.calcHist([gray], [0], None, [bins], [0, 256]).reshape(-1)
    total = float(hist.sum())
    return hist / total if total > 0 else hist


class CutDetector:
    """Per-frame shot cuts on ``FRAME_CUT_THUMB`` px thumbnails: the histogram distance or
    the mean absolute difference of consecutive thumbnails jumps over its recent median (a
    pan keeps both high, a cut is a spike). Cuts closer than ``FRAME_CUT_MIN_GAP_US`` to
    the previous one are one transition; a cut's time is the first frame of the new shot.

    With ``skip_frame="NONREF"`` the frames between two decoded ones are not seen. A cut
    is exact when its frame follows the previous decoded one (within 1.5 ``frame_us``) or
    is an intra picture (encoders put one at a scene change); the others are recorded in
    ``ambiguous`` as (previous decoded time, cut time) for ``refine_cuts``. A jump whose
    picture comes back (a frame within ``FLASH_US`` closer to the frame before the jump
    than ``FLASH_RETURN`` x the jump) is a flash or a flicker, not a cut, and is dropped
    (``push`` has already answered True for it: a consumer treats it as a new shot)."""

    def __init__(self, frame_us: int = 0) -> None:
        self.frame_us = frame_us
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.prev_t = -1
        self.recent: list[tuple[float, float]] = []
        self.cuts: list[int] = []
        self.ambiguous: list[tuple[int, int]] = []
        self.flash: tuple[int, np.ndarray, float] | None = None  # latest cut, still on trial

    def push_frame(self, frame: av.VideoFrame, t_us: int) -> bool:
        """Push a decoded frame; True when it starts a new shot."""
        size = small_size(frame.width, frame.height, FRAME_CUT_THUMB)
        prev_t = self.prev_t
        self.prev_t = t_us
        cut = self.push(gray_at(frame, size), t_us)
        if cut and self.frame_us > 0 and t_us - prev_t > 3 * self.frame_us // 2 \
                and frame.pict_type != PictureType.I:
            self.ambiguous.append((prev_t, t_us))
        return cut

    def push(self, thumb: np.ndarray, t_us: int) -> bool:
        h = gray_hist(thumb)
        t16 = thumb.astype(np.int16)
        cut = returned = False
        flash = self.flash
        if flash is not None:  # a cut is a flash when the picture comes back within FLASH_US
            t_cut, before, cut_mad = flash
            if t_us - t_cut > FLASH_US or before.shape != t16.shape:
                self.flash = None
            elif float(np.mean(np.abs(t16 - before))) < FLASH_RETURN * cut_mad:
                self.cuts.remove(t_cut)
                self.ambiguous = [a for a in self.ambiguous if a[1] != t_cut]
                self.flash = None
                returned = True  # this frame's jump is the way back, not a new shot
        if self.prev is not None and self.prev[1].shape == t16.shape:
            d = 0.5 * float(np.abs(h - self.prev[0]).sum())
            mad = float(np.mean(np.abs(t16 - self.prev[1])))
            bd = float(np.median([r[0] for r in self.recent])) if self.recent else 0.0
            bm = float(np.median([r[1] for r in self.recent])) if self.recent else 0.0
            jump = (d >= FRAME_CUT_THRESHOLD and d >= FRAME_CUT_JUMP_RATIO * bd) or (
                mad >= FRAME_CUT_MAD and mad >= FRAME_CUT_JUMP_RATIO * bm)
            if jump and not returned and (
                    not self.cuts or t_us - self.cuts[-1] >= FRAME_CUT_MIN_GAP_US):
                self.cuts.append(t_us)
                self.flash = (t_us, self.prev[1], max(mad, 1.0))
                cut = True
            self.recent = (self.recent + [(d, mad)])[-FRAME_CUT_CONTEXT:]
        self.prev = (h, t16)
        return cut


def refine_cuts(src: str, cuts: list[int], ambiguous: list[tuple[int, int]]) -> list[int]:
    """Place each ambiguous cut (``CutDetector.ambiguous``) on the frame: decode every
    frame from the key frame before it (skipped when that is over ``REFINE_MAX_US``
    earlier) and take the frame after the largest thumbnail change in
    ``(previous decoded, cut]``. Other cuts are returned unchanged."""
    if not ambiguous:
        return cuts
    moved: dict[int, int] = {}
    with av.open(src) as container:
        stream = video_stream(container)
        if stream is None or stream.time_base is None:
            return cuts
        stream.thread_type = "AUTO"
        stream.codec_context.options = {"skip_loop_filter": "all"}
        origin = start_us(container)
        for t_prev, t_cut in ambiguous:
            target = Fraction(t_prev + origin, US_PER_S) / stream.time_base
            container.seek(int(target), stream=stream, backward=True, any_frame=False)
            frames: list[tuple[int, np.ndarray]] = []
            for frame in container.decode(stream):
                t = frame_time_us(frame, origin)
                if t is None:
                    continue
                if not frames and t < t_prev - REFINE_MAX_US:
                    break  # the key frame is too far back: keep the coarse time
                if t >= t_prev:
                    size = small_size(frame.width, frame.height, FRAME_CUT_THUMB)
                    frames.append((t, gray_at(frame, size).astype(np.int16)))
                if t >= t_cut:
                    break
            if len(frames) >= 2:
                mads = [float(np.mean(np.abs(b[1] - a[1]))) if a[1].shape == b[1].shape
                        else 0.0 for a, b in zip(frames, frames[1:], strict=False)]
                moved[t_cut] = frames[1 + int(np.argmax(mads))][0]
    return sorted(moved.get(c, c) for c in cuts)
