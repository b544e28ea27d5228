"""The cloud's one settings object, read from `HALTON_*` environment variables.

Defaults are for a laptop (`halton-cloud up`): embedded stores under `~/.halton-cloud`, development mode.
Production sets `HALTON_ENV=production`, `HALTON_DATABASE_URL`, `HALTON_CLICKHOUSE_URL`,
`HALTON_SECRET_KEY` and `HALTON_PUBLIC_URL`, and behind a reverse proxy `HALTON_FORWARDED_ALLOW_IPS`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from halton_meter.billing_apis.anthropic_billing import ANTHROPIC_BASE_URL
from halton_meter.billing_apis.openai_billing import OPENAI_BASE_URL
from halton_meter.billing_apis.xai_billing import XAI_MANAGEMENT_BASE_URL
from halton_warehouse import WarehouseSettings
from halton_warehouse.warehouse_settings import DEFAULT_DATA_DIR

log = logging.getLogger(__name__)

SECRET_FILE = "secret.key"
# Batches from a meter are at most 5,000 rows (halton_meter.protocol.MAX_ROWS_PER_BATCH); a row is about
# 700 bytes of JSON, so 5,000 rows fit well inside 8 MiB. Both limits apply to the decompressed body too.
DEFAULT_MAX_BATCH_ROWS = 5_000
DEFAULT_MAX_BATCH_BYTES = 8 * 1024 * 1024
# No metered call is older (OpenAI's API, the first of them, opened in June 2020).
DEFAULT_INGEST_EARLIEST = date(2020, 1, 1)
_PLACEHOLDER_SECRETS = {
    "",
    "changethis",
    "change-me",
    "changeme",
    "secret",
    "placeholder",
    "dev",
    "development",
}
MIN_SECRET_LENGTH = 32
# By import path: uvicorn imports it, and the protocol module imports these settings.
SLOW_CLIENT_PROTOCOL = "halton_api.slow_clients:SlowClientProtocol"


class SettingsError(ValueError):
    """The settings cannot run the service as configured."""


class CloudSettings(BaseSettings):
    """Everything the cloud API and `halton-cloud` need to know, from `HALTON_*` variables."""

    model_config = SettingsConfigDict(env_prefix="HALTON_", extra="ignore")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Field(
        default=DEFAULT_DATA_DIR, description="Embedded stores and the dev secret live here."
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URI; unset starts a PostgreSQL from the pgserver wheel under data_dir.",
    )
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    secret_key: SecretStr | None = Field(
        default=None, description="Signs CSRF tokens. Required outside development; 32+ characters."
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL users open (links, cookies)."
    )
    # NoDecode: the variable is a comma-separated list, as uvicorn's own FORWARDED_ALLOW_IPS, not JSON.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks, comma-separated; `*` for any) whose "
        "X-Forwarded-For / X-Forwarded-Proto the API believes. Empty: it believes none, and the client "
        "address is always the peer's, so a header can neither dodge a rate limit nor spend someone else's.",
    )

    max_batch_rows: int = Field(default=DEFAULT_MAX_BATCH_ROWS, ge=1)
    reconcile_max_days: int = Field(
        default=90,
        ge=1,
        le=366,
        description="The longest range of UTC days one `GET /v1/daemon/reconcile` may ask for (one scan of "
        "the device's rows in the warehouse per ask).",
    )
    reconcile_max_uids: int = Field(
        default=2_000,
        ge=1,
        le=5_000,
        description="The most request_uids one `POST /v1/daemon/reconcile/missing` may send (a meter sends a "
        "busy day in several asks; the uids go inline, so 5,000 at most keeps the query under 262 KB).",
    )
    max_batch_bytes: int = Field(default=DEFAULT_MAX_BATCH_BYTES, ge=1024)
    # The window a metered call's started_at and ended_at must fall in (halton_api.ingest_window); a batch
    # with a row outside it is refused whole (422, naming row and field). The marts keep hours and days as
    # ClickHouse DateTime and Date, which hold 1970 to 2106: the bounds keep the window inside them.
    ingest_earliest_date: date = Field(
        default=DEFAULT_INGEST_EARLIEST,
        ge=date(1970, 1, 1),
        description="Calls that started before this day (00:00 UTC) are refused: a laptop clock gone wrong.",
    )
    ingest_max_future_skew_hours: float = Field(
        default=24.0,
        ge=0,
        le=24 * 366,
        description="How far ahead of this server's clock a call's times may be (meters' clocks drift).",
    )
    device_new_projects_per_hour: int = Field(
        default=100,
        ge=1,
        description="New projects one device's batches may register per hour; past it, 429 with Retry-After. "
        "Projects the workspace already has never count.",
    )

    session_ttl_days: int = Field(default=30, ge=1)
    invitation_ttl_days: int = Field(default=7, ge=1)

    # Bad credentials, counted per kind (password, API key, sync token: one kind's failures never hold up
    # another) per client address, and per presented token: a burst, then a trickle. A valid token or key is
    # never refused by them; a password is, from an address over its limit (else spraying goes on).
    bad_auth_burst: int = Field(default=10, ge=1)
    bad_auth_per_minute: float = Field(default=6.0, gt=0)
    # Each account's failed sign-ins, whatever address they come from (kept in PostgreSQL, so every API
    # process agrees): from the sign_in_lock_after-th failure on, sign-in to it is refused, correct password
    # or not, for sign_in_lock_seconds, doubling with each further failure up to sign_in_lock_max_seconds.
    # A success clears the count; failures are forgotten after sign_in_failures_forget_hours without one.
    sign_in_lock_after: int = Field(default=5, ge=1)
    sign_in_lock_seconds: int = Field(default=30, ge=1)
    sign_in_lock_max_seconds: int = Field(default=900, ge=1)
    sign_in_failures_forget_hours: int = Field(default=24, ge=1)
    # Sign-ups per address, successful or not: sign-up must say when an address already has an account
    # (there is no email round trip to hide it behind), so asking is made slow.
    signup_burst: int = Field(default=5, ge=1)
    signup_per_hour: float = Field(default=10.0, gt=0)

    # Pairing codes asked for per address, and wrong codes typed per user and per address (RFC 8628 §5.1).
    pairing_start_burst: int = Field(default=10, ge=1)
    pairing_start_per_minute: float = Field(default=10.0, gt=0)
    pairing_guess_burst: int = Field(default=5, ge=1)
    pairing_guess_per_minute: float = Field(default=3.0, gt=0)
    meter_loopback_url: str = Field(
        default="http://127.0.0.1:8090",
        description="Where the dashboard looks for a meter running on the visitor's own machine "
        "(Pair this machine); the default port of the meter. The meter, for its part, learns this "
        "cloud's dashboard from the pairing answer or from its own [cloud] base_url.",
    )

    # The providers' billing APIs, called when an owner tests a connection; the pipelines read the same
    # variables, so a proxy (or a fake in tests) stands in for both.
    openai_billing_url: str = Field(default=OPENAI_BASE_URL, description="OpenAI's admin API")
    anthropic_billing_url: str = Field(default=ANTHROPIC_BASE_URL, description="Anthropic's admin API")
    xai_billing_url: str = Field(default=XAI_MANAGEMENT_BASE_URL, description="xAI's management API")

    # Slow clients (see halton_api.slow_clients): the API server closes a connection that takes longer.
    http_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A request's headers must be complete this long after the connection opens (or after "
        "the first byte of the next request on a kept-alive connection); else 408 and close.",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest pause between two pieces of a request body (a meter's batch arrives in well "
        "under a second); else 408 and close.",
    )
    http_max_pending_connections: int = Field(
        default=256,
        ge=1,
        description="Connections still sending their headers at once; one more closes the one waiting "
        "longest.",
    )

    rates_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long `GET /v1/rates` reuses the catalogue in force it read from the warehouse "
        "(every paired meter asks after each sync); a new version reaches meters this much later at most.",
    )

    pg_pool_min: int = Field(default=1, ge=0)
    pg_pool_max: int = Field(default=10, ge=1)

    warehouse_max_concurrent_inserts: int = Field(default=8, ge=1)
    # Waiting longer than this for a free warehouse connection answers 429: the warehouse is busy.
    warehouse_queue_timeout_seconds: float = Field(default=5.0, gt=0)
    warehouse_retries: int = Field(default=2, ge=0)
    # Dashboards read the marts through a pool of their own, so a busy page never holds up ingestion.
    dashboard_max_concurrent_queries: int = Field(default=4, ge=1)
    device_silent_after_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A paired meter reports its sync state after each pass and as a heartbeat every "
        "[cloud] heartbeat_seconds (120 s by default) while idle or paused; the sync banner shows a device "
        "that said nothing for longer than this as NOT-REPORTING (amber: it is off, asleep or offline, and "
        "whether rows wait on it is unknown).",
    )

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"HALTON_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or network; list your reverse "
                    "proxies' addresses, comma-separated (e.g. `10.0.0.5,10.0.1.0/24`), or `*`"
                ) from None
        return value

    @model_validator(mode="after")
    def _warehouse_beside_data(self) -> CloudSettings:
        # `--data-dir` moves the embedded warehouse (and where its logins are read) with everything else.
        if "warehouse" not in self.model_fields_set and self.warehouse.data_dir != self.data_dir:
            self.warehouse = WarehouseSettings(data_dir=self.data_dir)
        return self

    @model_validator(mode="after")
    def _secret(self) -> CloudSettings:
        value = self.secret_key.get_secret_value() if self.secret_key else None
        if self.env != "development":
            if (
                value is None
                or value.strip().lower() in _PLACEHOLDER_SECRETS
                or len(value) < MIN_SECRET_LENGTH
            ):
                raise SettingsError(
                    f"HALTON_SECRET_KEY is missing or a placeholder (HALTON_ENV={self.env}): set it to a random "
                    f"value of at least {MIN_SECRET_LENGTH} characters, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
                )
        elif value is None:
            self.secret_key = SecretStr(_development_secret(self.data_dir))
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def uvicorn_options(self) -> dict[str, Any]:
        """What every uvicorn serving the API is given: forwarded headers only from the proxies listed, and
        the protocol that cuts off slow clients (`halton_api.slow_clients`, limits from `http_*` above).

        uvicorn's own default believes X-Forwarded-For from any loopback peer, so on one machine any local
        process (or a page's request relayed by one) could claim any client address.
        """
        options: dict[str, Any] = {"http": SLOW_CLIENT_PROTOCOL}
        if not self.forwarded_allow_ips:
            return {**options, "proxy_headers": False}
        return {**options, "proxy_headers": True, "forwarded_allow_ips": list(self.forwarded_allow_ips)}

    def secret(self) -> bytes:
        assert self.secret_key is not None  # set by the validator
        return self.secret_key.get_secret_value().encode()


def _development_secret(data_dir: Path) -> str:
    """The development secret, generated once and kept under the data dir (0600)."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    log.info("generated a development secret key at %s", path)
    return value
