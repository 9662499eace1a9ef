"""Faces and shot cuts for the virtual camera, from one PyAV decode of the source.

* ``detect(gray)``: faces on one small gray frame (OpenCV Haar cascades: frontal, plus
  profile on the frame and its mirror image; overlapping boxes merged). Pure per-frame
  work, so it can also run inside the shared visual decode.
* ``FaceSampler``: faces at ``fps`` (display geometry: sample aspect ratio and rotation
  applied; longest side 320 px) fed by ``clipforge.visual``'s decode, detect-then-track
  (``redetect`` near the last box, a full search at shot starts, on loss and every
  ``FULL_EVERY`` samples). The shot cuts come from the same decode's per-frame
  ``clipforge.visual_decode.CutDetector`` (every reference frame, 80 px thumbnails).
* ``face_track(path, duration_us, fps=5)``: that decode's faces and cuts (a thin wrapper
  of ``visual_track(..., faces_fps=fps)``).

Boxes are stored in source display pixels; times are integer microseconds from the
container's start (as ``clipforge.visual``). The result is deterministic and
JSON-serialisable (``FaceTrack.to_json`` / ``from_json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from ..visual_decode import CutDetector, gray_at

__all__ = ["Box", "CutDetector", "FaceSampler", "FaceTrack", "detect", "face_track",
           "mouth_motion", "redetect"]

MIN_FACE = 16  # px on the small frame
SCALE_STEP = 1.2
MIN_NEIGHBORS = 5
MERGE_IOU = 0.3
FLAT_STD = 3.0
FULL_EVERY = 5  # samples: a full-frame search at least this often (new faces appear)
ROI_PAD = 0.5  # a tracked face is searched again in its box grown by this x its width
ROI_SCALE = (0.7, 1.45)  # ... at sizes within these factors of its width
EMPTY_RESCAN = 2  # after a full search found nobody, search again this many samples later

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


def redetect(gray: np.ndarray, tracked: Sequence[Box]) -> list[Box] | None:
    """Each tracked face searched again near where it was (its box grown by
    ``ROI_PAD``, sizes within ``ROI_SCALE``, the cascade that found it): a few pyramid
    levels on a small window instead of the whole frame. None when any face is lost
    (then the caller searches the whole frame)."""
    h, w = gray.shape[:2]
    out: list[Box] = []
    for b in tracked:
        pad = ROI_PAD * b.w
        x0, y0 = max(0, int(b.x - pad)), max(0, int(b.y - pad))
        x1, y1 = min(w, int(b.x + b.w + pad) + 1), min(h, int(b.y + b.h + pad) + 1)
        lo = max(MIN_FACE, int(ROI_SCALE[0] * b.w))
        hi = int(ROI_SCALE[1] * b.w) + 1
        if x1 - x0 < lo or y1 - y0 < lo:
            return None
        roi = gray[y0:y1, x0:x1]
        kw: dict[str, Any] = {"scaleFactor": 1.1, "minNeighbors": MIN_NEIGHBORS,
                              "minSize": (lo, lo), "maxSize": (hi, hi)}
        cands: list[Box] = []
        if b.kind == "frontal":
            cascade = _cascade("haarcascade_frontalface_default.xml")
            for x, y, bw, bh in cascade.detectMultiScale(roi, **kw):
                cands.append(Box(float(x + x0), float(y + y0), float(bw), float(bh), "frontal"))
        else:
            prof = _cascade("haarcascade_profileface.xml")
            rw = x1 - x0
            for x, y, bw, bh in prof.detectMultiScale(roi, **kw):
                cands.append(Box(float(x + x0), float(y + y0), float(bw), float(bh), "profile"))
            for x, y, bw, bh in prof.detectMultiScale(np.ascontiguousarray(roi[:, ::-1]), **kw):
                cands.append(Box(float(x0 + rw - x - bw), float(y + y0), float(bw), float(bh),
                                 "profile"))
        if not cands:
            return None
        best = min(cands, key=lambda c: ((c.cx - b.cx) ** 2 + (c.cy - b.cy) ** 2, c.x, c.y))
        if all(_iou(best, k) < MERGE_IOU for k in out):
            out.append(best)
    return sorted(out, key=lambda b: (-b.w * b.h, b.x, b.y))


class FaceSampler:
    """Faces at ``fps`` from frames of a decode it does not own (``clipforge.visual``'s
    pass calls ``push`` for every decoded frame). Frames are looked at in display
    geometry (sample aspect ratio and rotation applied), longest side ``max_side``.

    Detect, then track: a face found in one sample is searched again near its last box
    (``redetect``); the whole frame is searched at the first sample of a shot, when a
    tracked face is lost, every ``FULL_EVERY`` samples, and while nobody is found every
    ``EMPTY_RESCAN`` samples (the costly case: frontal and both profile searches)."""

    def __init__(self, fps: int, *, sar: Fraction = Fraction(1), frame_us: int = 0,
                 max_side: int = 320, profile: bool = True) -> None:
        self.fps, self.sar, self.max_side, self.profile = fps, sar, max_side, profile
        self.width = self.height = self.rotation = 0  # display geometry, from the first frame
        self.small = (1, 1)
        self.sx = self.sy = self.area = 1.0
        self.step_us = 1_000_000 // fps
        self.frame_us = frame_us or self.step_us
        self.next_t = 0
        self.new_shot = True
        self.tracked: list[Box] = []
        self.since_full = 0
        self.prev: np.ndarray | None = None
        self.times: list[int] = []
        self.boxes: list[tuple[Box, ...]] = []
        self.largest_share = 0.0  # of the latest sample's largest face, of the frame area
        self.full_scans = 0

    def _geometry(self, frame: av.VideoFrame) -> None:
        """Display geometry as ``clipforge.probe`` computes it: width x SAR, then the
        clockwise rotation of the display matrix."""
        rot = (-int(round(float(getattr(frame, "rotation", 0) or 0)))) % 360
        self.rotation = rot if rot in (90, 180, 270) else 0
        pre_w, pre_h = max(2, round(frame.width * self.sar)), frame.height
        self.width, self.height = (pre_h, pre_w) if self.rotation in (90, 270) else (pre_w, pre_h)
        s = min(1.0, self.max_side / max(pre_w, pre_h, 1))
        self.small = (max(1, round(pre_w * s)), max(1, round(pre_h * s)))
        sw, sh = (self.small[1], self.small[0]) if self.rotation in (90, 270) else self.small
        self.sx, self.sy = self.width / sw, self.height / sh
        self.area = float(sw * sh)

    def push(self, frame: av.VideoFrame, t_us: int, new_shot: bool = False) -> None:
        self.new_shot = self.new_shot or new_shot
        half = self.frame_us // 2
        if t_us + half < self.next_t:
            return
        self.next_t = ((t_us + half) // self.step_us + 1) * self.step_us
        if not self.width:
            self._geometry(frame)
        gray = gray_at(frame, self.small)
        if self.rotation:
            gray = np.ascontiguousarray(np.rot90(gray, k=-(self.rotation // 90)))
        found: list[Box] | None = None
        if self.tracked and not self.new_shot and self.since_full < FULL_EVERY - 1:
            found = redetect(gray, self.tracked)
        elif not self.tracked and not self.new_shot and self.since_full < EMPTY_RESCAN - 1:
            found = []  # nobody a moment ago in this shot: the whole-frame search can wait
        if found is None:
            found = detect(gray, profile=self.profile)
            self.since_full = 0
            self.full_scans += 1
        else:
            self.since_full += 1
        self.new_shot = False
        self.tracked = found
        prev = self.prev
        self.prev = gray
        self.times.append(t_us)
        self.boxes.append(tuple(Box(b.x, b.y, b.w, b.h, b.kind, mouth_motion(b, gray, prev))
                                .scaled(self.sx, self.sy) for b in found))
        self.largest_share = max((b.w * b.h for b in found), default=0.0) / self.area

    def track(self, duration_us: int, cuts_us: Sequence[int]) -> FaceTrack:
        return FaceTrack(self.width, self.height, self.fps, self.frame_us, duration_us,
                         tuple(self.times), tuple(self.boxes), tuple(cuts_us))


def face_track(path: str | Path, duration_us: int, fps: int = 5, *, max_side: int = 320,
               profile: bool = True) -> FaceTrack:
    """Faces at ``fps`` and frame-accurate shot cuts of the first video stream of
    ``path``: the faces half of ``clipforge.visual.visual_track(..., faces_fps=fps)``
    (one decode; prefer that call when the visual signals are needed too). A source
    without video gives an empty track."""
    from ..visual import visual_track  # lazy: clipforge.visual imports this module lazily

    vt = visual_track(str(path), duration_us=duration_us, faces_fps=fps, faces_profile=profile)
    if vt.face_track is None:
        return FaceTrack(0, 0, fps, 0, duration_us, (), (), ())
    return vt.face_track
