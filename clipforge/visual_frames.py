"""Per-frame work of the visual pass (fed by ``clipforge.visual_decode.decode_pass``):
the small gray frames, their histogram distances and differences, the largest face, the
optional image embeddings, and the coarse (2 fps / key-frame) scene-cut flags. The
signals built from them are documented in :mod:`clipforge.visual`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from .errors import ConfigError
from .imagetext import ImageTextScorer
from .visual_decode import (
    CutDetector,
    Method,
    gray_hist,
    refine_cuts,
    small_gray,
    small_rgb,
)

if TYPE_CHECKING:
    from .reframe.faces import FaceSampler

SAMPLE_INTERVAL_US = 500_000  # sampled decode analyses ~2 frames per second
HIST_BINS = 32
CUT_THRESHOLD = 0.35  # total-variation distance between gray histograms, in [0, 1]
CUT_JUMP_RATIO = 3.0  # ... and at least this times the recent median distance
CUT_CONTEXT = 6  # recent pairs the median is taken over
CUT_MERGE_US = 1_000_000  # flagged pairs closer than this to the previous one: one transition
FLAT_STD = 3.0  # frames flatter than this (gray std) are not searched for faces
FACE_MIN_SIDE = 20  # px on the small frame
FACE_SCALE_STEP = 1.2  # Haar pyramid step: 1.1 finds little more here and costs ~2x
EMBED_BATCH = 16


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
    """Per-frame work of one decoding pass: the per-frame cut detector (sampled decode),
    the face sampler (when asked) and, on the analysed frames (every key frame, or ~2 per
    second), small gray frame, histogram distance and absolute difference to the
    previous analysed frame, largest face, optional image embedding (batched)."""

    def __init__(self, cascade: cv2.CascadeClassifier, max_side: int, method: Method,
                 embedder: ImageTextScorer | None, report: Callable[[float], None],
                 duration_us: int, faces: FaceSampler | None, frame_us: int = 0) -> None:
        self.cascade = cascade
        self.max_side = max_side
        self.method = method
        self.embedder = embedder
        self.report = report
        self.duration_us = duration_us
        self.faces = faces
        self.shots = CutDetector(frame_us) if method == "sampled" else None
        self.next_sample = 0
        self.src = ""  # set by the caller: where ambiguous cuts are refined
        self.times: list[int] = []
        self.face_shares: list[float] = []
        self.diffs: list[float] = []  # diffs[i]: frames i and i + 1
        self.dists: list[float] = []
        self.prev_gray: np.ndarray | None = None
        self.prev_hist: np.ndarray | None = None
        self.embeddings: list[np.ndarray] = []
        self.rgb_batch: list[np.ndarray] = []

    def on_frame(self, frame: av.VideoFrame, t: int) -> bool:
        new_shot = self.shots.push_frame(frame, t) if self.shots is not None else False
        if self.faces is not None:
            self.faces.push(frame, t, new_shot)
        if self.method == "sampled":
            if t < self.next_sample:
                return False
            self.next_sample = (t // SAMPLE_INTERVAL_US + 1) * SAMPLE_INTERVAL_US
        self.analyse(frame, t)
        return False

    def analyse(self, frame: av.VideoFrame, t: int) -> None:
        gray = small_gray(frame, self.max_side)
        hist = gray_hist(gray, HIST_BINS)
        if self.prev_gray is not None and self.prev_hist is not None:
            same = self.prev_gray.shape == gray.shape
            self.diffs.append(float(cv2.absdiff(self.prev_gray, gray).mean()) if same else 0.0)
            self.dists.append(0.5 * float(np.abs(hist - self.prev_hist).sum()))
        self.prev_gray, self.prev_hist = gray, hist
        self.times.append(t)
        if self.faces is not None:  # the sampler's latest faces: no second detector run
            self.face_shares.append(self.faces.largest_share)
        else:
            self.face_shares.append(_largest_face_share(self.cascade, gray))
        if self.embedder is not None:
            self.rgb_batch.append(small_rgb(frame, self.embedder.image_size))
            if len(self.rgb_batch) >= EMBED_BATCH:
                self.embeddings.append(self.embedder.embed_images(self.rgb_batch))
                self.rgb_batch = []
        if self.duration_us > 0:
            self.report(min(1.0, t / self.duration_us))

    def cuts(self) -> tuple[int, ...]:
        """Scene cuts: per frame when every reference frame was decoded, plus the
        transitions only the ~2 fps comparison sees (gradual ones: no per-frame jump) that
        are not within ``CUT_MERGE_US`` of a per-frame cut."""
        coarse = _cut_times(_flag_cuts(self.dists), self.times)
        if self.shots is None:
            return tuple(coarse)
        fine = refine_cuts(self.src, self.shots.cuts, self.shots.ambiguous) if self.src \
            else list(self.shots.cuts)
        extra = [c for c in coarse if all(abs(c - f) >= CUT_MERGE_US for f in fine)]
        return tuple(sorted(fine + extra))

    def finish_embeddings(self) -> np.ndarray | None:
        if self.embedder is None:
            return None
        if self.rgb_batch:
            self.embeddings.append(self.embedder.embed_images(self.rgb_batch))
            self.rgb_batch = []
        if not self.embeddings:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.concatenate(self.embeddings, axis=0)


def _load_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
    )
    if cascade.empty():
        raise ConfigError(
            "OpenCV's haarcascade_frontalface_default.xml could not be loaded. "
            "Reinstall opencv-python-headless<5 (5.0 dropped CascadeClassifier)."
        )
    return cascade
