"""Dagster resources: every client an asset uses comes from here, configured per environment.

Assets never build their own clients: the warehouse, the control plane, the provider keys, the billing APIs
and dbt are resources, so tests swap in real throwaway stores and fake billing servers without touching an
asset. Secrets (database URLs, the cloud secret) come from `EnvVar`s in `definitions.py`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import date
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import psycopg
from clickhouse_connect.driver.client import Client
from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation
from packaging.version import Version
from pydantic import Field

from halton_meter.billing_apis.anthropic_billing import AnthropicBillingClient
from halton_meter.billing_apis.billing_contract import BillingClient
from halton_meter.billing_apis.billing_http import RetryPolicy
from halton_meter.billing_apis.openai_billing import OpenAIBillingClient
from halton_meter.billing_apis.recorded_billing import RecordedBillingClient
from halton_meter.billing_apis.xai_billing import XAIBillingClient
from halton_pipelines import dbt_cli
from halton_pipelines.catalogue_source import FetchedCatalogue, read_source
from halton_pipelines.export_destination_reader import ExportDestination, load_destinations, record_run
from halton_pipelines.provider_keys import ProviderConnection, load_connections, record_pull
from halton_warehouse import Databases, WarehouseSettings, connect


class WarehouseResource(dg.ConfigurableResource):
    """The ClickHouse warehouse (the embedded server or a real one) and Halton's database names."""

    clickhouse_url: str = Field(description="http(s)://user:pass@host:port of the ClickHouse HTTP interface")
    database_prefix: str = Field(default="", description="Prefix of the raw/staging/marts databases")

    @property
    def settings(self) -> WarehouseSettings:
        return WarehouseSettings(
            clickhouse_url=self.clickhouse_url, clickhouse_database_prefix=self.database_prefix
        )

    @property
    def databases(self) -> Databases:
        return self.settings.databases

    def client(self, **settings: Any) -> Client:
        return connect(self.clickhouse_url, **settings)


class CatalogueSourceResource(dg.ConfigurableResource):
    """Where the price catalogue is refreshed from (HALTON_PRICES_SOURCE): an http(s) URL, a file path, or
    empty for the catalogue packaged with halton-meter."""

    location: str = Field(default="", description="URL or file path of a rates.json; empty: the packaged one")

    def fetch(self) -> FetchedCatalogue:
        return read_source(self.location)


class ControlPlaneResource(dg.ConfigurableResource):
    """The control plane's PostgreSQL, read for snapshots."""

    database_url: str = Field(description="PostgreSQL URI of the control plane")

    def read(self, query: str) -> pl.DataFrame:
        """A query's rows as a polars frame (uuid and numeric columns come back as text and decimals)."""
        with psycopg.connect(self.database_url) as conn:
            return pl.read_database(query, conn, infer_schema_length=None)


class ProviderKeysResource(dg.ConfigurableResource):
    """Provider admin keys of every workspace, decrypted with the cloud secret when a pull needs them."""

    database_url: str = Field(description="PostgreSQL URI of the control plane")
    secret_key: str = Field(description="The cloud secret (HALTON_SECRET_KEY) the keys are encrypted with")

    def connections(self, provider: str) -> tuple[list[ProviderConnection], list[str]]:
        return load_connections(self.database_url, self.secret_key, provider)

    def record_pull(self, connection: ProviderConnection, day: date, error: str | None) -> None:
        record_pull(self.database_url, connection.workspace_id, connection.provider, day, error)


class ExportDestinationsResource(dg.ConfigurableResource):
    """Every workspace's export bucket, its secret decrypted with the cloud secret when a run uploads."""

    database_url: str = Field(description="PostgreSQL URI of the control plane")
    secret_key: str = Field(description="The cloud secret (HALTON_SECRET_KEY) the secrets are encrypted with")

    def destinations(self) -> list[ExportDestination]:
        return load_destinations(self.database_url, self.secret_key)

    def record_run(
        self, destination: ExportDestination, day: date, *, objects: int, error: str | None
    ) -> None:
        record_run(self.database_url, destination, day, objects=objects, error=error)


class BillingClientsResource(dg.ConfigurableResource):
    """Where billing assets get their billing API clients from."""

    def client(self, provider: str) -> BillingClient:
        raise NotImplementedError


class BillingAPIsResource(BillingClientsResource):
    """Live billing API clients (httpx, retries with backoff, Retry-After). Base URLs are configurable so a
    proxy, or a fake server in tests, can stand in for the providers."""

    openai_base_url: str = "https://api.openai.com"
    anthropic_base_url: str = "https://api.anthropic.com"
    xai_base_url: str = "https://management-api.x.ai"
    timeout_seconds: float = 30.0
    attempts: int = 5
    backoff_seconds: float = 1.0

    def client(self, provider: str) -> BillingClient:
        retry = RetryPolicy(attempts=self.attempts, backoff_seconds=self.backoff_seconds)
        if provider == "openai":
            return OpenAIBillingClient(self.openai_base_url, timeout=self.timeout_seconds, retry=retry)
        if provider == "anthropic":
            return AnthropicBillingClient(self.anthropic_base_url, timeout=self.timeout_seconds, retry=retry)
        if provider == "xai":
            return XAIBillingClient(self.xai_base_url, timeout=self.timeout_seconds, retry=retry)
        raise ValueError(f"no billing API client for provider {provider!r}")


class RecordedBillingResource(BillingClientsResource):
    """Billing answers replayed from JSON files (`<directory>/<provider>/{costs,usage}/<day>.json`)."""

    directory: str

    def client(self, provider: str) -> BillingClient:
        return RecordedBillingClient(provider, Path(self.directory))


class InstalledDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, told dbt's version instead of asking: it runs `dbt --version` before every
    invocation, which starts dbt once more and asks PyPI for the latest release (two requests, up to a second
    each): 2-6 s before each build (bench/RESULTS.md, "First run"). Our dbt is the dbt-core installed here."""

    @cached_property
    def _cli_version(self) -> Version:
        return Version(installed_version("dbt-core"))


class HaltonDbtResource(dg.ConfigurableResource):
    """dbt on the `halton` project, with the profile generated from the warehouse settings."""

    clickhouse_url: str
    database_prefix: str = ""
    threads: int = dbt_cli.DEFAULT_THREADS
    as_of: str = Field(default="", description="The day dbt treats as today (YYYY-MM-DD); empty: today")
    unit_tests: bool = Field(
        default=False,
        description="Run dbt's unit tests in builds too. They test the SQL's logic, not the data: CI and "
        "`halton-dbt build` run them; scheduled builds leave them out, as dbt recommends",
    )
    project_dir: str = Field(default_factory=lambda: str(dbt_cli.project_dir()))

    @property
    def settings(self) -> WarehouseSettings:
        return WarehouseSettings(
            clickhouse_url=self.clickhouse_url, clickhouse_database_prefix=self.database_prefix
        )

    def profiles_dir(self) -> Path:
        """A private directory holding the generated profile (it may contain the warehouse password)."""
        digest = hashlib.sha256(
            f"{self.clickhouse_url}|{self.database_prefix}|{self.threads}".encode()
        ).hexdigest()
        directory = Path(tempfile.gettempdir()) / f"halton-dbt-{os.getuid()}-{digest[:16]}"
        directory.mkdir(mode=0o700, exist_ok=True)
        return dbt_cli.write_profiles(self.settings, directory, threads=self.threads)

    def variables(self) -> dict[str, Any]:
        return dbt_cli.dbt_vars(self.settings, **({"as_of": self.as_of} if self.as_of else {}))

    def build_args(self) -> list[str]:
        return ["build"] if self.unit_tests else ["build", "--exclude-resource-type", "unit_test"]

    def cli(self, args: list[str], *, context: Any = None) -> DbtCliInvocation:
        dbt = InstalledDbtCliResource(
            project_dir=self.project_dir,
            profiles_dir=str(self.profiles_dir()),
            dbt_executable=dbt_cli.dbt_executable(),
        )
        return dbt.cli(dbt_cli.with_vars(args, self.variables()), context=context)


class AlertsResource(dg.ConfigurableResource):
    """Where budget alerts are recorded (the control plane) and how their channels' secrets open."""

    database_url: str = Field(description="PostgreSQL URI of the control plane")
    secret_key: str = Field(
        description="The cloud secret (HALTON_SECRET_KEY) channel secrets are sealed with"
    )
    backoff_seconds: float = Field(default=60.0, description="First retry delay; doubled on each further try")
