"""The weekly retrain: how published clips did re-tunes the scoring weights (guarded)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from clipforge import metrics
from clipforge.clip_store import ClipStore
from clipforge.config import load_settings
from clipforge.feedback.learn import retrain
from clipforge.store import JobStore
from clipforge.supervise import ensure_services


@flow(name="retrain-weights", validate_parameters=True)
def retrain_weights() -> dict[str, Any]:
    """Fit candidate weights from the imported outcomes; adopt them only when there are
    enough samples and they beat the weights in force on held-out clips."""
    logger = get_run_logger()
    settings = load_settings()
    store = JobStore.from_settings(settings, ensure_services(settings).database_url)
    try:
        store.migrate()
        result = retrain(ClipStore(store))
    finally:
        store.close()
    metrics.set_feedback(result.in_force.version, result.sample_count,
                         result.heldout_spearman, result.baseline_spearman)
    if settings.pushgateway_url:
        metrics.push(settings.pushgateway_url, grouping={"deployment": "weekly-retrain"})
    logger.info("retrain: %s with %d samples; weights in force: version %d", result.status,
                result.sample_count, result.in_force.version)
    return result.to_json()
