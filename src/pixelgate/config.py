"""Settings: command-line flags, ``PIXELGATE_*`` environment variables and their defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelgate.core.request import Limits
from pixelgate.providers.emulator import FaultPlan


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELGATE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("pixelgate-data")
    database_url: str | None = None
    public_url: str | None = Field(None, description="Base of the image URLs the server hands out")
    default_model: str = "gemini-3.1-flash-image"

    emulate: bool = False
    emulate_latency: float = 0.0
    emulate_faults: str = ""
    emulate_fault_seed: int | None = None
    emulate_timeout_after: float = 30.0

    max_body_bytes: int = 64 * 1024 * 1024
    max_prompt_chars: int = 32_000
    max_image_pixels: int = 64 * 1024 * 1024
    max_reference_bytes: int = 20 * 1024 * 1024

    result_ttl_seconds: float = 24 * 3600
    run_workers: bool = True
    worker_concurrency: int = 256
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    max_attempts: int = 5
    shutdown_grace_seconds: float = 10.0
    stream_keepalive_seconds: float = Field(10.0, gt=0)

    @field_validator("emulate_faults")
    @classmethod
    def _faults_parse(cls, value: str) -> str:
        FaultPlan.parse(value)
        return value

    @property
    def limits(self) -> Limits:
        return Limits(
            max_prompt_chars=self.max_prompt_chars,
            max_image_pixels=self.max_image_pixels,
            max_reference_bytes=self.max_reference_bytes,
        )
