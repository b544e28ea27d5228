"""The warehouse's one settings object: where ClickHouse is and how its databases are named."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from halton_warehouse.logins import read_logins, with_login
from halton_warehouse.running import running_address

EMBEDDED_PORT = 8123
DEFAULT_DATA_DIR = Path("~/.halton-cloud")
EMBEDDED_DIR = "warehouse"  # the embedded warehouse's data directory, under the cloud's data dir


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
        description="http(s)://user:pass@host:port/database for a server, chdb:///path in-process; "
        "unset: the embedded server, with the admin login it keeps under data_dir",
    )
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR,
        description="The cloud's data dir, where `halton-cloud up` keeps the warehouse.",
    )
    # Set to a cluster name to render DDL with ON CLUSTER and Replicated* engines.
    clickhouse_cluster: str | None = None
    clickhouse_database_prefix: str = ""

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _embedded_login(self) -> WarehouseSettings:
        # Left unset, the URL is the embedded server's: where it runs now (`up` may have given it another
        # port), logged in as it told its owner to.
        if "clickhouse_url" not in self.model_fields_set:
            address = running_address(self.embedded_dir)
            if address is not None:
                self.clickhouse_url = f"{address}/"
            logins = read_logins(self.embedded_dir)
            if logins is not None:
                self.clickhouse_url = with_login(self.clickhouse_url, logins.admin)
        return self

    @property
    def embedded_dir(self) -> Path:
        return self.data_dir / EMBEDDED_DIR

    @property
    def databases(self) -> Databases:
        return Databases.with_prefix(self.clickhouse_database_prefix)
