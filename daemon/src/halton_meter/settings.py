"""The meter's settings: ``config.toml`` in the home directory, then the environment, then flags.

Precedence: a command-line flag (``--port``) beats ``HALTON_METER_PORT``, which beats ``config.toml``,
which beats the defaults below (likewise ``HALTON_METER_CLOUD_URL`` beats ``[cloud] base_url``). Every problem is reported as a :class:`SettingsError` that names the
file and key (``config.toml: [proxy] port: ...``) so the user knows what to edit.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from halton_meter.paths import MeterPaths
from halton_meter.protocol import MAX_ROWS_PER_BATCH

PORT_ENV = "HALTON_METER_PORT"
CLOUD_URL_ENV = "HALTON_METER_CLOUD_URL"
DEFAULT_PORT = 8090
DEFAULT_CLOUD_URL = "https://api.haltonmeter.com"
DEFAULT_DASHBOARD_ORIGIN = "https://app.haltonmeter.com"
# The cloud accepts at most MAX_ROWS_PER_BATCH rows and 8 MiB (decompressed) per batch. The meter
# sends up to that many rows but caps the JSON at 4 MiB, so a batch of wide rows splits by size first.
MAX_BATCH_ROWS = MAX_ROWS_PER_BATCH
DEFAULT_BATCH_ROWS = MAX_BATCH_ROWS
DEFAULT_BATCH_BYTES = 4 * 1024 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
# The price overrides file halton_meter.pricing reads (JSON); absent = built-in prices only.
DEFAULT_RATES_FILE = "rates.json"
PROVIDERS = ("anthropic", "openai", "gemini", "xai")
SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*$")
FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{12,64}$")
HOSTNAME_RE = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)

Slug = Annotated[str, Field(min_length=1, max_length=128, pattern=SLUG_RE.pattern)]


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the key and what to do."""


def key_fingerprint(api_key: str) -> str:
    """How a key is named in ``config.toml``: never the key itself, a prefix of its SHA-256."""
    return "sha256:" + hashlib.sha256(api_key.strip().encode()).hexdigest()


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProxySection(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = DEFAULT_PORT
    # A PEM bundle used to verify upstream servers instead of the public roots (company gateways).
    upstream_ca_file: str | None = None


class AttributionSection(_Section):
    default_project: Slug = "default"
    directory: bool = True
    api_keys: dict[str, Slug] = Field(default_factory=dict)
    directories: dict[str, Slug] = Field(default_factory=dict)

    @field_validator("api_keys")
    @classmethod
    def _fingerprints_only(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not FINGERPRINT_RE.match(key):
                raise ValueError(
                    f"{key[:8]}… is not a key fingerprint; write 'sha256:<at least 12 hex digits>' "
                    "(run `halton-meter fingerprint` to get it) and never the raw key"
                )
        return value


class ProviderSection(_Section):
    upstream: str | None = None
    extra_hosts: list[str] = Field(default_factory=list)

    @field_validator("upstream")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL like 'https://api.example.com'")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r} must not carry a query or fragment")
        return value.rstrip("/")

    @field_validator("extra_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not HOSTNAME_RE.match(host):
                raise ValueError(f"{host!r} is not a host name (a leading '*.' wildcard is allowed)")
        return [h.lower() for h in value]


class CaptureSection(_Section):
    bodies: bool = False
    body_max_bytes: Annotated[int, Field(ge=0, le=64 * 1024 * 1024)] = 256 * 1024


class PricingSection(_Section):
    overrides: str | None = None


def cloud_base_url(value: str) -> str:
    """A cloud API base URL as the meter stores it (http(s), a host, no query; no trailing slash)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL like {DEFAULT_CLOUD_URL!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{value!r} must not carry credentials, a query or a fragment")
    return value.strip().rstrip("/")


def web_origin(value: str) -> str:
    """A browser origin (``scheme://host[:port]``), compared byte for byte with the Origin header."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin like {DEFAULT_DASHBOARD_ORIGIN!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} must be scheme://host[:port] only, without a path")
    return f"{parts.scheme}://{parts.netloc}".lower()


def dashboard_origin_for(base_url: str) -> str:
    """The dashboard that goes with a cloud API: the hosted one for the hosted API, else the cloud's
    own origin (a self-hosted cloud serves its pages and its API from one server)."""
    origin = web_origin(urlsplit(base_url)._replace(path="", query="", fragment="").geturl())
    return DEFAULT_DASHBOARD_ORIGIN if origin == web_origin(DEFAULT_CLOUD_URL) else origin


class CloudSection(_Section):
    enabled: bool = False
    base_url: str = DEFAULT_CLOUD_URL
    # Set only when the meter wrote base_url from its own default (no flag, variable or config chose
    # it): the one case in which the meter may later heal a placeholder base_url (see config_table).
    base_url_written_by_meter: str | None = None
    workspace_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    # The only web origin allowed to call the loopback /v1/cloud/* routes (the dashboard). Unset, it
    # is the dashboard of base_url (see dashboard_origin_for); pairing records the cloud's dashboard.
    dashboard_origin: str | None = None
    # Set only when the meter recorded dashboard_origin at pairing: such a value is the meter's, and
    # the next pairing (perhaps with another cloud) may replace it; a value the user wrote it keeps.
    dashboard_origin_written_by_meter: str | None = None
    batch_rows: Annotated[int, Field(ge=1, le=MAX_BATCH_ROWS)] = DEFAULT_BATCH_ROWS
    batch_bytes: Annotated[int, Field(ge=16 * 1024, le=MAX_BATCH_BYTES)] = DEFAULT_BATCH_BYTES
    sync_interval_seconds: Annotated[float, Field(ge=0.05, le=3600)] = 5.0
    retry_max_seconds: Annotated[
        float,
        Field(
            ge=0.05,
            le=300,
            description="The longest wait between two sync attempts after failures (the backoff's cap).",
        ),
    ] = 30.0
    health_probe_seconds: Annotated[
        float,
        Field(
            ge=0.05,
            le=60,
            description="While waiting to retry after a failure, how often to ask the cloud's /healthz "
            "whether it is back (a cloud that answers is retried at once).",
        ),
    ] = 5.0
    heartbeat_seconds: Annotated[
        float,
        Field(
            ge=0.05,
            le=3600,
            description="How often the meter tells the cloud its sync state, unsynced rows and version "
            "while nothing changes (idle or paused); a change is reported after the pass that made it. "
            "The cloud shows a meter silent for much longer as NOT-REPORTING.",
        ),
    ] = 120.0
    reconcile_hours: Annotated[
        float,
        Field(
            ge=0.001,
            le=24 * 30,
            description="How often the sync worker compares this machine's per-day rows and cost with the "
            "cloud's and re-sends what the cloud lacks (`halton-meter cloud reconcile` does it on demand).",
        ),
    ] = 24.0

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return cloud_base_url(value)

    @field_validator("base_url_written_by_meter")
    @classmethod
    def _written_base_url(cls, value: str | None) -> str | None:
        return cloud_base_url(value) if value is not None else None

    @field_validator("dashboard_origin", "dashboard_origin_written_by_meter")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        return web_origin(value) if value is not None else None


class LogSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class ConfigFile(_Section):
    proxy: ProxySection = ProxySection()
    attribution: AttributionSection = AttributionSection()
    providers: dict[str, ProviderSection] = Field(default_factory=dict)
    capture: CaptureSection = CaptureSection()
    pricing: PricingSection = PricingSection()
    cloud: CloudSection = CloudSection()
    log: LogSection = LogSection()

    @field_validator("providers")
    @classmethod
    def _known(cls, value: dict[str, ProviderSection]) -> dict[str, ProviderSection]:
        for name in value:
            if name not in PROVIDERS:
                raise ValueError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
        return value


@dataclass(frozen=True)
class ProviderSettings:
    upstream: str | None = None
    extra_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    """Everything the meter needs to run, resolved and validated."""

    paths: MeterPaths
    listen_host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    upstream_ca_file: Path | None = None
    default_project: str = "default"
    directory_attribution: bool = True
    api_key_projects: dict[str, str] = field(default_factory=dict)
    directory_projects: dict[Path, str] = field(default_factory=dict)
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    capture_bodies: bool = False
    body_max_bytes: int = 256 * 1024
    pricing_overrides: Path | None = None
    cloud_enabled: bool = False
    cloud_base_url: str = DEFAULT_CLOUD_URL
    # True when nobody chose cloud_base_url: it is the meter's default, or what the meter wrote from it.
    cloud_base_url_by_meter: bool = True
    cloud_workspace_id: str | None = None
    cloud_dashboard_origin: str = DEFAULT_DASHBOARD_ORIGIN
    # True when the user wrote [cloud] dashboard_origin: pairing then leaves it alone.
    cloud_dashboard_origin_chosen: bool = False
    cloud_batch_rows: int = DEFAULT_BATCH_ROWS
    cloud_batch_bytes: int = DEFAULT_BATCH_BYTES
    cloud_sync_interval: float = 5.0
    cloud_retry_max: float = 30.0
    cloud_health_probe: float = 5.0
    cloud_heartbeat: float = 120.0
    cloud_reconcile_hours: float = 24.0
    log_level: str = "INFO"

    @property
    def home(self) -> Path:
        return self.paths.home

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name, ProviderSettings())


def load_settings(home: Path | None = None, *, port: int | None = None) -> Settings:
    """Read ``config.toml`` (missing file = defaults), apply the environment, then ``port`` if given."""
    paths = MeterPaths.resolve(home)
    config = _read_config(paths.config)

    resolved_port = config.proxy.port
    env_port = os.environ.get(PORT_ENV)
    if env_port is not None and env_port.strip():
        resolved_port = _parse_port(env_port, PORT_ENV)
    if port is not None:
        resolved_port = _parse_port(str(port), "--port")
    base_url = config.cloud.base_url
    base_url_by_meter = (
        "base_url" not in config.cloud.model_fields_set or base_url == config.cloud.base_url_written_by_meter
    )
    env_url = os.environ.get(CLOUD_URL_ENV, "").strip()
    if env_url:
        try:
            base_url = cloud_base_url(env_url)
        except ValueError as exc:
            raise SettingsError(f"{CLOUD_URL_ENV}: {exc}") from None
        base_url_by_meter = False

    return Settings(
        paths=paths,
        listen_host=config.proxy.host,
        port=resolved_port,
        upstream_ca_file=_under_home(paths, config.proxy.upstream_ca_file),
        default_project=config.attribution.default_project,
        directory_attribution=config.attribution.directory,
        api_key_projects=dict(config.attribution.api_keys),
        directory_projects={
            Path(p).expanduser().absolute(): project for p, project in config.attribution.directories.items()
        },
        providers={
            name: ProviderSettings(upstream=section.upstream, extra_hosts=tuple(section.extra_hosts))
            for name, section in config.providers.items()
        },
        capture_bodies=config.capture.bodies,
        body_max_bytes=config.capture.body_max_bytes,
        pricing_overrides=_under_home(paths, config.pricing.overrides or DEFAULT_RATES_FILE),
        cloud_enabled=config.cloud.enabled,
        cloud_base_url=base_url,
        cloud_base_url_by_meter=base_url_by_meter,
        cloud_workspace_id=config.cloud.workspace_id,
        cloud_dashboard_origin=config.cloud.dashboard_origin or dashboard_origin_for(base_url),
        cloud_dashboard_origin_chosen=config.cloud.dashboard_origin is not None
        and config.cloud.dashboard_origin != config.cloud.dashboard_origin_written_by_meter,
        cloud_batch_rows=config.cloud.batch_rows,
        cloud_batch_bytes=config.cloud.batch_bytes,
        cloud_sync_interval=config.cloud.sync_interval_seconds,
        cloud_retry_max=config.cloud.retry_max_seconds,
        cloud_health_probe=config.cloud.health_probe_seconds,
        cloud_heartbeat=config.cloud.heartbeat_seconds,
        cloud_reconcile_hours=config.cloud.reconcile_hours,
        log_level=config.log.level,
    )


def _read_config(path: Path) -> ConfigFile:
    if not path.exists():
        return ConfigFile()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(
            f"{path}: not valid TOML: {exc}. Fix the file or delete it and run `halton-meter init`."
        ) from exc
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from exc
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise SettingsError(_describe(path, exc)) from exc


def _describe(path: Path, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        # Pydantic puts the failing key of a dict validator at the end; tables are the leading parts.
        table = ".".join(loc[:-1])
        key = loc[-1] if loc else "?"
        where = f"[{table}] {key}" if table else key
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = (
                "unknown key (check the spelling; see the comments in a fresh `halton-meter init` config)"
            )
        lines.append(f"{path.name}: {where}: {message}")
    return "\n".join(lines)


def _parse_port(value: str, source: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{source}: must be a port number between 1 and 65535, got {value!r}") from None
    if not 0 <= number <= 65535:
        raise SettingsError(f"{source}: must be a port number between 1 and 65535, got {number}")
    return number


def _under_home(paths: MeterPaths, value: str | None) -> Path | None:
    if not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else paths.home / path
