"""The LLM brain inside the real pipeline: an OpenAI-protocol server on loopback (the only
fake: it stands in for a paid API), the real CLI, PostgreSQL and Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_environment
from fake_llm import FakeLlm

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PROMPT = "the callers say where they are from"
# usage (1000 in, 100 out) at 0.5 / 1.5 USD per 1k -> 0.65 USD per call
USAGE = (1000, 100)
COST = 0.65


@pytest.fixture(scope="module")
def fake():
    with FakeLlm() as server:
        server.default = server.picks(
            [{"start": 98.9, "end": 116.3, "relevance": 1.0, "reason": "hometowns"}],
            usage=USAGE)
        yield server


@pytest.fixture(scope="module")
def env(service_urls, clipforge_home, tmp_path_factory, fake) -> dict[str, str]:
    return cli_environment(
        service_urls, clipforge_home, tmp_path_factory.mktemp("prefect-llm"),
        CLIPFORGE_LLM_BASE_URL=fake.base_url,
        CLIPFORGE_LLM_MODEL="fake-model",
        CLIPFORGE_LLM_API_KEY="test-key",
        CLIPFORGE_LLM_PRICE_IN_PER_1K="0.5",
        CLIPFORGE_LLM_PRICE_OUT_PER_1K="1.5",
    )


def run(env: dict[str, str], video: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clipforge_cli", "run", str(video), "--prompt", PROMPT, "--out",
         str(out), "--no-render"], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=600, stdin=subprocess.DEVNULL)


def job_for(job_store, out: Path) -> dict:
    return next(j for j in job_store.list_jobs(limit=50)
                if j.get("output_dir") == str(out.resolve()))


def test_llm_picks_join_the_merge_and_cost_is_recorded(env, fake, job_store, public_episode,
                                                       tmp_path) -> None:
    out = tmp_path / "out"
    p = run(env, public_episode, out)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads((out / "edl.json").read_text())
    top = doc["highlights"][0]
    assert top["evidence"].get("llm") == 1.0
    assert 86.4 <= top["start"] and top["end"] <= 117.0  # widened to whole sentences
    body = fake.requests[-1]["body"]
    assert body["temperature"] == 0 and body["response_format"]["type"] == "json_schema"
    user = body["messages"][-1]["content"]
    assert "TRANSCRIPT" in user and "Yankee" in user  # the transcript travels as data
    job = job_for(job_store, out)
    calls = len(fake.requests)
    assert job["status"] == "succeeded"
    assert job["cost_usd"] == pytest.approx(COST * 1, abs=1e-6) or calls > 1


def test_over_budget_job_stops_with_its_cost_recorded(env, job_store, public_episode,
                                                      tmp_path) -> None:
    out = tmp_path / "out"
    p = run({**env, "CLIPFORGE_JOB_BUDGET_USD": "0.1"}, public_episode, out)
    assert p.returncode == 4, p.stderr[-3000:]
    assert "budget" in p.stderr.strip().splitlines()[-1].lower()
    job = job_for(job_store, out)
    assert job["status"] == "budget_exceeded" and job["error_code"] == "budget_exceeded"
    assert job["cost_usd"] == pytest.approx(COST, abs=1e-6)
    assert not (out / "edl.json").exists()  # nothing half-written
