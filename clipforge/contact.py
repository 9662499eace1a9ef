"""A contact sheet of the chosen moments: one frame per highlight, labelled, as JPEG bytes."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from .timeutil import fmt_clock, s_to_us

THUMB_W, THUMB_H = 256, 144


def _frame_at(container: av.container.InputContainer, t: float) -> np.ndarray | None:
    stream = container.streams.video[0]
    tb = stream.time_base
    if tb is None:
        return None
    container.seek(int(t / tb), stream=stream, backward=True, any_frame=False)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is not None and frame.time >= t:
            break
    if last is None:
        return None
    return np.asarray(last.to_ndarray(format="bgr24", width=THUMB_W, height=THUMB_H))


def contact_sheet(path: str | Path, moments: list[tuple[int, float, float]],
                  columns: int = 4) -> bytes:
    """JPEG bytes: for each (rank, start, end) the frame at the middle of the moment.

    Audio-only sources get black tiles; the label still shows rank and times.
    """
    tiles: list[np.ndarray] = []
    try:
        container = av.open(str(path))
    except av.error.FFmpegError:
        container = None
    try:
        has_video = container is not None and bool(container.streams.video)
        for rank, start, end in moments:
            img = None
            if has_video and container is not None:
                try:
                    img = _frame_at(container, (start + end) / 2)
                except av.error.FFmpegError:
                    img = None
            tile = img if img is not None else np.zeros((THUMB_H, THUMB_W, 3), np.uint8)
            tile = tile.copy()
            label = f"#{rank} {fmt_clock(s_to_us(start))[2:]}"
            cv2.rectangle(tile, (0, THUMB_H - 22), (THUMB_W, THUMB_H), (0, 0, 0), -1)
            cv2.putText(tile, label, (6, THUMB_H - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (255, 255, 255), 1, cv2.LINE_AA)
            tiles.append(tile)
    finally:
        if container is not None:
            container.close()
    if not tiles:
        tiles = [np.zeros((THUMB_H, THUMB_W, 3), np.uint8)]
    while len(tiles) % columns and len(tiles) > columns:
        tiles.append(np.zeros((THUMB_H, THUMB_W, 3), np.uint8))
    cols = min(columns, len(tiles))
    rows = [np.hstack(tiles[i : i + cols]) for i in range(0, len(tiles), cols)]
    ok, buf = cv2.imencode(".jpg", np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:  # pragma: no cover - cv2 encodes any uint8 BGR image
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())
