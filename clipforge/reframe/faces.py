"""Faces and shot cuts for the virtual camera, from one PyAV decode of the source.

* ``detect(gray)``: faces on one small gray frame (OpenCV Haar cascades: frontal, plus
  profile on the frame and its mirror image; overlapping boxes merged). Pure per-frame
  work, so it can also run inside the shared visual decode.
* ``face_track(path, duration_us, fps=5)``: every frame is decoded (threaded), faces are
  searched on frames sampled at ``fps`` (longest side ``max_side`` px, display geometry:
  sample aspect ratio and rotation applied), and shot cuts are found on *every* frame
  (32-bin histogram distance of an 80 px thumbnail, a jump over the recent median), so a
  cut is placed to the frame, not to the sampling interval. The visual pass's
  key-frame-only cuts miss most cuts of the face clips (see the report in issue 11).

Boxes are stored in source display pixels; times are integer microseconds from the
container's start (as ``clipforge.visual``). The result is deterministic and
JSON-serialisable (``FaceTrack.to_json`` / ``from_json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..errors import CorruptInputError
from ..probe import probe
from ..visual import _start_us, _ticks_to_us, _video_stream

MIN_FACE = 16  # px on the small frame
SCALE_STEP = 1.2
MIN_NEIGHBORS = 5
MERGE_IOU = 0.3
FLAT_STD = 3.0
CUT_THUMB = 80  # px, longest side of the per-frame cut thumbnail
CUT_THRESHOLD = 0.30  # histogram total-variation distance, in [0, 1]
CUT_MAD = 20.0  # or: mean absolute thumbnail difference, gray levels
CUT_JUMP_RATIO = 3.0  # ... and this many times the recent median of the same measure
CUT_CONTEXT = 8
CUT_MIN_GAP_US = 400_000

_CASCADES: dict[str, cv2.CascadeClassifier] = {}


def _cascade(name: str) -> cv2.CascadeClassifier:
    if name not in _CASCADES:  # loaded on first use, not at import
        folder = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]
        c = cv2.CascadeClassifier(str(folder / name))
        if c.empty():
            raise RuntimeError(f"OpenCV cascade {name} did not load")
        _CASCADES[name] = c
    return _CASCADES[name]


@dataclass(frozen=True, slots=True)
class Box:
    """A face box (top-left x, y, width, height) in the pixels of the frame it was
    found on; ``mouth`` is the mean absolute gray change of its mouth region since the
    previous sample (0-255; 0 when unknown)."""

    x: float
    y: float
    w: float
    h: float
    kind: str = "frontal"
    mouth: float = 0.0

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def scaled(self, sx: float, sy: float) -> Box:
        return Box(round(self.x * sx, 2), round(self.y * sy, 2), round(self.w * sx, 2),
                   round(self.h * sy, 2), self.kind, self.mouth)


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.w * a.h + b.w * b.h - inter
    return inter / union if union > 0 else 0.0


def detect(gray: np.ndarray, *, profile: bool = True) -> list[Box]:
    """Faces on one small 8-bit gray frame, largest first. The profile cascade (on the
    frame and its mirror image) runs only when no frontal face is found."""
    h, w = gray.shape[:2]
    if min(h, w) < MIN_FACE or float(gray.std()) < FLAT_STD:
        return []
    found: list[Box] = []
    kw: dict[str, Any] = {"scaleFactor": SCALE_STEP, "minNeighbors": MIN_NEIGHBORS,
                          "minSize": (MIN_FACE, MIN_FACE)}
    frontal = _cascade("haarcascade_frontalface_default.xml")
    for x, y, bw, bh in frontal.detectMultiScale(gray, **kw):
        found.append(Box(float(x), float(y), float(bw), float(bh), "frontal"))
    if profile and not found:  # profiles only where no frontal face was found (cost)
        prof = _cascade("haarcascade_profileface.xml")
        for x, y, bw, bh in prof.detectMultiScale(gray, **kw):
            found.append(Box(float(x), float(y), float(bw), float(bh), "profile"))
        for x, y, bw, bh in prof.detectMultiScale(np.ascontiguousarray(gray[:, ::-1]), **kw):
            found.append(Box(float(w - x - bw), float(y), float(bw), float(bh), "profile"))
    kept: list[Box] = []
    order = sorted(found, key=lambda b: (b.kind != "frontal", -b.w * b.h, b.x, b.y))
    for b in order:
        if all(_iou(b, k) < MERGE_IOU for k in kept):
            kept.append(b)
    return sorted(kept, key=lambda b: (-b.w * b.h, b.x, b.y))


def mouth_motion(box: Box, gray: np.ndarray, prev: np.ndarray | None) -> float:
    """Mean absolute change of the box's mouth region (lower 40 %, middle 60 %)."""
    if prev is None or prev.shape != gray.shape:
        return 0.0
    x0 = int(box.x + 0.2 * box.w)
    x1 = int(box.x + 0.8 * box.w)
    y0 = int(box.y + 0.6 * box.h)
    y1 = int(min(gray.shape[0], box.y + box.h))
    if x1 <= x0 or y1 <= y0:
        return 0.0
    a = gray[y0:y1, x0:x1].astype(np.int16)
    b = prev[y0:y1, x0:x1].astype(np.int16)
    return round(float(np.mean(np.abs(a - b))), 3)


@dataclass(frozen=True, slots=True)
class FaceTrack:
    """Faces sampled at ``fps`` and frame-accurate shot cuts of one source.

    ``boxes[i]`` are the faces at ``times_us[i]`` in source display pixels
    (``width x height``). ``cuts_us`` holds, per cut, the time of the first frame of the
    new shot; ``frame_us`` is the nominal frame duration."""

    width: int
    height: int
    fps: int
    frame_us: int
    duration_us: int
    times_us: tuple[int, ...]
    boxes: tuple[tuple[Box, ...], ...]
    cuts_us: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "fps": self.fps,
                "frame_us": self.frame_us, "duration_us": self.duration_us,
                "times_us": list(self.times_us), "cuts_us": list(self.cuts_us),
                "boxes": [[[b.x, b.y, b.w, b.h, b.kind, b.mouth] for b in bs]
                          for bs in self.boxes]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FaceTrack:
        return cls(int(d["width"]), int(d["height"]), int(d["fps"]), int(d["frame_us"]),
                   int(d["duration_us"]), tuple(int(t) for t in d["times_us"]),
                   tuple(tuple(Box(float(b[0]), float(b[1]), float(b[2]), float(b[3]),
                                   str(b[4]), float(b[5])) for b in bs) for bs in d["boxes"]),
                   tuple(int(t) for t in d["cuts_us"]))


def _hist(gray: np.ndarray) -> np.ndarray:
    h = cv2.calcHist([gray], [0], None, [32], [0, 256]).reshape(-1)
    return h / max(1.0, float(h.sum()))


class CutDetector:
    """Per-frame shot cuts: the histogram distance or the mean absolute difference of
    consecutive thumbnails jumps over its recent median (a pan keeps both high, a cut
    is a spike). Cuts closer than ``CUT_MIN_GAP_US`` to the previous one are one
    transition."""

    def __init__(self) -> None:
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.recent: list[tuple[float, float]] = []
        self.cuts: list[int] = []

    def push(self, thumb: np.ndarray, t_us: int) -> None:
        h = _hist(thumb)
        t16 = thumb.astype(np.int16)
        if self.prev is not None and self.prev[1].shape == t16.shape:
            d = 0.5 * float(np.abs(h - self.prev[0]).sum())
            mad = float(np.mean(np.abs(t16 - self.prev[1])))
            bd = float(np.median([r[0] for r in self.recent])) if self.recent else 0.0
            bm = float(np.median([r[1] for r in self.recent])) if self.recent else 0.0
            jump = (d >= CUT_THRESHOLD and d >= CUT_JUMP_RATIO * bd) or (
                mad >= CUT_MAD and mad >= CUT_JUMP_RATIO * bm)
            if jump and (not self.cuts or t_us - self.cuts[-1] >= CUT_MIN_GAP_US):
                self.cuts.append(t_us)
            self.recent = (self.recent + [(d, mad)])[-CUT_CONTEXT:]
        self.prev = (h, t16)


def _gray_display(frame: av.VideoFrame, size: tuple[int, int], rotation: int) -> np.ndarray:
    """8-bit gray of ``frame`` resized to ``size`` (pre-rotation display geometry), then
    rotated clockwise by ``rotation`` degrees."""
    if frame.format.name.startswith(("yuv", "nv", "gray")) and "p10" not in frame.format.name \
            and "p12" not in frame.format.name:
        plane = frame.planes[0]
        buf = np.frombuffer(memoryview(plane), dtype=np.uint8)
        y = buf[: plane.height * plane.line_size].reshape(plane.height, plane.line_size)
        g = cv2.resize(y[: frame.height, : frame.width], size, interpolation=cv2.INTER_AREA)
    else:
        g = np.ascontiguousarray(frame.to_ndarray(format="gray", width=size[0], height=size[1]))
    if rotation:
        g = np.ascontiguousarray(np.rot90(g, k=-(rotation // 90)))
    return g


def face_track(path: str | Path, duration_us: int, fps: int = 5, *, max_side: int = 320,
               profile: bool = True) -> FaceTrack:
    """Faces at ``fps`` and shot cuts of the first video stream of ``path`` (see the
    module doc). A source without video gives an empty track."""
    src = str(path)
    info = probe(src)
    v = info.video
    if v is None:
        return FaceTrack(0, 0, fps, 0, duration_us, (), (), ())
    rot = v.rotation
    pre_w, pre_h = (v.display_height, v.display_width) if rot in (90, 270) else (
        v.display_width, v.display_height)
    s = min(1.0, max_side / max(pre_w, pre_h))
    small = (max(1, round(pre_w * s)), max(1, round(pre_h * s)))
    t = min(1.0, CUT_THUMB / max(pre_w, pre_h))
    thumb = (max(1, round(pre_w * t)), max(1, round(pre_h * t)))
    sw, sh = (small[1], small[0]) if rot in (90, 270) else small
    sx, sy = v.display_width / sw, v.display_height / sh
    step_us = 1_000_000 // fps
    frame_us = int(round(1_000_000 / float(v.fps))) if v.fps else step_us
    cv2.setNumThreads(2)
    times: list[int] = []
    boxes: list[tuple[Box, ...]] = []
    cuts = CutDetector()
    prev: np.ndarray | None = None
    next_t = 0
    try:
        container = av.open(src)
    except (av.error.FFmpegError, OSError) as exc:
        raise CorruptInputError(f"{src}: cannot be opened for face tracking ({exc}); "
                                "check the file with `clipforge probe`.") from exc
    with container:
        stream = _video_stream(container)
        if stream is None:
            return FaceTrack(0, 0, fps, 0, duration_us, (), (), ())
        stream.thread_type = "AUTO"
        start = _start_us(container)
        for frame in container.decode(stream):
            if frame.pts is None or frame.time_base is None:
                continue
            t_us = _ticks_to_us(int(frame.pts), frame.time_base) - start
            cuts.push(_gray_display(frame, thumb, rot), t_us)
            if t_us + frame_us // 2 < next_t:
                continue
            next_t = ((t_us + frame_us // 2) // step_us + 1) * step_us
            gray = _gray_display(frame, small, rot)
            found = detect(gray, profile=profile)
            found = [Box(b.x, b.y, b.w, b.h, b.kind, mouth_motion(b, gray, prev)) for b in found]
            prev = gray
            times.append(t_us)
            boxes.append(tuple(b.scaled(sx, sy) for b in found))
    return FaceTrack(v.display_width, v.display_height, fps, frame_us,
                     duration_us or info.duration_us, tuple(times), tuple(boxes),
                     tuple(cuts.cuts))
