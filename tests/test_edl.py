"""The EDL contract: shipped schema, validation, byte-stable serialisation."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

from clipforge.edl import SCHEMA_PATH, Edl, edl_to_bytes, json_schema, load_edl

SHA = "ab" * 32


def sample_edl(**over: object) -> dict:
    doc: dict = {
        "version": "1",
        "source": {"uri": "file:///x/talk.mp4", "sha256": SHA, "duration": 100.0},
        "prompt": "pricing",
        "output": {"width": 1280, "height": 720, "fps": "30000/1001", "loudness_lufs": -14.0},
        "highlights": [
            {"rank": 1, "start": 10.0, "end": 20.5, "score": 0.4, "text": "our pricing",
             "evidence": {"keyword_density": 0.2, "audio_energy": 0.7, "visual": None,
                          "matched_keywords": ["pric"]}},
        ],
        "segments": [{"source_in": 10.0, "source_out": 20.5}],
    }
    doc.update(over)
    return doc


def test_shipped_schema_matches_the_model() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


def test_serialised_edl_validates_against_shipped_schema_and_round_trips(tmp_path) -> None:
    edl = Edl.model_validate(sample_edl())
    data = edl_to_bytes(edl)
    jsonschema.validate(json.loads(data), json.loads(SCHEMA_PATH.read_text()))
    path = tmp_path / "edl.json"
    path.write_bytes(data)
    assert edl_to_bytes(load_edl(path)) == data
    assert data.endswith(b"\n") and b"\n  \"source\"" in data


@pytest.mark.parametrize(
    "bad",
    [
        {"segments": [{"source_in": 5.0, "source_out": 4.0}]},
        {"segments": [{"source_in": 5.0, "source_out": 400.0}]},
        {"segments": [{"source_in": 1.0, "source_out": 2.0,
                       "transition_in": {"type": "cut", "duration": 1.0}}]},
        {"segments": [{"source_in": 1.0, "source_out": 2.0,
                       "transition_in": {"type": "wipe", "duration": 1.0}}]},
        {"segments": [{"source_in": 1.0, "source_out": 2.0,
                       "effects": [{"type": "shell", "params": {"cmd": "rm -rf /"}}]}]},
        {"output": {"width": 1280, "height": 720, "fps": "30;rm", "loudness_lufs": -14.0}},
        {"source": {"uri": "x", "sha256": "nothex", "duration": 1.0}},
        {"highlights": []} | {"extra": 1},
    ],
)
def test_invalid_edls_are_rejected(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Edl.model_validate(sample_edl(**bad))


def test_highlight_ranks_must_be_in_order() -> None:
    doc = sample_edl()
    doc["highlights"][0]["rank"] = 2
    with pytest.raises(ValidationError, match="ranks"):
        Edl.model_validate(doc)
