"""Operator settings from the environment (GOVCLOUD_*), with sane defaults."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the operator reads from its environment, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="GOVCLOUD_", frozen=True)

    platform_namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["govcloud-system", "monitoring", "kube-system"],
        description="Namespaces that may always reach every tenant (monitoring, ingress).",
    )
    resync_seconds: float = Field(default=60.0, gt=0, description="Level-based resync period.")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 turns /metrics off.")
    metrics_host: str = "0.0.0.0"
    liveness_port: int = Field(default=8081, ge=0, le=65535, description="0 turns /healthz off.")
    peering_name: str = "govcloud-operator"
    standalone: bool = Field(default=False, description="Run without kopf peering (no HA).")
    peering_lifetime: int = Field(
        default=60, ge=5, le=3600, description="Seconds a silent peer counts as alive (failover)."
    )
    peering_priority: int | None = Field(
        default=None,
        ge=0,
        description="Peering priority; unset draws a random one so exactly one replica is active.",
    )
    workers: int = Field(default=8, ge=1, le=64, description="Reconciles that run at once.")
    probe_concurrency: int = Field(
        default=8, ge=1, le=64, description="Sub-center probes that run at once."
    )

    @field_validator("platform_namespaces", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


def load() -> Settings:
    return Settings()
