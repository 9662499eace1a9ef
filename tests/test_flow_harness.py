"""The flow once under prefect_test_harness: artifacts a person reads in the UI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import media

from clipforge.contact import THUMB_H, THUMB_W, contact_sheet

pytestmark = pytest.mark.slow


def test_contact_sheet_is_a_labelled_jpeg_even_without_video() -> None:
    jpeg = contact_sheet(media("talk_en_42s__auto-editor_example.mp4"),
                         [(1, 2.0, 6.0), (2, 20.0, 25.0), (3, 30.0, 33.0)])
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (THUMB_H, 3 * THUMB_W, 3)
    assert img[: THUMB_H - 30].mean() > 10  # real frames, not black tiles
    audio_only = contact_sheet(media("speech_en_11s__whisper_jfk.flac"), [(1, 1.0, 5.0)])
    assert cv2.imdecode(np.frombuffer(audio_only, np.uint8), cv2.IMREAD_COLOR) is not None


def test_flow_run_publishes_highlights_table_and_summary(service_urls, clipforge_home,
                                                        monkeypatch, tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.clip import clip_job
    from flows.params import ClipRequest

    monkeypatch.setenv("CLIPFORGE_HOME", str(clipforge_home))
    monkeypatch.setenv("CLIPFORGE_DATABASE_URL", service_urls.database_url)
    monkeypatch.setenv("CLIPFORGE_REDIS_URL", service_urls.redis_url)
    # Prefect's default 30 s start-up wait is too short on a loaded 2-core machine (a
    # CI run with both cores busy timed out there); 180 s.
    with prefect_test_harness(server_startup_timeout=180):
        result = clip_job(ClipRequest(
            video=str(media("speech_en_11s__whisper_jfk.flac")),
            prompt="ask not what your country can do for you",
            out_dir=str(tmp_path / "out"), render=False))
        with get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts()}
    table = artifacts[f"clipforge-job-{result.job_id}-highlights"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert rows[0]["rank"] == 1 and "country" in rows[0]["text"]
    summary = artifacts[f"clipforge-job-{result.job_id}-summary"]
    assert "data:image/jpeg;base64," in str(summary.data)
    assert "processing_time / source_duration" in str(summary.data)
