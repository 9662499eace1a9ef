"""The one place paid calls are accounted: a per-job budget and the ``paid_call`` wrapper.

Every paid call goes through :func:`paid_call`, which charges the job's :class:`JobBudget`
for the tokens of each reply before anything else sees the reply. ``JobBudget.charge``
first records the money (Prometheus counters, the in-memory job total, the job row via
``record``) and only then enforces the limit, so a call that pushes a job over its budget
is still on the books when :class:`~clipforge.errors.BudgetExceeded` is raised.
Nothing else in clipforge counts cost.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from clipforge import metrics
from clipforge.errors import BudgetExceeded

P = ParamSpec("P")
R = TypeVar("R", bound=dict[str, Any])

# Missing usage is estimated at one token per this many characters (real tokenisers
# average about four for English JSON/prose, so three over-charges on purpose).
CHARS_PER_TOKEN_ESTIMATE = 3


class JobBudget:
    """Money spent on paid calls by one job, with an optional hard limit (USD).

    ``record(job_id, usd)`` persists each charge (``JobStore.add_cost``). If it returns
    a number, that is taken as the job's authoritative total (``add_cost`` returns the
    row's new ``cost_usd``), so budgets in several processes working on the same job
    (chunk fan-out) see each other's spending. ``spent_usd`` starts a resumed job from
    what it already spent (the row's ``cost_usd``). Thread-safe: chunks may call in
    parallel.
    """

    def __init__(self, job_id: int, limit_usd: float | None,
                 record: Callable[[int, float], Any] | None = None, *,
                 spent_usd: float = 0.0) -> None:
        if limit_usd is not None and not (math.isfinite(limit_usd) and limit_usd >= 0):
            raise ValueError(f"a budget limit is a finite USD amount >= 0, got {limit_usd!r}")
        if not (math.isfinite(spent_usd) and spent_usd >= 0):
            raise ValueError(f"spent_usd is a finite USD amount >= 0, got {spent_usd!r}")
        self.job_id = job_id
        self.limit_usd = limit_usd
        self._record = record
        self._spent = float(spent_usd)
        self._stopped = False
        self._lock = threading.Lock()

    # ---------- pickling (Dask ships the budget to worker processes) ----------
    def __getstate__(self) -> dict[str, Any]:
        """The lock is dropped, and ``JobStore.add_cost`` (a bound method of a store
        holding a connection pool, which cannot pickle) becomes a
        :class:`StoreCostRecord` on the store's DSN. A copy keeps booking the same job
        row; its total converges through ``record``'s return value."""
        state = self.__dict__.copy()
        state.pop("_lock", None)
        state["_record"] = _picklable_record(self._record)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def spent_usd(self) -> float:
        return self._spent

    @property
    def exhausted(self) -> bool:
        """True when a limit is set and nothing is left of it."""
        return self.limit_usd is not None and self._spent >= self.limit_usd

    def _stop(self, detail: str) -> BudgetExceeded:
        with self._lock:
            first, self._stopped = not self._stopped, True
        if first:  # one stop per job, however many parallel calls notice it
            metrics.BUDGET_STOPS.inc()
        return BudgetExceeded(
            f"job {self.job_id} spent ${self._spent:.6f} on paid calls, {detail} its budget "
            f"of ${self.limit_usd:.6f}; remedy: raise CLIPFORGE_JOB_BUDGET_USD (or unset it "
            "for no limit), use a cheaper CLIPFORGE_LLM_MODEL, or unset "
            "CLIPFORGE_LLM_BASE_URL to select highlights offline"
        )

    def ensure_available(self) -> None:
        """Raise :class:`BudgetExceeded` if the budget is already used up (before a call)."""
        if self.exhausted:
            raise self._stop("which has used up")

    def charge(self, provider: str, model: str, tokens_in: int, tokens_out: int,
               usd: float) -> float:
        """Book one paid call, then enforce the limit. Returns the job's new total.

        Order matters: counters, job total and ``record`` happen first, so an overrun is
        recorded; then, if the total is above the limit, ``BudgetExceeded`` is raised.
        """
        if not math.isfinite(usd) or usd < 0 or tokens_in < 0 or tokens_out < 0:
            raise ValueError(f"bad charge: usd={usd!r} tokens_in={tokens_in} "
                             f"tokens_out={tokens_out}")
        metrics.PAID_CALL_COST.labels(provider=provider, model=model).inc(usd)
        metrics.PAID_CALL_TOKENS.labels(provider=provider, model=model, direction="in").inc(
            tokens_in)
        metrics.PAID_CALL_TOKENS.labels(provider=provider, model=model, direction="out").inc(
            tokens_out)
        with self._lock:
            self._spent += usd
            total = self._spent
        if self._record is not None:
            stored = self._record(self.job_id, usd)
            if (isinstance(stored, int | float) and not isinstance(stored, bool)
                    and math.isfinite(stored)):
                with self._lock:  # other processes may have spent on this job too
                    self._spent = max(self._spent, float(stored))
                    total = max(total, self._spent)
        if self.limit_usd is not None and total > self.limit_usd:
            raise self._stop(f"last call {provider}/{model} ${usd:.6f}; that is over")
        return total


class StoreCostRecord:
    """A picklable ``record`` for :class:`JobBudget`: ``JobStore.add_cost`` on a DSN.

    Pickles to the DSN alone; in each process it is used in, it shares one small
    ``JobStore`` per DSN (opened on first use, kept for the life of the process), so a
    Dask worker running many chunk tasks holds one connection, not one per task.
    """

    _stores: dict[str, Any] = {}
    _stores_lock = threading.Lock()

    def __init__(self, dsn: str, acquire_timeout: float = 30.0) -> None:
        self.dsn = dsn
        self.acquire_timeout = acquire_timeout

    def __getstate__(self) -> dict[str, Any]:
        return {"dsn": self.dsn, "acquire_timeout": self.acquire_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        from clipforge.db import redact

        return f"StoreCostRecord({redact(self.dsn)!r})"

    def _store(self) -> Any:
        with self._stores_lock:
            store = self._stores.get(self.dsn)
            if store is None:
                from clipforge.store import JobStore  # lazy: store imports config etc.

                store = JobStore(self.dsn, maxconn=2, acquire_timeout=self.acquire_timeout)
                self._stores[self.dsn] = store
            return store

    def __call__(self, job_id: int, usd: float) -> float:
        return float(self._store().add_cost(job_id, usd))


def _picklable_record(record: Callable[[int, float], Any] | None,
                      ) -> Callable[[int, float], Any] | None:
    """``record`` itself, or a :class:`StoreCostRecord` for a bound ``add_cost`` of a
    store whose pool knows its DSN (``JobStore``)."""
    owner = getattr(record, "__self__", None)
    dsn = getattr(getattr(owner, "pool", None), "dsn", None)
    if owner is not None and getattr(record, "__name__", "") == "add_cost" \
            and isinstance(dsn, str):
        timeout = getattr(owner.pool, "acquire_timeout", 30.0)
        return StoreCostRecord(dsn, float(timeout))
    return record


def _count(value: Any) -> int | None:
    """A token count from a usage dict, or None if it is not a sane integer."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _estimate(chars: int) -> int:
    return max(1, -(-chars // CHARS_PER_TOKEN_ESTIMATE))


def usage_tokens(reply: Any, request_chars: int) -> tuple[int, int, bool]:
    """``(tokens_in, tokens_out, estimated)`` for one reply.

    Uses ``reply["usage"]["prompt_tokens"/"completion_tokens"]``. A count that is
    missing or not a non-negative integer is replaced by a conservative estimate: one
    token per ``CHARS_PER_TOKEN_ESTIMATE`` characters of the request (everything passed
    to the call, JSON-serialised) for input, and of the whole reply (JSON-serialised,
    envelope included) for output. That over-charges rather than under-charges.
    """
    usage = reply.get("usage") if isinstance(reply, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    tin, tout = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    estimated = tin is None or tout is None
    if tin is None:
        tin = _estimate(request_chars)
    if tout is None:
        tout = _estimate(len(json.dumps(reply, default=str)))
    return tin, tout, estimated


def call_cost(tokens_in: int, tokens_out: int, price_in_per_1k: float,
              price_out_per_1k: float) -> float:
    return tokens_in / 1000 * price_in_per_1k + tokens_out / 1000 * price_out_per_1k


def paid_call(provider: str) -> Callable[
    [Callable[Concatenate[JobBudget, str, float, float, P], R]],
    Callable[Concatenate[JobBudget, str, float, float, P], R],
]:
    """Decorate ``fn(budget, model, price_in_per_1k, price_out_per_1k, ...) -> reply`` where
    ``reply`` is an OpenAI-style dict with ``usage``.

    - If the budget is already used up, raise ``BudgetExceeded`` without calling ``fn``.
    - Call ``fn``. If it raises (no reply), nothing is charged and the call is counted
      with outcome ``error``.
    - Charge the budget for the reply: ``prompt_tokens/1000 * price_in +
      completion_tokens/1000 * price_out``. When the reply carries no usable ``usage``,
      the tokens are estimated conservatively from the size of the request (all
      arguments after the prices, JSON-serialised) and of the reply; see
      :func:`usage_tokens`.
    - Only then return the reply. If the charge exceeds the budget, ``BudgetExceeded``
      is raised and the reply is never seen by the caller.
    """

    def wrap(fn: Callable[Concatenate[JobBudget, str, float, float, P], R],
             ) -> Callable[Concatenate[JobBudget, str, float, float, P], R]:
        @functools.wraps(fn)
        def call(budget: JobBudget, model: str, price_in_per_1k: float,
                 price_out_per_1k: float, *args: P.args, **kwargs: P.kwargs) -> R:
            budget.ensure_available()
            try:
                reply = fn(budget, model, price_in_per_1k, price_out_per_1k, *args, **kwargs)
            except BaseException:
                metrics.PAID_CALLS.labels(provider=provider, model=model,
                                          outcome="error").inc()
                raise
            request_chars = len(json.dumps([args, kwargs], default=str))
            tin, tout, _ = usage_tokens(reply, request_chars)
            usd = call_cost(tin, tout, price_in_per_1k, price_out_per_1k)
            outcome = "ok"  # a reply arrived and is paid for
            try:
                budget.charge(provider, model, tin, tout, usd)
            except BudgetExceeded:
                outcome = "over_budget"
                raise
            finally:
                metrics.PAID_CALLS.labels(provider=provider, model=model,
                                          outcome=outcome).inc()
            return reply

        return call

    return wrap
