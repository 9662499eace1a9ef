"""Stage checkpoints in Redis: the one module that talks to Redis.

Each job has one hash, ``clipforge:job:{id}:checkpoint``, with the fields

- ``stage``: the stage reached last,
- ``detail``: that stage's detail as JSON,
- ``stages``: the JSON list of stages reached, in the order first reached,
- ``detail:{stage}``: each stage's detail as JSON.

PostgreSQL's ``job_checkpoint`` is the durable copy; this is the fast one a restarted
job reads first.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from clipforge.db import redact
from clipforge.errors import ServiceError

STAGES = ("probed", "analysis_complete", "highlights_generated", "edl_written", "rendered")


def _redact(url: str) -> str:
    """``url`` without its password (``redis://user:***@host``), for messages."""
    return redact(url)


def checkpoint_key(job_id: int) -> str:
    return f"clipforge:job:{int(job_id)}:checkpoint"


class CheckpointStore:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._redis = redis.Redis.from_url(url, decode_responses=True,
                                               socket_connect_timeout=5, socket_timeout=10)
        except ValueError as exc:
            raise ServiceError(
                f"bad Redis URL {_redact(url)!r}: {exc}; remedy: fix CLIPFORGE_REDIS_URL "
                "(redis://host:port/db or unix:///path/redis.sock)"
            ) from exc

    def _error(self, exc: Exception) -> ServiceError:
        return ServiceError(
            f"Redis at {_redact(self.url)} failed: {exc}; remedy: start it "
            "(`clipforge services start`) or fix CLIPFORGE_REDIS_URL"
        )

    def set(self, job_id: int, stage: str, detail: dict[str, Any] | None = None) -> None:
        """Record that ``job_id`` reached ``stage`` (atomically, with its detail)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        key = checkpoint_key(job_id)
        detail_json = json.dumps(detail or {}, sort_keys=True)

        def update(pipe: Any) -> None:
            stages = _decode_stages(pipe.hget(key, "stages"))
            if stage not in stages:
                stages.append(stage)
            pipe.multi()
            pipe.hset(key, mapping={
                "stage": stage,
                "detail": detail_json,
                "stages": json.dumps(stages),
                f"detail:{stage}": detail_json,
            })

        try:
            self._redis.transaction(update, key)
        except redis.RedisError as exc:
            raise self._error(exc) from exc

    def get(self, job_id: int) -> str | None:
        """The stage reached last, or None."""
        try:
            value = self._redis.hget(checkpoint_key(job_id), "stage")
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return str(value) if value is not None else None

    def detail(self, job_id: int, stage: str | None = None) -> dict[str, Any] | None:
        """The detail of ``stage`` (default: the stage reached last), or None."""
        field = "detail" if stage is None else f"detail:{stage}"
        try:
            value = self._redis.hget(checkpoint_key(job_id), field)
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return json.loads(value) if value is not None else None

    def stages(self, job_id: int) -> list[str]:
        """The stages reached, in the order first reached."""
        try:
            value = self._redis.hget(checkpoint_key(job_id), "stages")
        except redis.RedisError as exc:
            raise self._error(exc) from exc
        return _decode_stages(value)

    def clear(self, job_id: int) -> None:
        try:
            self._redis.delete(checkpoint_key(job_id))
        except redis.RedisError as exc:
            raise self._error(exc) from exc

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except (redis.RedisError, OSError):
            return False

    def lock(self, name: str, timeout: float = 60.0) -> Any:
        """A Redis lock (context manager) shared by every clipforge process on this Redis,
        e.g. to serialise the read-add-push of metrics to a Pushgateway group."""
        return self._redis.lock(f"clipforge:lock:{name}", timeout=timeout,
                                blocking_timeout=timeout)

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> CheckpointStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_stages(value: Any) -> list[str]:
    if not value:
        return []
    stages = json.loads(value)
    return [str(s) for s in stages] if isinstance(stages, list) else []
