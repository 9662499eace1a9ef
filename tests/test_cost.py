"""JobBudget / paid_call accounting, and JobStore.add_cost against real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from clipforge.cost import CHARS_PER_TOKEN_ESTIMATE, JobBudget, paid_call, usage_tokens
from clipforge.errors import BudgetExceeded
from clipforge.metrics import REGISTRY
from clipforge.store import JobStore


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stops() -> float:
    return sample("clipforge_budget_stops_total")


def new_job(store: JobStore) -> int:
    return store.create_job(job_key=f"cost-{uuid.uuid4().hex}", prompt="p", source="s.mp4",
                            parameters={})


def reply(tin: int | None, tout: int | None) -> dict[str, Any]:
    usage = {k: v for k, v in (("prompt_tokens", tin), ("completion_tokens", tout))
             if v is not None}
    return {"choices": [{"message": {"content": "{}"}}], "usage": usage}


def test_charge_books_counters_total_and_record() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    booked: list[tuple[int, float]] = []
    budget = JobBudget(7, None, record=lambda j, usd: booked.append((j, usd)))
    assert budget.charge("prov", model, 1000, 500, 0.25) == 0.25
    assert budget.charge("prov", model, 10, 5, 0.5) == 0.75
    assert budget.spent_usd == 0.75
    assert booked == [(7, 0.25), (7, 0.5)]
    assert sample("clipforge_paid_call_cost_usd_total", provider="prov", model=model) == 0.75
    assert sample("clipforge_paid_call_tokens_total", provider="prov", model=model,
                  direction="in") == 1010
    assert sample("clipforge_paid_call_tokens_total", provider="prov", model=model,
                  direction="out") == 505


def test_charge_over_limit_records_first_then_raises_once_per_job() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    booked: list[float] = []
    budget = JobBudget(3, 0.01, record=lambda j, usd: booked.append(usd))
    before = stops()
    budget.charge("prov", model, 1, 1, 0.004)
    with pytest.raises(BudgetExceeded) as info:
        budget.charge("prov", model, 1, 1, 0.02)
    msg = info.value.message
    assert "$0.010000" in msg and "$0.024000" in msg and "CLIPFORGE_JOB_BUDGET_USD" in msg
    assert info.value.code == "budget_exceeded" and info.value.exit_code == 4
    assert booked == [0.004, 0.02]  # the overrun is on the books
    assert sample("clipforge_paid_call_cost_usd_total", provider="prov", model=model) == (
        pytest.approx(0.024))
    assert stops() == before + 1
    with pytest.raises(BudgetExceeded):
        budget.ensure_available()
    assert stops() == before + 1  # one stop per job


def test_spending_exactly_the_limit_is_allowed_but_leaves_nothing() -> None:
    budget = JobBudget(1, 0.5)
    budget.charge("prov", "m", 0, 0, 0.5)
    assert budget.exhausted
    with pytest.raises(BudgetExceeded):
        budget.ensure_available()


def test_bad_inputs_rejected() -> None:
    with pytest.raises(ValueError):
        JobBudget(1, float("nan"))
    with pytest.raises(ValueError):
        JobBudget(1, -1.0)
    with pytest.raises(ValueError):
        JobBudget(1, None).charge("p", "m", 1, 1, float("inf"))
    with pytest.raises(ValueError):
        JobBudget(1, None).charge("p", "m", -1, 1, 0.1)


@paid_call("unit")
def fake_call(budget: JobBudget, model: str, price_in: float, price_out: float, *,
              answer: Any, calls: list[int], **extra: Any) -> dict[str, Any]:
    calls.append(1)
    if isinstance(answer, Exception):
        raise answer
    return answer


def test_paid_call_charges_usage_before_returning() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    budget = JobBudget(1, None)
    calls: list[int] = []
    got = fake_call(budget, model, 0.5, 2.0, answer=reply(2000, 300), calls=calls)
    assert got == reply(2000, 300)
    assert budget.spent_usd == pytest.approx(2000 / 1000 * 0.5 + 300 / 1000 * 2.0)
    assert sample("clipforge_paid_calls_total", provider="unit", model=model,
                  outcome="ok") == 1


def test_paid_call_over_budget_hides_the_reply() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    budget = JobBudget(1, 0.001)
    calls: list[int] = []
    with pytest.raises(BudgetExceeded):
        fake_call(budget, model, 1.0, 1.0, answer=reply(1000, 0), calls=calls)
    assert budget.spent_usd == pytest.approx(1.0)
    assert sample("clipforge_paid_calls_total", provider="unit", model=model,
                  outcome="over_budget") == 1
    # exhausted: the next call is refused without calling
    with pytest.raises(BudgetExceeded):
        fake_call(budget, model, 1.0, 1.0, answer=reply(1, 1), calls=calls)
    assert calls == [1]


def test_paid_call_failure_is_not_charged() -> None:
    model = f"m-{uuid.uuid4().hex[:8]}"
    budget = JobBudget(1, None)
    with pytest.raises(OSError):
        fake_call(budget, model, 1.0, 1.0, answer=OSError("down"), calls=[])
    assert budget.spent_usd == 0
    assert sample("clipforge_paid_calls_total", provider="unit", model=model,
                  outcome="error") == 1


@pytest.mark.parametrize("usage", [None, {}, {"prompt_tokens": -1, "completion_tokens": 2.5},
                                   {"prompt_tokens": True, "completion_tokens": "3"}])
def test_missing_or_bogus_usage_is_estimated_conservatively(usage: Any) -> None:
    budget = JobBudget(1, None)
    answer: dict[str, Any] = {"choices": [{"message": {"content": "x" * 300}}]}
    if usage is not None:
        answer["usage"] = usage
    big = "y" * 3000  # the request: at least 1000 estimated prompt tokens
    fake_call(budget, "m", 1.0, 1.0, answer=answer, calls=[], padding=big)
    tin, tout, estimated = usage_tokens(answer, 3000)
    assert estimated and tin == 1000 and tout >= 300 // CHARS_PER_TOKEN_ESTIMATE
    assert budget.spent_usd >= (1000 + 100) / 1000


def test_partial_usage_keeps_the_reported_half() -> None:
    tin, tout, estimated = usage_tokens({"usage": {"prompt_tokens": 42}}, 30)
    assert (tin, estimated) == (42, True) and tout > 0
    assert usage_tokens(reply(5, 6), 10_000) == (5, 6, False)


def test_parallel_charges_add_up() -> None:
    booked: list[float] = []
    lock = threading.Lock()

    def record(_: int, usd: float) -> None:
        with lock:
            booked.append(usd)

    budget = JobBudget(1, None, record=record)
    threads = [threading.Thread(target=lambda: [budget.charge("p", "m", 1, 1, 0.125)
                                                for _ in range(100)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.spent_usd == 100.0 and len(booked) == 800


# --------------------------------------------------------------------------- add_cost


def test_add_cost_accumulates_in_the_job_row(job_store: JobStore) -> None:
    job = new_job(job_store)
    assert job_store.add_cost(job, 0.0015) == pytest.approx(0.0015)
    assert job_store.add_cost(job, 0.25) == pytest.approx(0.2515)
    row = job_store.get_job(job)
    assert row is not None and row["cost_usd"] == pytest.approx(0.2515)
    with pytest.raises(ValueError, match="no job"):
        job_store.add_cost(2**31 - 1, 0.1)
    with pytest.raises(ValueError):
        job_store.add_cost(job, -0.1)
    with pytest.raises(ValueError):
        job_store.add_cost(job, float("nan"))


def test_budget_records_into_the_store_including_the_overrun(job_store: JobStore) -> None:
    job = new_job(job_store)
    budget = JobBudget(job, 0.001, record=job_store.add_cost)
    with pytest.raises(BudgetExceeded):
        budget.charge("prov", "m", 1000, 1000, 0.003)
    row = job_store.get_job(job)
    assert row is not None and row["cost_usd"] == pytest.approx(0.003)
    assert budget.spent_usd == pytest.approx(0.003)


def test_budgets_in_two_workers_share_the_store_total(job_store: JobStore) -> None:
    job = new_job(job_store)
    a = JobBudget(job, 0.01, record=job_store.add_cost)
    b = JobBudget(job, 0.01, record=job_store.add_cost)
    a.charge("prov", "m", 1, 1, 0.006)
    with pytest.raises(BudgetExceeded):  # b alone spent 0.005, but the job spent 0.011
        b.charge("prov", "m", 1, 1, 0.005)
    assert b.spent_usd == pytest.approx(0.011)


def test_a_resumed_job_starts_from_what_it_spent(job_store: JobStore) -> None:
    job = new_job(job_store)
    job_store.add_cost(job, 0.009)
    row = job_store.get_job(job)
    assert row is not None
    budget = JobBudget(job, 0.01, record=job_store.add_cost, spent_usd=row["cost_usd"])
    with pytest.raises(BudgetExceeded):
        budget.charge("prov", "m", 1, 1, 0.002)
    with pytest.raises(ValueError):
        JobBudget(job, 0.01, spent_usd=-1.0)
