"""Vertical reframing: a shot-aware, spring-damped virtual camera (issue 11).

Analysis (``faces.face_track``) -> plan (``plan.plan_reframe``, pure, EDL data) ->
render (``filters.reframe_filter_steps``, FFmpeg per-frame expressions).
"""

from .aspect import ALLOWED, output_size, parse_aspect
from .camera import CameraSettings
from .faces import Box, FaceTrack, detect, face_track
from .filters import reframe_filter_steps
from .plan import LAYOUTS, parse_layout, plan_reframe

__all__ = ["ALLOWED", "LAYOUTS", "Box", "CameraSettings", "FaceTrack", "detect", "face_track",
           "output_size", "parse_aspect", "parse_layout", "plan_reframe",
           "reframe_filter_steps"]
