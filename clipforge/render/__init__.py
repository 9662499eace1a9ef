"""Render an EDL with FFmpeg: frame-accurate cuts, BT.709, global loudness, FIFO join.

How a render runs
-----------------
1. ``measure_spans_loudness`` (pass 1) runs ``ebur128=peak=true`` over the segments the
   render keeps, joined (each input-seeked, so only they are decoded), after the same
   48 kHz stereo conversion the render uses; one gain then applies to every segment.
   (``measure_loudness`` measures a whole source with a per-100 ms frame log, from which
   ``reel_loudness`` takes any subset; it cost a sixth of the CPU on a one-hour source.)
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
reel. Without a frame log the whole-source figures stand in for the reel's.
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

Audio ramps at every cut
------------------------
Every part's audio fades in and out over at least 5 ms (240 samples, at most half the
part), so a cut never clicks; longer dips win. The video is not faded by it, and the
inner ends of a crossfade are left to ``acrossfade``.

Reframing
---------
A segment with ``reframe`` (``Segment.reframe``, planned by :mod:`clipforge.reframe`)
gets :func:`clipforge.reframe.reframe_filter_steps` after the CFR ``fps`` step and before
``setparams`` (its split/overlay/vstack drop colour tags), fed the arriving frame size
(auto-rotated coded size, so non-square pixels are cropped in display geometry). The
canvas is the EDL's ``output`` size, which must equal every reframe's size. Audio-only
sources get black at that canvas.

Burned captions
---------------
With ``captions.mode == "burn"`` and ``words``: the style is resolved for the canvas and
its font checked (``FontMissingError``) before any FFmpeg work; the reel-time ASS
(:func:`clipforge.captions.reel_words` over the same frame plan) is written into the temp
dir and the JOINER runs ``-vf ass=...`` (path escaped for the filter graph), since it
encodes the reel in reel time. One encode as before.

Clip identity
-------------
The joiner writes ``-metadata comment=clipforge clip_id=<id>[,<id>...]`` after
``-map_metadata -1``: the ``clip_id`` of every highlight at least half of which the
segments play (:func:`clip_ids`); none -> no tag.

Segment ``effects`` (crop, captions) are reserved: any raises ``RenderError`` (not
supported yet) instead of being ignored; reframing and captions use the fields above.

Modules: :mod:`.loudness`, :mod:`.colour`, :mod:`.timeline`, :mod:`.filters`,
:mod:`.argv`, :mod:`.runner`; this package re-exports their public names.
"""

from clipforge.render.argv import (
    concat_list,
    escape_concat_path,
    join_argv,
    part_argv,
    seek_point,
)
from clipforge.render.colour import ColourIn, OutputFormat, input_colour, output_format_for
from clipforge.render.filters import audio_filter, video_filter
from clipforge.render.loudness import (
    AUDIO_RATE,
    LIMITER_MARGIN_DB,
    Loudness,
    _audio_prep,
    loudness_argv,
    loudness_spans,
    measure_loudness,
    measure_spans_loudness,
    parse_ebur128,
    parse_ebur128_frames,
    reel_gain,
    reel_loudness,
    spans_loudness_argv,
)
from clipforge.render.runner import RenderResult, clip_ids, render
from clipforge.render.timeline import (
    NO_SEEK_BELOW_S,
    PartPlan,
    SegmentPlan,
    plan_parts,
    plan_segments,
)

__all__ = [
    "AUDIO_RATE",
    "LIMITER_MARGIN_DB",
    "NO_SEEK_BELOW_S",
    "ColourIn",
    "Loudness",
    "OutputFormat",
    "PartPlan",
    "RenderResult",
    "SegmentPlan",
    "_audio_prep",
    "audio_filter",
    "clip_ids",
    "concat_list",
    "escape_concat_path",
    "input_colour",
    "join_argv",
    "loudness_argv",
    "measure_loudness",
    "loudness_spans",
    "measure_spans_loudness",
    "spans_loudness_argv",
    "output_format_for",
    "parse_ebur128",
    "parse_ebur128_frames",
    "part_argv",
    "plan_parts",
    "plan_segments",
    "reel_gain",
    "reel_loudness",
    "render",
    "seek_point",
    "video_filter",
]
