"""Render an EDL with FFmpeg: frame-accurate cuts, BT.709, global loudness, FIFO join.

How a render runs
-----------------
1. ``measure_loudness`` (pass 1) runs ``ebur128=peak=true`` once over the whole source
   audio, after the same 48 kHz stereo conversion the render uses.
2. One *segment writer* FFmpeg per EDL segment (per run of crossfaded segments, see
   Transitions) seeks with input seeking
   (``-ss IN -i SRC``; accurate because we re-encode), filters, and writes uncompressed
   ``rawvideo`` yuv420p + ``pcm_f32le`` in NUT into a named pipe (``os.mkfifo`` in a
   private temp dir). No clip files are written.
3. ONE *joiner* FFmpeg reads a concat-demuxer list of those FIFOs (absolute, quoted
   paths with exact ``duration`` lines) and encodes once to H.264 (libx264) + AAC in MP4
   with ``+faststart``. The concat demuxer opens FIFO i+1 only after FIFO i ended, so a
   feeder thread starts the writers one after another.
4. A supervisor watches all processes: if any fails, the others are killed, the temp
   dir (FIFOs, list, logs) and the partial output are removed, and ``RenderError``
   carries the failing argv and its stderr tail.

Exact length
------------
Segment boundaries are quantised on the *cumulative* output timeline: with
``F_k = round(cum_k * fps)`` segment i has ``F_i - F_{i-1}`` frames, and audio has
``A_i - A_{i-1}`` samples with ``A_k = round(F_k / fps * 48000)``, i.e. the audio is cut on
the same (frame-quantised) boundaries as the video, so the concat offsets of both streams
agree. Each stream is padded (``tpad`` clone / ``apad``) and trimmed to exactly that count,
so the output lasts ``sum(segment durations)`` within one frame. After the join the
output's video packets are counted (ffprobe, no decode) and must equal the plan.

Cut points: each input seeks half a source frame before ``source_in`` (accurate seek
keeps frames with ``pts >= seek``), so a segment starts on the source frame *nearest* to
``source_in``, which is robust to float rounding of EDL times; the audio drops that half
frame again (``atrim``) and starts exactly at ``source_in``.

Colour
------
The source's range/matrix/primaries/transfer come from ``MediaInfo``. Untagged values are
assumed (BT.709 for coded height >= 720, SMPTE 170M below; limited range unless the
pixel format is ``yuvj*``; RGB sources such as PNG/GIF get matrix ``gbr``, full range),
written onto the frames with ``setparams`` and then converted explicitly with ``zscale``
to BT.709 limited-range yuv420p (scaling in the same ``zscale``). HDR sources (accepted
by ``probe(tonemap=True)``) go to linear light, are tone-mapped with ``tonemap=hable``
and converted to BT.709. The output carries
``-color_primaries bt709 -color_trc bt709 -colorspace bt709 -color_range tv``.
FFmpeg autorotates; the display aspect (SAR and rotation applied) is kept, the picture is
fitted into the output canvas with a black letterbox/pillarbox and ``setsar=1``, and the
``fps`` filter makes the output CFR (also for VFR sources).

Loudness: one gain for the whole reel
-------------------------------------
Pass 1 measures the whole source once (``ebur128``, with its per-100 ms frame log). The
reel's own integrated loudness is computed from that log — BS.1770 gating over the 400 ms
momentary blocks that lie inside the kept segments — so a reel cut from a quiet part of a
loud source still lands on target without a second pass. Pass 2 applies
``gain = target_I - reel_I`` to every segment; if that would push the reel's true peak
over ``target_TP``, a limiter with fixed parameters (ceiling ``target_TP - 0.5 dB``,
5 ms attack, 50 ms release, latency compensated) follows the gain, the same for every
segment. Each segment's ``gain_db`` from the EDL is added on top. Never per-segment
normalisation: level differences between segments that are in the source stay in the
reel. (``global_gain_db`` — whole-source loudness, gain lowered to respect the peak — is
kept as the fallback rule for a measurement without a frame log.)
Digital silence or no audio -> gain 0. The target comes from the EDL's ``output``
(``loudness_lufs`` / ``true_peak_db``), so a re-render of an EDL gives the same result.

Audio output is always AAC stereo 48 kHz: a source without audio gets silence
(``anullsrc``); an audio-only source is rendered over black video at the EDL's canvas size
and frame rate.

Determinism: ``-threads`` from ``settings.cpu_threads`` on every writer input (decoder)
and on the joiner (x264), plus ``-filter_complex_threads`` for the writers' graphs when
pinned (0 lets FFmpeg decide, which depends on the core count), ``-map_metadata -1``,
bitexact flags, no creation time. With ``cpu_threads=1`` the output is bit-exact for a
given FFmpeg/x264 build (``tests/test_golden.py`` checks a sha256).

Transitions
-----------
- ``cut``.
- ``fade``: dip to black. The previous segment fades out (video and audio) over its
  last ``duration`` seconds and this one fades in over its first ``duration`` seconds.
  The length is unchanged. A fade (or crossfade) on the first segment fades in from black.
- ``crossfade``: ``xfade=transition=fade`` + ``acrossfade`` (triangular), which need both
  sides in one filter graph: segments joined by crossfades are rendered by ONE writer
  (each segment still its own ``-ss IN -i SRC`` input) into one FIFO. The two segments
  overlap by ``duration`` (rounded to whole frames, at most one frame shorter than the
  shorter side), so each crossfade makes the output that much shorter than
  ``sum(segment durations)``; ``RenderResult.duration_s`` reports the real length.

Segment ``effects`` (crop, captions) are reserved: any raises ``RenderError`` (not
supported yet) instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO

from clipforge import ffmpeg
from clipforge.config import Settings
from clipforge.edl import Edl, Segment
from clipforge.errors import RenderError
from clipforge.probe import MediaInfo, VideoInfo

__all__ = [
    "AUDIO_RATE",
    "ColourIn",
    "Loudness",
    "OutputFormat",
    "RenderResult",
    "SegmentPlan",
    "concat_list",
    "escape_concat_path",
    "global_gain_db",
    "reel_gain",
    "reel_loudness",
    "input_colour",
    "join_argv",
    "loudness_argv",
    "measure_loudness",
    "output_format_for",
    "parse_ebur128",
    "PartPlan",
    "part_argv",
    "plan_parts",
    "plan_segments",
    "render",
    "seek_point",
    "video_filter",
]

AUDIO_RATE = 48_000
NO_SEEK_BELOW_S = Fraction(1)  # closer to the start, decode from 0 and trim instead of -ss
_FALLBACK_FPS = Fraction(30)
LIMITER_MARGIN_DB = 0.5  # headroom under the true-peak target for AAC's intersample peaks
_SILENCE_LUFS = -70.0  # ebur128 reports -70 LUFS when everything is gated (silence)


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True, slots=True)
class OutputFormat:
    width: int
    height: int
    fps: Fraction


def _even_floor(x: float) -> int:
    return max(2, int(math.floor(x + 1e-9)) // 2 * 2)


def output_format_for(
    info: MediaInfo, max_width: int = 1280, max_height: int = 720
) -> OutputFormat:
    """Output canvas for ``info``: display aspect kept, fitted in the box, never upscaled,
    even dimensions; fps = source fps if within 1..60 else 30. Audio-only: the box at 30."""
    if info.video is None:
        return OutputFormat(_even_floor(max_width), _even_floor(max_height), _FALLBACK_FPS)
    v = info.video
    dw, dh = v.display_width, v.display_height
    scale = min(Fraction(1), Fraction(max_width, dw), Fraction(max_height, dh))
    fps = v.fps if Fraction(1) <= v.fps <= Fraction(60) else _FALLBACK_FPS
    return OutputFormat(_even_floor(float(dw * scale)), _even_floor(float(dh * scale)), fps)


def _fit(dw: int, dh: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Largest even size with aspect dw:dh inside box_w x box_h."""
    scale = min(Fraction(box_w, dw), Fraction(box_h, dh))
    return min(box_w, _even_floor(float(dw * scale))), min(box_h, _even_floor(float(dh * scale)))


# --------------------------------------------------------------------------- loudness


@dataclass(frozen=True, slots=True)
class Loudness:
    integrated_lufs: float
    true_peak_db: float
    lra: float
    threshold: float
    # Per 100 ms of the source: (end time s, momentary loudness LUFS, true peak dBFS).
    # Lets any subset of the source (a reel's segments) be measured without a new pass.
    frames: tuple[tuple[float, float, float], ...] = ()


def _audio_prep() -> str:
    return f"aresample={AUDIO_RATE},aformat=sample_fmts=fltp:channel_layouts=stereo"


def loudness_argv(path: str | Path, info: MediaInfo) -> list[str]:
    """Pass 1: ebur128 over the whole source audio (after the render's stereo conversion)."""
    if info.audio is None:
        raise ValueError("no audio stream")
    return [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-v",
        "verbose",  # ebur128's per-100 ms frame log is printed at the verbose level
        "-i",
        str(path),
        "-map",
        f"0:{info.audio.index}",
        "-vn",
        "-sn",
        "-dn",
        "-af",
        f"{_audio_prep()},ebur128=peak=true:framelog=verbose",
        "-f",
        "null",
        "-",
    ]


_SUMMARY_RE = {
    "I": re.compile(
        r"Integrated loudness:\s*I:\s*(-?[\d.]+|-?inf|nan)\s*LUFS\s*Threshold:\s*(-?[\d.]+|-?inf)",
        re.S,
    ),
    "LRA": re.compile(r"Loudness range:\s*LRA:\s*(-?[\d.]+|-?inf|nan)\s*LU", re.S),
    "TP": re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-?inf|nan)\s*dBFS", re.S),
}


_FRAME_RE = re.compile(
    r"\bt:\s*(-?[\d.]+)\s+TARGET:.*?\bM:\s*(-?[\d.]+|-?inf|nan)\b.*?FTPK:\s*((?:-?[\d.]+|-?inf)"
    r"(?:\s+(?:-?[\d.]+|-?inf))*)\s*dBFS"
)


def parse_ebur128_frames(stderr: str) -> tuple[tuple[float, float, float], ...]:
    """The per-100 ms frame log: (t, momentary LUFS, max true peak of the channels)."""
    out = []
    for m in _FRAME_RE.finditer(stderr):
        peaks = [float(x) for x in m.group(3).split()]
        out.append((float(m.group(1)), float(m.group(2)), max(peaks)))
    return tuple(out)


def parse_ebur128(stderr: str) -> Loudness | None:
    """Parse the ebur128 summary; ``None`` for digital silence (-inf peak / gated out)."""
    pos = stderr.rfind("Summary:")
    text = stderr[pos:] if pos >= 0 else stderr
    m_i = _SUMMARY_RE["I"].search(text)
    m_lra = _SUMMARY_RE["LRA"].search(text)
    m_tp = _SUMMARY_RE["TP"].search(text)
    if not (m_i and m_tp):
        raise ValueError("no ebur128 summary in FFmpeg output")
    integrated, threshold = float(m_i.group(1)), float(m_i.group(2))
    peak = float(m_tp.group(1))
    lra = float(m_lra.group(1)) if m_lra else 0.0
    if not (math.isfinite(integrated) and math.isfinite(peak)) or integrated <= _SILENCE_LUFS:
        return None
    return Loudness(integrated, peak, lra, threshold, parse_ebur128_frames(stderr))


def measure_loudness(path: str | Path, info: MediaInfo) -> Loudness | None:
    """Pass 1 over the WHOLE source once. ``None`` if there is no audio or only silence."""
    if info.audio is None:
        return None
    argv = loudness_argv(path, info)
    proc = ffmpeg.run(argv)
    try:
        return parse_ebur128(proc.stderr.decode("utf-8", "replace"))
    except ValueError as exc:
        raise RenderError(
            f"{path}: could not read the loudness measurement ({exc}).",
            argv=argv,
            stderr_tail=ffmpeg.stderr_tail(proc.stderr),
        ) from exc


def reel_loudness(loudness: Loudness, segments: Sequence[Segment]
                  ) -> tuple[float, float] | None:
    """Integrated loudness and true peak of just the reel's segments (BS.1770 gating over
    the 400 ms momentary blocks that lie inside a segment), from the one whole-source
    measurement. Falls back to the whole-source figures without a frame log; ``None`` if
    the kept parts are silent."""
    if not loudness.frames:
        return loudness.integrated_lufs, loudness.true_peak_db
    spans = [(seg.source_in, seg.source_out) for seg in segments]
    eps = 1e-6
    blocks = [m for t, m, _ in loudness.frames
              if any(a - eps <= t - 0.4 and t <= b + eps for a, b in spans)]
    peaks = [tp for t, _, tp in loudness.frames
             if any(a < t <= b + 0.1 for a, b in spans)]
    gated = [m for m in blocks if math.isfinite(m) and m > _SILENCE_LUFS]
    if not gated or not peaks:
        return None
    ungated = 10 * math.log10(sum(10 ** (m / 10) for m in gated) / len(gated))
    kept = [m for m in gated if m > ungated - 10]
    integrated = 10 * math.log10(sum(10 ** (m / 10) for m in kept) / len(kept))
    return integrated, max(peaks)


def reel_gain(loudness: Loudness | None, segments: Sequence[Segment], target_lufs: float,
              target_tp_db: float) -> tuple[float, float | None]:
    """One linear gain for every segment, and the limiter ceiling (dBFS) to apply after it
    when the gain would push the reel's true peak past the target (None: no limiter)."""
    if loudness is None:
        return 0.0, None
    measured = reel_loudness(loudness, segments)
    if measured is None:
        return 0.0, None
    integrated, peak = measured
    gain = round(target_lufs - integrated, 2)
    limit = round(target_tp_db - LIMITER_MARGIN_DB, 2) if peak + gain > target_tp_db else None
    return gain, limit


def global_gain_db(loudness: Loudness | None, target_lufs: float, target_tp_db: float) -> float:
    """One gain for the whole reel: target_I - I, lowered so that TP + gain <= target TP."""
    if loudness is None:
        return 0.0
    gain = target_lufs - loudness.integrated_lufs
    gain = min(gain, target_tp_db - loudness.true_peak_db)
    return round(gain, 2)


# --------------------------------------------------------------------------- colour


@dataclass(frozen=True, slots=True)
class ColourIn:
    """The source colour description after defaults for untagged values."""

    range: str  # tv | pc
    matrix: str  # FFmpeg colorspace name
    primaries: str
    transfer: str
    assumed: bool  # True if any value was defaulted


_SDR_TRANSFERS = {
    "bt709",
    "smpte170m",
    "bt470m",
    "bt470bg",
    "smpte240m",
    "linear",
    "iec61966-2-1",
    "bt2020-10",
    "bt2020-12",
    "log100",
    "smpte2084",
    "arib-std-b67",
}
# values FFmpeg's setparams and zscale both accept (checked with FFmpeg 5.1); anything else
# is treated as untagged
_MATRICES = {"bt709", "smpte170m", "bt470bg", "bt2020nc", "bt2020c", "fcc", "smpte240m", "ycgco"}
_PRIMARIES = {
    "bt709", "smpte170m", "bt470bg", "bt470m", "bt2020", "smpte240m", "film",
    "smpte428", "smpte431", "smpte432", "jedec-p22",
}  # fmt: skip


_RGB_PREFIXES = ("rgb", "bgr", "gbr", "argb", "abgr", "0rgb", "0bgr", "x2rgb", "x2bgr", "pal8")


def _is_rgb(pix_fmt: str) -> bool:
    return pix_fmt.startswith(_RGB_PREFIXES)


def input_colour(video: VideoInfo) -> ColourIn:
    """Source colour with defaults: BT.709 for coded height >= 720, SMPTE 170M below;
    limited range unless tagged ``pc`` or the pixel format is ``yuvj*``."""
    hd = video.height >= 720
    default = "bt709" if hd else "smpte170m"
    if _is_rgb(video.pix_fmt):
        # RGB sources (PNG/GIF/ProRes 4444 RGB ...): no matrix, full range
        primaries = video.color_primaries if video.color_primaries in _PRIMARIES else None
        transfer = video.color_transfer if video.color_transfer in _SDR_TRANSFERS else None
        return ColourIn(
            range="pc",
            matrix="gbr",
            primaries=primaries or "bt709",
            transfer=transfer or "bt709",
            assumed=primaries is None or transfer is None,
        )
    assumed = False
    if video.color_range in ("tv", "pc"):
        rng = video.color_range
    else:
        rng = "pc" if video.pix_fmt.startswith("yuvj") else "tv"
        assumed = True
    matrix = video.color_space if video.color_space in _MATRICES else None
    primaries = video.color_primaries if video.color_primaries in _PRIMARIES else None
    transfer = video.color_transfer if video.color_transfer in _SDR_TRANSFERS else None
    if matrix is None or primaries is None or transfer is None:
        assumed = True
    return ColourIn(
        range=rng,
        matrix=matrix or default,
        primaries=primaries or default,
        transfer=transfer or "bt709",
        assumed=assumed,
    )


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """One EDL segment: its frames/samples on the cumulative timeline, fades and gain.

    ``xfade_frames``/``xfade_samples``: overlap with the previous segment when this one
    enters with a crossfade (0 otherwise)."""

    index: int
    source_in: float
    frames: int
    samples: int
    fade_in_frames: int
    fade_out_frames: int
    fade_in_samples: int
    fade_out_samples: int
    gain_db: float
    xfade_frames: int = 0
    xfade_samples: int = 0
    limit_db: float | None = None  # the reel's limiter ceiling, the same for every segment


@dataclass(frozen=True, slots=True)
class PartPlan:
    """One writer process (one FIFO): a segment, or a run of segments joined by
    crossfades (``xfade`` + ``acrossfade`` need both sides in one filter graph)."""

    index: int
    segments: tuple[SegmentPlan, ...]
    frames: int  # output frames of the part (crossfade overlaps removed)
    samples: int

    @property
    def whole(self) -> SegmentPlan:
        """The part as one span: its exact length and the dips at its two ends."""
        first, last = self.segments[0], self.segments[-1]
        return SegmentPlan(
            index=self.index,
            source_in=first.source_in,
            frames=self.frames,
            samples=self.samples,
            fade_in_frames=first.fade_in_frames,
            fade_out_frames=last.fade_out_frames,
            fade_in_samples=first.fade_in_samples,
            fade_out_samples=last.fade_out_samples,
            gain_db=0.0,
        )


def _check_supported(segments: Sequence[Segment]) -> None:
    for i, seg in enumerate(segments):
        if seg.effects:
            kinds = ", ".join(e.type for e in seg.effects)
            raise RenderError(
                f"segment {i}: effects ({kinds}) are reserved and not supported yet; "
                "remove them from the EDL to render."
            )


def plan_segments(
    segments: Sequence[Segment], fps: Fraction, global_gain: float = 0.0,
    limit_db: float | None = None,
) -> list[SegmentPlan]:
    """Frame and sample counts on the cumulative timeline, plus fades, crossfade overlaps
    and gains. A crossfade (or fade) on the first segment fades in from black."""
    if not segments:
        raise RenderError("the EDL has no segments: nothing to render.")
    _check_supported(segments)
    cum = Fraction(0)
    frame_marks = [0]
    for seg in segments:
        cum += Fraction(seg.source_out) - Fraction(seg.source_in)
        frame_marks.append(round(cum * fps))
    sample_marks = [round(Fraction(f) / fps * AUDIO_RATE) for f in frame_marks]
    frames = [b - a for a, b in zip(frame_marks, frame_marks[1:], strict=False)]
    samples = [b - a for a, b in zip(sample_marks, sample_marks[1:], strict=False)]
    for i, seg in enumerate(segments):
        if frames[i] <= 0:
            raise RenderError(
                f"segment {i} ({seg.source_in}-{seg.source_out} s) is shorter than one frame "
                f"at {fps} fps; lengthen or remove it."
            )

    def dip(j: int) -> tuple[int, int]:
        if j >= len(segments):
            return 0, 0
        tr = segments[j].transition_in
        if tr.type == "fade" or (tr.type == "crossfade" and j == 0):
            return round(Fraction(tr.duration) * fps), round(Fraction(tr.duration) * AUDIO_RATE)
        return 0, 0

    plans: list[SegmentPlan] = []
    for i, seg in enumerate(segments):
        fin_f, fin_s = dip(i)
        fout_f, fout_s = dip(i + 1)
        xf = xs = 0
        if seg.transition_in.type == "crossfade" and i > 0:
            limit = min(frames[i - 1], frames[i]) - 1
            if limit < 1:
                raise RenderError(
                    f"segment {i}: too short for a crossfade (needs at least 2 frames on "
                    "both sides); use a cut or lengthen the segments."
                )
            xf = max(1, min(limit, round(Fraction(seg.transition_in.duration) * fps)))
            xs = round(Fraction(xf) / fps * AUDIO_RATE)
        plans.append(
            SegmentPlan(
                index=i,
                source_in=seg.source_in,
                frames=frames[i],
                samples=samples[i],
                fade_in_frames=min(fin_f, frames[i]),
                fade_out_frames=min(fout_f, frames[i]),
                fade_in_samples=min(fin_s, samples[i]),
                fade_out_samples=min(fout_s, samples[i]),
                gain_db=round(global_gain + seg.gain_db, 2),
                xfade_frames=xf,
                xfade_samples=xs,
                limit_db=limit_db,
            )
        )
    return plans


def plan_parts(
    segments: Sequence[Segment], fps: Fraction, global_gain: float = 0.0,
    limit_db: float | None = None,
) -> list[PartPlan]:
    """Group segments into writer parts (a new part at every cut or fade) and give each
    part its exact frame and sample count on the cumulative output timeline."""
    seg_plans = plan_segments(segments, fps, global_gain, limit_db)
    groups: list[list[SegmentPlan]] = []
    for plan in seg_plans:
        if plan.xfade_frames and groups:
            groups[-1].append(plan)
        else:
            groups.append([plan])
    part_frames = [sum(p.frames for p in g) - sum(p.xfade_frames for p in g) for g in groups]
    marks = [0]
    for f in part_frames:
        marks.append(marks[-1] + f)
    sample_marks = [round(Fraction(m) / fps * AUDIO_RATE) for m in marks]
    return [
        PartPlan(
            index=k,
            segments=tuple(g),
            frames=part_frames[k],
            samples=sample_marks[k + 1] - sample_marks[k],
        )
        for k, g in enumerate(groups)
    ]


# --------------------------------------------------------------------------- argv builders


def _fps_str(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def _num(x: float | Fraction) -> str:
    text = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def _exact_video(frames: int) -> list[str]:
    return ["tpad=stop=-1:stop_mode=clone", f"trim=end_frame={frames}", "setpts=PTS-STARTPTS"]


def _exact_audio(samples: int) -> list[str]:
    return ["apad", f"atrim=end_sample={samples}", "asetpts=N/SR/TB"]


def _video_fades(plan: SegmentPlan) -> list[str]:
    steps = []
    if plan.fade_in_frames:
        steps.append(f"fade=t=in:s=0:n={plan.fade_in_frames}")
    if plan.fade_out_frames:
        steps.append(f"fade=t=out:s={plan.frames - plan.fade_out_frames}:n={plan.fade_out_frames}")
    return steps


def _audio_fades(plan: SegmentPlan) -> list[str]:
    steps = []
    if plan.fade_in_samples:
        steps.append(f"afade=t=in:ss=0:ns={plan.fade_in_samples}")
    if plan.fade_out_samples:
        steps.append(
            f"afade=t=out:ss={plan.samples - plan.fade_out_samples}:ns={plan.fade_out_samples}"
        )
    return steps


def video_filter(
    video: VideoInfo | None,
    canvas: OutputFormat,
    plan: SegmentPlan,
    *,
    src_label: str,
    out_label: str = "v",
    lead_trim: Fraction = Fraction(0),
) -> str:
    """Filter chain for one segment's video, ``[src_label] ... [out_label]``.

    Tag (setparams) -> zscale to BT.709 limited at the fitted size -> letterbox pad ->
    setsar=1 -> CFR -> pad/trim to exactly ``plan.frames`` -> dips to black."""
    w, h = canvas.width, canvas.height
    fps = _fps_str(canvas.fps)
    steps: list[str] = []
    if video is None:
        steps += [
            "format=yuv420p",
            "setparams=range=tv:color_primaries=bt709:color_trc=bt709:colorspace=bt709",
        ]
    else:
        c = input_colour(video)
        sw, sh = _fit(video.display_width, video.display_height, w, h)
        if lead_trim > 0:  # the input was not seeked: drop frames before the seek point
            steps.append(f"trim=start={_num(lead_trim)}")
        steps.append("setpts=PTS-STARTPTS")
        if video.width % 2 or video.height % 2:
            # zscale refuses odd sizes with chroma subsampling: drop the odd row/column
            steps.append("crop=floor(iw/2)*2:floor(ih/2)*2:0:0")
        steps += [
            f"fps={fps}",
            f"setparams=range={c.range}:color_primaries={c.primaries}"
            f":color_trc={c.transfer}:colorspace={c.matrix}",
        ]
        if video.hdr:
            steps += [
                "zscale=t=linear:npl=100",
                "format=gbrpf32le",
                "zscale=p=bt709",
                "tonemap=tonemap=hable:desat=0",
                f"zscale=w={sw}:h={sh}:f=bicubic:t=bt709:m=bt709:r=tv",
            ]
        else:
            steps.append(f"zscale=w={sw}:h={sh}:f=bicubic:p=bt709:t=bt709:m=bt709:r=tv")
        steps += [
            "format=yuv420p",
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black",
        ]
    steps += ["setsar=1", *_exact_video(plan.frames), *_video_fades(plan)]
    return f"[{src_label}]" + ",".join(steps) + f"[{out_label}]"


def audio_filter(
    plan: SegmentPlan,
    *,
    src_label: str,
    silent: bool,
    out_label: str = "a",
    skip_samples: int = 0,
) -> str:
    """Filter chain for one segment's audio: 48 kHz stereo, gain, exact sample count.

    ``skip_samples``: audio between where decoding starts and ``source_in``."""
    steps: list[str] = []
    if silent:
        steps.append(_audio_prep())
    else:
        # async + first_pts: fill timestamp gaps (edit lists, VFR phones) with silence and
        # start exactly at the seek point, keeping A/V sync
        steps += [
            f"aresample={AUDIO_RATE}:async=1:first_pts=0",
            "aformat=sample_fmts=fltp:channel_layouts=stereo",
        ]
        if skip_samples > 0:
            steps += [f"atrim=start_sample={skip_samples}", "asetpts=N/SR/TB"]
        if plan.gain_db:
            steps.append(f"volume={plan.gain_db:.2f}dB:precision=double")
        if plan.limit_db is not None:  # fixed parameters: identical for every segment
            steps.append(f"alimiter=limit={10 ** (plan.limit_db / 20):.6f}:level=0:latency=1:"
                         "attack=5:release=50")
    steps += [*_exact_audio(plan.samples), *_audio_fades(plan)]
    return f"[{src_label}]" + ",".join(steps) + f"[{out_label}]"


def _threads(settings: Settings) -> list[str]:
    return ["-threads", str(settings.cpu_threads)]


def _filter_threads(settings: Settings) -> list[str]:
    """Pin the writer's filter graph threads too when threads are pinned (0: FFmpeg's
    default, one per core)."""
    if settings.cpu_threads <= 0:
        return []
    return ["-filter_complex_threads", str(settings.cpu_threads)]


def seek_point(source_in: float, video: VideoInfo | None) -> Fraction:
    """Where a segment's input seek lands: half a source frame before ``source_in``.

    FFmpeg's accurate seek keeps frames with ``pts >= seek``; seeking half a frame early
    makes the segment start on the source frame *nearest* to ``source_in`` (robust to
    float rounding of EDL times). The audio skips that half frame again, so it starts
    exactly at ``source_in``."""
    start = Fraction(source_in)
    if video is None or video.fps <= 0:
        return start
    return max(Fraction(0), start - Fraction(1, 2) / video.fps)


def part_argv(
    src: str | Path,
    info: MediaInfo,
    canvas: OutputFormat,
    part: PartPlan,
    target: str | Path,
    settings: Settings,
) -> list[str]:
    """One writer: input-seek each segment of the part (``-ss IN -i SRC``), filter,
    crossfade them if the part has several, and write rawvideo + PCM in NUT to ``target``."""
    fps = canvas.fps
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-nostats",
            *_filter_threads(settings)]  # fmt: skip
    graph: list[str] = []
    n = len(part.segments)
    skips: list[int] = []
    lead_trims: list[Fraction] = []
    for seg in part.segments:
        seek = seek_point(seg.source_in, info.video)
        read_for = Fraction(seg.frames) / fps + 1
        if seek >= NO_SEEK_BELOW_S:
            argv += [*_threads(settings), "-ss", _num(seek), "-t", _num(read_for),
                     "-i", str(src)]  # fmt: skip
            lead_trims.append(Fraction(0))
            skips.append(round((Fraction(seg.source_in) - seek) * AUDIO_RATE))
        else:
            # FFmpeg 5.1 fails seeks near the start of FLV files (with or without an
            # index): decode from the start and trim the (< 1 s) lead in the filters
            argv += [*_threads(settings), "-t", _num(seek + read_for), "-i", str(src)]
            lead_trims.append(seek)
            skips.append(round(Fraction(seg.source_in) * AUDIO_RATE))
    whole = part.whole
    # video
    if info.video is not None:
        for m, seg in enumerate(part.segments):
            fades = seg if n == 1 else dataclasses.replace(seg, fade_in_frames=0, fade_out_frames=0)
            graph.append(
                video_filter(info.video, canvas, fades, src_label=f"{m}:{info.video.index}",
                             out_label=f"v{m}", lead_trim=lead_trims[m])
            )  # fmt: skip
        graph.append(_xfade_chain(part, fps, whole))
    else:
        argv += [
            "-f", "lavfi", "-i",
            f"color=c=black:s={canvas.width}x{canvas.height}:r={_fps_str(fps)}",
        ]  # fmt: skip
        graph.append(video_filter(None, canvas, whole, src_label=f"{n}:v"))
        n += 1
    # audio
    if info.audio is not None:
        for m, seg in enumerate(part.segments):
            fades = (
                seg
                if len(part.segments) == 1
                else dataclasses.replace(seg, fade_in_samples=0, fade_out_samples=0)
            )
            graph.append(
                audio_filter(fades, src_label=f"{m}:{info.audio.index}", silent=False,
                             skip_samples=skips[m],
                             out_label=f"a{m}")
            )  # fmt: skip
        graph.append(_acrossfade_chain(part, whole))
    else:
        argv += ["-f", "lavfi", "-i", f"anullsrc=r={AUDIO_RATE}:cl=stereo"]
        graph.append(audio_filter(whole, src_label=f"{n}:a", silent=True))
    argv += [
        "-filter_complex", ";".join(graph),
        "-map", "[v]", "-map", "[a]",
        "-c:v", "rawvideo", "-pix_fmt", "yuv420p",
        "-c:a", "pcm_f32le", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-fflags", "+bitexact",
        "-f", "nut", "-y", str(target),
    ]  # fmt: skip
    return argv


def _xfade_chain(part: PartPlan, fps: Fraction, whole: SegmentPlan) -> str:
    """``[v0][v1]xfade...`` over the part's segments, then exact length and end dips."""
    segs = part.segments
    if len(segs) == 1:
        return "[v0]null[v]"
    chain: list[str] = []
    label, length = "v0", segs[0].frames
    for m, seg in enumerate(segs[1:], start=1):
        offset = Fraction(length - seg.xfade_frames) / fps
        out = f"x{m}"
        dur, off = _num(Fraction(seg.xfade_frames) / fps), _num(offset)
        chain.append(f"[{label}][v{m}]xfade=transition=fade:duration={dur}:offset={off}[{out}]")
        label, length = out, length + seg.frames - seg.xfade_frames
    tail = ",".join([*_exact_video(part.frames), *_video_fades(whole)])
    chain.append(f"[{label}]{tail}[v]")
    return ";".join(chain)


def _acrossfade_chain(part: PartPlan, whole: SegmentPlan) -> str:
    segs = part.segments
    if len(segs) == 1:
        return "[a0]anull[a]"
    chain: list[str] = []
    label = "a0"
    for m, seg in enumerate(segs[1:], start=1):
        out = f"y{m}"
        chain.append(f"[{label}][a{m}]acrossfade=ns={seg.xfade_samples}:c1=tri:c2=tri[{out}]")
        label = out
    tail = ",".join([*_exact_audio(part.samples), *_audio_fades(whole)])
    chain.append(f"[{label}]{tail}[a]")
    return ";".join(chain)


def escape_concat_path(path: str | Path) -> str:
    """Quote a path for the concat demuxer: ``'`` becomes ``'\\''`` inside single quotes."""
    return "'" + str(path).replace("'", "'\\''") + "'"


def concat_list(entries: Sequence[tuple[Path, Fraction]]) -> str:
    """An ffconcat list of absolute paths, each with its exact duration."""
    lines = ["ffconcat version 1.0"]
    for path, duration in entries:
        if not Path(path).is_absolute():
            raise ValueError(f"concat entries must be absolute paths: {path}")
        lines.append(f"file {escape_concat_path(path)}")
        lines.append(f"duration {float(duration):.9f}")
    return "\n".join(lines) + "\n"


def join_argv(
    list_path: Path, out_path: Path, canvas: OutputFormat, settings: Settings
) -> list[str]:
    """The joiner: concat demuxer over the FIFOs, one H.264 + AAC encode."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-nostats",
        "-progress", "pipe:1",
        "-f", "concat", "-safe", "0", "-i", str(list_path),
        "-map", "0:v:0", "-map", "0:a:0",
        *_threads(settings),
        "-c:v", "libx264", "-preset", settings.video_preset, "-crf", str(settings.video_crf),
        "-pix_fmt", "yuv420p", "-fps_mode", "passthrough",
        "-color_primaries", "bt709", "-color_trc", "bt709",
        "-colorspace", "bt709", "-color_range", "tv",
        "-c:a", "aac", "-b:a", settings.audio_bitrate, "-ar", str(AUDIO_RATE), "-ac", "2",
        "-map_metadata", "-1", "-map_chapters", "-1",
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
        "-movflags", "+faststart", "-f", "mp4", "-y", str(out_path),
    ]  # fmt: skip


# --------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class RenderResult:
    path: Path
    duration_s: float
    frames: int
    gain_db: float
    used_fifo: bool


class _Supervisor:
    """Runs the joiner plus one writer at a time; any failure stops everything."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.lock = threading.Lock()
        self.stop = False
        self.current: subprocess.Popen[bytes] | None = None
        self.joiner: subprocess.Popen[bytes] | None = None
        self.failures: list[RenderError] = []
        self.feeder: threading.Thread | None = None

    def fail(self, err: RenderError | None = None) -> None:
        """Record ``err`` (if any), stop feeding and kill every running process."""
        with self.lock:
            if err is not None:
                self.failures.append(err)
            self.stop = True
            procs = [p for p in (self.current, self.joiner) if p is not None]
        for p in procs:
            if p.poll() is None:
                p.kill()

    def reap(self, timeout: float = 5.0) -> None:
        """After ``fail()``: wait for the killed processes and the feeder thread."""
        with self.lock:
            procs = [p for p in (self.current, self.joiner) if p is not None]
        for p in procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.feeder is not None and self.feeder is not threading.current_thread():
            self.feeder.join(timeout=timeout)

    def error(self) -> RenderError | None:
        """The most telling failure, with the other processes' stderr appended.

        A writer's own error wins over the joiner's, except a writer that only saw a
        broken pipe (the joiner died first)."""
        if not self.failures:
            return None
        own = [
            f
            for f in self.failures
            if f.message.startswith("segment writer") and "Broken pipe" not in f.stderr_tail
        ]
        joiner = [f for f in self.failures if not f.message.startswith("segment writer")]
        primary = own[0] if own else (joiner or self.failures)[0]
        others = [f for f in self.failures if f is not primary]
        tail = primary.stderr_tail
        for other in others:
            tail += f"\n-- also: {other.message}\n{other.stderr_tail}"
        return RenderError(primary.message, argv=primary.argv, stderr_tail=tail.strip())

    def feed(self, writers: list[list[str]]) -> None:
        for i, argv in enumerate(writers):
            log_path = self.tmp / f"part{i:04d}.log"
            with open(log_path, "wb") as log:
                with self.lock:
                    if self.stop:
                        return
                    try:
                        proc = ffmpeg.popen(argv, stdout=subprocess.DEVNULL, stderr=log)
                    except Exception as exc:
                        proc = None
                        start_error = exc
                    else:
                        self.current = proc
                if proc is None:
                    self.fail(
                        start_error
                        if isinstance(start_error, RenderError)
                        else RenderError(
                            f"could not start segment writer {i}: {start_error}", argv=argv
                        )
                    )
                    return
                rc = proc.wait()
            with self.lock:
                self.current = None
                stopped = self.stop
            if rc != 0:
                tail = ffmpeg.stderr_tail(log_path.read_bytes())
                last = tail.splitlines()[-1] if tail else f"exit status {rc}"
                if not stopped or tail:
                    self.fail(
                        RenderError(
                            f"segment writer {i} failed: {last}", argv=argv, stderr_tail=tail
                        )
                    )
                return
            if stopped:
                return


def _read_progress(
    stream: IO[bytes], total_us: int, progress: Callable[[float], None] | None
) -> None:
    for raw in stream:
        line = raw.decode("ascii", "replace").strip()
        if progress is None or not line.startswith("out_time_us="):
            continue
        try:
            us = int(line.split("=", 1)[1])
        except ValueError:
            continue
        if total_us > 0 and us >= 0:
            progress(min(1.0, us / total_us))


def _verify_frames(path: Path, expected: int) -> None:
    """Count the output's video packets (no decode) and insist on the planned number."""
    argv = [
        "ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
        "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path),
    ]  # fmt: skip
    text = ffmpeg.run(argv, timeout=60).stdout.decode("ascii", "replace").strip()
    try:
        got = int(text.split(",")[0])
    except ValueError:
        got = -1
    if got != expected:
        raise RenderError(
            f"the rendered reel has {got} video frames, the plan has {expected}; the output "
            "was discarded. A segment may lie past the end of the source's video stream "
            "(check the EDL against `clipforge probe`); otherwise report it with the EDL.",
            argv=argv,
        )


def render(
    edl: Edl,
    info: MediaInfo,
    out_path: Path,
    *,
    settings: Settings | None = None,
    loudness: Loudness | None = None,
    progress: Callable[[float], None] | None = None,
    use_fifo: bool = True,
) -> RenderResult:
    """Render ``edl`` over the source described by ``info`` to ``out_path`` (MP4).

    ``loudness`` is pass 1 (``measure_loudness``); when ``None`` and the source has audio
    it is measured here. The output canvas, fps and loudness target come from
    ``edl.output``; encoder settings and threads from ``settings``.

    ``use_fifo=False`` (benchmarks/diagnosis only): the writers first write their NUT
    parts as regular files in the temp dir, one after another, then the same joiner
    reads them. Same filters, same join, same output bytes; costs disk space for the
    uncompressed parts (about 1.4 MB per 720p frame).
    """
    settings = settings or Settings()
    out_path = Path(out_path).expanduser().resolve()
    if not out_path.parent.is_dir():
        raise RenderError(f"{out_path}: the output folder does not exist; create it first.")
    fps = Fraction(edl.output.fps)
    canvas = OutputFormat(_even_floor(edl.output.width), _even_floor(edl.output.height), fps)
    _check_supported(edl.segments)
    if loudness is None and info.audio is not None:
        loudness = measure_loudness(info.path, info)
    gain, limit = reel_gain(loudness, edl.segments, edl.output.loudness_lufs,
                            edl.output.true_peak_db)
    parts = plan_parts(edl.segments, fps, gain, limit)
    total_frames = sum(p.frames for p in parts)
    total_us = round(Fraction(total_frames) / fps * 1_000_000)

    tmp = Path(tempfile.mkdtemp(prefix="clipforge-render-"))
    # FFmpeg creates it (normal permissions); renamed over out_path only on success
    partial = out_path.with_name(f".{out_path.stem}.{secrets.token_hex(6)}.partial.mp4")
    sup = _Supervisor(tmp)
    ok = False
    try:
        entries: list[tuple[Path, Fraction]] = []
        writers: list[list[str]] = []
        for part in parts:
            fifo = tmp / f"part{part.index:04d}.nut"
            if use_fifo:
                os.mkfifo(fifo, 0o600)
            entries.append((fifo, Fraction(part.frames) / fps))
            writers.append(part_argv(info.path, info, canvas, part, fifo, settings))
        list_path = tmp / "segments.ffconcat"
        list_path.write_text(concat_list(entries), encoding="utf-8")
        join = join_argv(list_path, partial, canvas, settings)
        if not use_fifo:
            # temp-file path: write every part to disk first (same supervisor, so a
            # failing writer is reported the same way), then join the files
            sup.feed(writers)
            err = sup.error()
            if err is not None:
                raise err
        join_log = tmp / "join.log"
        with open(join_log, "wb") as jlog:
            joiner = ffmpeg.popen(join, stdout=subprocess.PIPE, stderr=jlog)
            with sup.lock:
                sup.joiner = joiner
            feeder = threading.Thread(
                target=sup.feed, args=(writers if use_fifo else [],), daemon=True
            )
            sup.feeder = feeder
            feeder.start()
            assert joiner.stdout is not None
            _read_progress(joiner.stdout, total_us, progress)
            rc = joiner.wait()
            if rc != 0:
                # let a failed writer report first: its error is usually the cause
                feeder.join(timeout=2)
                tail = ffmpeg.stderr_tail(join_log.read_bytes())
                last = tail.splitlines()[-1] if tail else f"exit status {rc}"
                sup.fail(RenderError(f"joining FFmpeg failed: {last}", argv=join, stderr_tail=tail))
            else:
                # the joiner is done: every writer must have finished too
                feeder.join(timeout=10)
                if feeder.is_alive():
                    sup.fail(
                        RenderError("a segment writer did not finish after the join", argv=join)
                    )
            feeder.join(timeout=30)
        err = sup.error()
        if err is not None:
            raise err
        _verify_frames(partial, total_frames)
        os.replace(partial, out_path)
        ok = True
    finally:
        if not ok:
            sup.fail()
            sup.reap()
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            partial.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    return RenderResult(
        path=out_path,
        duration_s=float(Fraction(total_frames) / fps),
        frames=total_frames,
        gain_db=gain,
        used_fifo=use_fifo,
    )
