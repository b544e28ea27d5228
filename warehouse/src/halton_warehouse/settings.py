"""The warehouse's one settings object: where ClickHouse is and how its databases are named."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_PORT = 8123


@dataclass(frozen=True)
class Databases:
    """Database names; a prefix gives tests a throwaway set on a shared server."""

    raw: str
    marts: str
    meta: str

    @classmethod
    def with_prefix(cls, prefix: str = "") -> Databases:
        return cls(raw=f"{prefix}raw", marts=f"{prefix}marts", meta=f"{prefix}halton_meta")


class WarehouseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALTON_", extra="ignore")

    clickhouse_url: str = Field(
        default=f"http://127.0.0.1:{EMBEDDED_PORT}/",
        description="http(s)://user:pass@host:port/database for a server, chdb:///path in-process",
    )
    # Set to a cluster name to render DDL with ON CLUSTER and Replicated* engines.
    clickhouse_cluster: str | None = None
    clickhouse_database_prefix: str = ""

    @property
    def databases(self) -> Databases:
        return Databases.with_prefix(self.clickhouse_database_prefix)
