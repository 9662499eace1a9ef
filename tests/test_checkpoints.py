"""CheckpointStore against the real private Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from clipforge.checkpoints import STAGES, CheckpointStore, checkpoint_key
from clipforge.errors import ServiceError
from clipforge.supervise import ServiceUrls


@pytest.fixture
def store(service_urls: ServiceUrls) -> Iterator[CheckpointStore]:
    with CheckpointStore(service_urls.redis_url) as s:
        yield s


def test_stages_are_the_pipeline_order() -> None:
    assert STAGES == ("probed", "analysis_complete", "highlights_generated", "edl_written",
                      "rendered")


def test_set_get_stages_clear(store: CheckpointStore, service_urls: ServiceUrls) -> None:
    job = 101
    store.clear(job)
    assert store.get(job) is None and store.stages(job) == [] and store.detail(job) is None
    store.set(job, "probed", {"duration": 447.7})
    store.set(job, "analysis_complete", {"chunks": 2})
    store.set(job, "probed", {"duration": 447.7, "again": True})  # a re-run: no duplicate
    assert store.get(job) == "probed"
    assert store.stages(job) == ["probed", "analysis_complete"]
    assert store.detail(job) == {"again": True, "duration": 447.7}
    assert store.detail(job, "analysis_complete") == {"chunks": 2}

    raw = redis.Redis.from_url(service_urls.redis_url, decode_responses=True)
    try:
        fields = raw.hgetall(checkpoint_key(job))
        assert checkpoint_key(job) == "clipforge:job:101:checkpoint"
        assert fields["stage"] == "probed"
        assert json.loads(fields["stages"]) == ["probed", "analysis_complete"]
        assert json.loads(fields["detail"]) == {"again": True, "duration": 447.7}
    finally:
        raw.close()

    store.clear(job)
    assert store.get(job) is None and store.stages(job) == []


def test_unknown_stage_is_refused(store: CheckpointStore) -> None:
    with pytest.raises(ValueError, match="unknown stage"):
        store.set(1, "halfway")


def test_concurrent_writers_lose_no_stage(store: CheckpointStore) -> None:
    job = 202
    store.clear(job)
    barrier = threading.Barrier(len(STAGES))
    errors: list[BaseException] = []

    def write(stage: str) -> None:
        try:
            barrier.wait(5)
            for _ in range(20):
                store.set(job, stage, {"stage": stage})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(s,)) for s in STAGES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(store.stages(job)) == sorted(STAGES)
    store.clear(job)


def test_unreachable_redis(tmp_path: Path) -> None:
    dead = CheckpointStore(f"unix://{tmp_path}/nothing.sock")
    try:
        started = time.monotonic()
        assert dead.ping() is False
        with pytest.raises(ServiceError, match="Redis at unix://"):
            dead.get(1)
        assert time.monotonic() - started < 10
    finally:
        dead.close()
    with pytest.raises(ServiceError, match="bad Redis URL"):
        CheckpointStore("http://not-redis")


def test_errors_never_print_the_redis_password() -> None:
    secret = "s3cr3t-pw"
    for url in (f"redis://user:{secret}@127.0.0.1:1/0", f"redis://:{secret}@127.0.0.1:1/0",
                f"rediss://default:{secret}@127.0.0.1:1/0"):
        store = CheckpointStore(url)
        try:
            with pytest.raises(ServiceError) as info:
                store.get(1)
            assert secret not in str(info.value) and "***@127.0.0.1:1" in str(info.value)
        finally:
            store.close()
    with pytest.raises(ServiceError) as bad:
        CheckpointStore(f"http://user:{secret}@host/0")
    assert secret not in str(bad.value)
