"""What was on screen, on a fixed time grid: faces, motion and scene cuts (PyAV + OpenCV).

One decoding pass per source (``clipforge.visual_decode``; before it, a demux-only scan
of packet flags over at most the first ``KEYFRAME_SCAN_US`` picks the method):

* ``method="keyframes"``: only key frames are decoded (``skip_frame="NONKEY"``), which
  is 40-58x realtime at 1080p. Used when key frames are dense enough: the median
  key-frame gap (measured by demuxing, not decoding, at most the first
  ``KEYFRAME_SCAN_US`` of the source) is at most ``SPARSE_KEYFRAME_GAP_US`` (2 s).
* ``method="sampled"``: otherwise (long GOPs, a single key frame, short clips), and
  always when ``faces_fps`` > 0 (reframing), every reference frame is decoded
  (``thread_type="AUTO"``, ``skip_frame="NONREF"``, ``skip_loop_filter``) and goes
  through the per-frame shot-cut detector; about ``1 / SAMPLE_INTERVAL_US`` frames per
  second (2 fps) are analysed for the signals below, and with ``faces_fps`` the
  virtual camera's ``FaceSampler`` looks at that many frames per second of the same
  decode. (Should skipping non-reference frames leave fewer than half the expected
  samples, as in a stream of mostly non-reference frames, the pass is repeated
  without it.)

Every analysed frame becomes a small gray image (longest side ``max_side``, default
320 px; rotation and sample aspect ratio are ignored: they do not change these
signals). Times are integer microseconds relative to the container's start time (the
same origin as ``clipforge.probe`` durations and FFmpeg's ``-ss``).

Signals, per analysed frame, then per grid cell ``[i * hop_us, (i + 1) * hop_us)``:

* **faces**: (with ``faces_fps``: the largest face of the face sampler's latest sample)
  OpenCV's Haar frontal-face cascade (``scaleFactor`` 1.2,
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
  interval, 0.5 s, or one key-frame gap). With the sampled decode the cuts are the
  per-frame detector's (``visual_decode.CutDetector``: to the frame, refined where
  skipped frames hid it, flashes dropped), plus the transitions only the 2 fps
  comparison sees (gradual ones) that are not within ``CUT_MERGE_US`` of one of them.

``visual_track`` is deterministic: the same file gives an identical ``VisualTrack``.
Undecodable packets are counted (``VisualTrack.undecodable_packets``); when every packet
fails to decode the file is refused. The optional image embeddings come from
:mod:`clipforge.imagetext`; importing this module does not import torch or transformers.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import av
import cv2
import numpy as np

from .errors import CorruptInputError
from .imagetext import ImageTextScorer, image_text_scores
from .timeutil import US_PER_S
from .visual_decode import (
    KEYFRAME_SCAN_US,
    SPARSE_KEYFRAME_GAP_US,
    Method,
    choose_method,
    decode_pass,
    start_us,
    ticks_to_us,
    video_stream,
)
from .visual_frames import (
    CUT_CONTEXT,
    CUT_JUMP_RATIO,
    CUT_MERGE_US,
    CUT_THRESHOLD,
    SAMPLE_INTERVAL_US,
    _Analyser,
    _cut_times,
    _flag_cuts,
    _load_cascade,
)

if TYPE_CHECKING:
    from .reframe.faces import FaceSampler, FaceTrack

# Kept under their old names (imported by clipforge.reframe and the tests).
_video_stream, _start_us, _ticks_to_us = video_stream, start_us, ticks_to_us
__all__ = ["CUT_CONTEXT", "CUT_JUMP_RATIO", "CUT_MERGE_US", "CUT_THRESHOLD", "KEYFRAME_SCAN_US",
           "SAMPLE_INTERVAL_US", "SPARSE_KEYFRAME_GAP_US", "VisualTrack", "_cut_times",
           "_flag_cuts", "empty_track", "visual_track"]

DEFAULT_HOP_US = 1_000_000
MOTION_PERCENTILE = 95.0
MOTION_FLOOR = 1.5  # gray levels; the normaliser never goes below this
FACE_FULL_SHARE = 0.08  # largest face covering this share of the frame -> faces = 1.0
FACE_WEIGHT = 0.5  # score_between = FACE_WEIGHT * mean(faces) + (1 - FACE_WEIGHT) * mean(motion)


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
    face_track: FaceTrack | None = None  # faces of the same decode (``faces_fps`` > 0)

    def _key(self) -> tuple[Any, ...]:
        return (self.hop_us, self.faces, self.motion, self.scene_cuts, self.frame_times_us,
                self.method, self.undecodable_packets,
                None if self.face_track is None else repr(self.face_track))

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
                "method": self.method, "undecodable_packets": self.undecodable_packets,
                **({} if self.face_track is None else {"face_track": self.face_track.to_json()})}

    @classmethod
    def from_json(cls, data: dict[str, Any],
                  image_embeddings: np.ndarray | None = None) -> VisualTrack:
        return cls(hop_us=int(data["hop_us"]), faces=tuple(float(v) for v in data["faces"]),
                   motion=tuple(float(v) for v in data["motion"]),
                   scene_cuts=tuple(int(v) for v in data["scene_cuts"]),
                   frame_times_us=tuple(int(v) for v in data["frame_times_us"]),
                   method=str(data["method"]), image_embeddings=image_embeddings,
                   undecodable_packets=int(data.get("undecodable_packets", 0)),
                   face_track=_face_track_from_json(data.get("face_track")))

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
        ``0.5 * mean(faces) + 0.5 * mean(motion)`` over the grid cells the range touches.
        0.0 for an empty range or a source without video. The mean, not the max, of the
        faces: a window is as watchable as the share of it that shows a face, and a face
        in its last cell (a window that runs on into the next shot) does not raise all of
        it."""
        cells = self._cells(start_us, end_us)
        if cells is None:
            return 0.0
        i0, i1 = cells
        face = sum(self.faces[i0:i1]) / (i1 - i0)
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


def _face_track_from_json(data: dict[str, Any] | None) -> FaceTrack | None:
    if data is None:
        return None
    from .reframe.faces import FaceTrack  # lazy: clipforge.reframe imports this module

    return FaceTrack.from_json(data)


def empty_track(hop_us: int = DEFAULT_HOP_US, method: str = "keyframes") -> VisualTrack:
    return VisualTrack(hop_us=hop_us, faces=(), motion=(), scene_cuts=(), frame_times_us=(),
                       method=method)


# ---------------------------------------------------------------------------------------
# The track
# ---------------------------------------------------------------------------------------


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


def _face_sampler(stream: Any, faces_fps: int, profile: bool) -> FaceSampler | None:
    if faces_fps <= 0:
        return None
    from .reframe.faces import FaceSampler  # lazy: only when faces are asked

    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    rate = stream.guessed_rate or stream.average_rate
    return FaceSampler(faces_fps, sar=Fraction(sar) if sar else Fraction(1),
                       frame_us=int(round(1_000_000 / float(rate))) if rate else 0,
                       profile=profile)


def visual_track(
    path: str,
    *,
    duration_us: int,
    hop_us: int = DEFAULT_HOP_US,
    max_side: int = 320,
    progress: Callable[[float], None] | None = None,
    method: Literal["auto", "keyframes", "sampled"] = "auto",
    image_embedder: ImageTextScorer | None = None,
    faces_fps: int = 0,
    faces_profile: bool = True,
) -> VisualTrack:
    """Faces, motion and scene cuts of the first video stream of ``path`` on a
    ``hop_us`` grid of ``ceil(duration_us / hop_us)`` cells (see the module doc).

    ``method="auto"`` picks key frames or sampled decoding from the key-frame density;
    ``"keyframes"``/``"sampled"`` force one. ``progress`` gets fractions in [0, 1].
    ``image_embedder`` (default off) also stores one image embedding per analysed frame.
    ``faces_fps`` > 0 (reframing): the same decode (sampled) also yields the virtual
    camera's faces at that rate, in ``VisualTrack.face_track`` (its ``cuts_us`` are
    ``scene_cuts``); ``faces_profile=False`` leaves the profile cascade out.
    A source without a video stream (cover art does not count) gives an empty track that
    scores 0. A file that cannot be opened raises ``CorruptInputError``; undecodable
    packets are skipped and counted in ``undecodable_packets`` (all of them undecodable:
    ``CorruptInputError``).
    """
    if hop_us <= 0:
        raise ValueError(f"hop_us must be positive, got {hop_us}")
    src = str(path)
    cv2.setNumThreads(2)
    try:
        with av.open(src) as probe_container:
            stream = video_stream(probe_container)
            if stream is None:
                return empty_track(hop_us, "keyframes" if method == "auto" else method)
            if duration_us <= 0 and probe_container.duration:
                duration_us = int(probe_container.duration)
            sampler = _face_sampler(stream, faces_fps, faces_profile)
            rate = stream.guessed_rate or stream.average_rate
            frame_us = int(round(US_PER_S / float(rate))) if rate else 0
        if faces_fps > 0:
            chosen: Method = "sampled"
        else:
            chosen = choose_method(src, duration_us) if method == "auto" else method
        reported = [-1.0]

        def report(frac: float) -> None:  # monotone, at most every 1 %
            if progress is not None and frac - reported[0] >= 0.01:
                reported[0] = frac
                progress(frac)

        cascade = _load_cascade()

        def run(skip_nonref: bool) -> tuple[_Analyser, int, int, int]:
            faces = None if sampler is None else copy.deepcopy(sampler)  # fresh per pass
            an = _Analyser(cascade, max_side, chosen, image_embedder, report, duration_us,
                           faces, frame_us)
            an.src = src
            return (an, *decode_pass(src, chosen, an.on_frame, duration_us,
                                     skip_nonref=skip_nonref))

        analyser, decoded, packets, bad = run(True)
        expected = duration_us // SAMPLE_INTERVAL_US
        if (chosen == "sampled" and expected >= 4 and len(analyser.times) < expected // 2
                and decoded < packets // 2):
            # Skipping non-reference frames left too few: a stream whose frames are
            # mostly non-reference. Decode everything instead (rare; costs a second pass).
            analyser, decoded, packets, bad = run(False)
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
    times, diffs = analyser.times, analyser.diffs
    embeddings = analyser.finish_embeddings()
    n_cells = max(1, -(-duration_us // hop_us)) if duration_us > 0 else max(
        1, (times[-1] // hop_us + 1) if times else 1
    )
    cut_flags = _flag_cuts(analyser.dists)
    cuts = analyser.cuts()
    still = [d for d, is_cut in zip(diffs, cut_flags, strict=True) if not is_cut]
    scale = max(float(np.percentile(still, MOTION_PERCENTILE)) if still else 0.0, MOTION_FLOOR)
    motion_times = [times[i + 1] for i, is_cut in enumerate(cut_flags) if not is_cut]
    motion_values = [min(1.0, d / scale) for d in still]
    faces = _cell_series(n_cells, hop_us, times, [_face_value(s) for s in analyser.face_shares],
                         max, "forward")
    motion = _cell_series(n_cells, hop_us, motion_times, motion_values,
                          lambda v: sum(v) / len(v), "backward")
    sampler = analyser.faces
    if progress is not None:
        progress(1.0)
    return VisualTrack(
        hop_us=hop_us, faces=tuple(faces), motion=tuple(motion), scene_cuts=cuts,
        frame_times_us=tuple(times), method=chosen, image_embeddings=embeddings,
        undecodable_packets=bad,
        face_track=None if sampler is None else sampler.track(duration_us, cuts),
    )
