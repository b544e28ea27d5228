"""The meter's settings: ``config.toml`` in the home directory, then the environment, then flags.

Precedence: a command-line flag (``--port``) beats ``HALTON_METER_PORT``, which beats ``config.toml``,
which beats the defaults below (likewise ``HALTON_METER_CLOUD_URL`` beats ``[cloud] base_url``). Every
problem is reported as a :class:`SettingsError` that names the file and key (``config.toml: [proxy] port:
...``) so the user knows what to edit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from halton_meter.origin import DEFAULT_TICKET_PATTERN, compile_ticket_pattern
from halton_meter.paths import MeterPaths

PORT_ENV = "HALTON_METER_PORT"
CLOUD_URL_ENV = "HALTON_METER_CLOUD_URL"
DEFAULT_PORT = 8090
DEFAULT_CLOUD_URL = "https://api.haltonmeter.com"
DEFAULT_DASHBOARD_ORIGIN = "https://app.haltonmeter.com"
# The cloud accepts at most halton_meter.protocol.MAX_ROWS_PER_BATCH rows and 8 MiB (decompressed) per
# batch. The meter sends up to that many rows but caps the JSON at 4 MiB, so a batch of wide rows splits
# by size first. The number is repeated, not imported: protocol loads pydantic, which every CLI command
# would then pay for; test_settings checks the two agree.
MAX_BATCH_ROWS = 5_000
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


class SettingsError(ValueError):
    """The configuration cannot be used; the message names the key and what to do."""


def key_fingerprint(api_key: str) -> str:
    """How a key is named in ``config.toml``: never the key itself, a prefix of its SHA-256."""
    return "sha256:" + hashlib.sha256(api_key.strip().encode()).hexdigest()


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


# ---------------------------------------------------------------------------------------------------
# config.toml's schema. Each key has a default and a parser that returns the value as the meter uses
# it or raises ValueError saying what is wrong; an unknown key or table is an error too. It is plain
# Python rather than a pydantic model because every CLI command reads it: pydantic costs a read-only
# command more than the rest of its start (issue 18, item 8). TOML already types its values; like
# the pydantic model it replaces, a number or yes/no may also be written as a string ("8090", "true"),
# and true/false as 1/0.

Parse = Callable[[Any], Any]


class _Invalid(ValueError):
    """A bad entry inside a key's value (a map's key or value): ``at`` names it."""

    def __init__(self, at: str, message: str) -> None:
        super().__init__(message)
        self.at = at


def _got(value: object) -> str:
    return f"got {value!r}" if not isinstance(value, dict) else "got a table"


def _text(*, max_length: int | None = None, then: Callable[[str], str] | None = None) -> Parse:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, {_got(value)}")
        if max_length is not None and not 1 <= len(value) <= max_length:
            raise ValueError(f"must be 1 to {max_length} characters long, got {len(value)}")
        return then(value) if then else value

    return parse


def _slug(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 128 or not SLUG_RE.fullmatch(value):
        raise ValueError(
            f"must be a project name of 1 to 128 letters, digits and . _ - / that starts with a letter "
            f"or digit, {_got(value)}"
        )
    return value


def _integer(low: int, high: int) -> Parse:
    def parse(value: Any) -> int:
        number = value
        if (isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip())) or (
            isinstance(value, float) and value.is_integer()
        ):
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}, {_got(value)}")
        return number

    return parse


def _number(low: float, high: float, unit: str = "seconds") -> Parse:
    def parse(value: Any) -> float:
        number: Any = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value)
        if isinstance(number, bool) or not isinstance(number, int | float) or not low <= number <= high:
            raise ValueError(f"must be a number of {unit} from {low:g} to {high:g}, {_got(value)}")
        return float(number)

    return parse


_TRUE, _FALSE = ("true", "yes", "on", "t", "y", "1"), ("false", "no", "off", "f", "n", "0")


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"must be true or false, {_got(value)}")


def _choice(*choices: str) -> Parse:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(repr(c) for c in choices)}, {_got(value)}")
        return value

    return parse


def _slug_map(check_key: Callable[[str], None] | None = None) -> Parse:
    def parse(value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValueError(f'must be a table of "name" = "project" lines, {_got(value)}')
        for key in value:
            if check_key:
                check_key(key)
        for key, project in value.items():
            try:
                _slug(project)
            except ValueError as exc:
                raise _Invalid(key, str(exc)) from None
        return dict(value)

    return parse


def _fingerprint(key: str) -> None:
    if not FINGERPRINT_RE.fullmatch(key):
        raise ValueError(
            f"{key[:8]}… is not a key fingerprint; write 'sha256:<at least 12 hex digits>' "
            "(run `halton-meter fingerprint` to get it) and never the raw key"
        )


def _upstream(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL like 'https://api.example.com'")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must not carry a query or fragment")
    return value.rstrip("/")


def _ticket_pattern(value: str) -> str:
    compile_ticket_pattern(value)  # its ValueError says what is wrong
    return value


def _hosts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ValueError(f'must be a list of host names like ["myco.openai.azure.com"], {_got(value)}')
    for host in value:
        if not HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a host name (a leading '*.' wildcard is allowed)")
    return tuple(h.lower() for h in value)


# table -> key -> (default, parser). A default of None means unset; TOML has no way to write None.
TABLES: dict[str, dict[str, tuple[Any, Parse]]] = {
    "proxy": {
        "host": ("127.0.0.1", _text()),
        "port": (DEFAULT_PORT, _integer(0, 65535)),
        # A PEM bundle used to verify upstream servers instead of the public roots (company gateways).
        "upstream_ca_file": (None, _text()),
    },
    "attribution": {
        "default_project": ("default", _slug),
        "directory": (True, _flag),
        "origin": (True, _flag),
        "ticket_pattern": (DEFAULT_TICKET_PATTERN, _text(max_length=256, then=_ticket_pattern)),
        "api_keys": ({}, _slug_map(_fingerprint)),
        "directories": ({}, _slug_map()),
    },
    "capture": {
        "bodies": (False, _flag),
        "body_max_bytes": (256 * 1024, _integer(0, 64 * 1024 * 1024)),
    },
    "pricing": {"overrides": (None, _text())},
    "cloud": {
        "enabled": (False, _flag),
        "base_url": (DEFAULT_CLOUD_URL, _text(then=cloud_base_url)),
        # Set only when the meter wrote base_url from its own default (no flag, variable or config chose
        # it): the one case in which the meter may later heal a placeholder base_url (see config_table).
        "base_url_written_by_meter": (None, _text(then=cloud_base_url)),
        "workspace_id": (None, _text(max_length=64)),
        # The only web origin allowed to call the loopback /v1/cloud/* routes (the dashboard). Unset, it
        # is the dashboard of base_url (see dashboard_origin_for); pairing records the cloud's dashboard.
        "dashboard_origin": (None, _text(then=web_origin)),
        # Set only when the meter recorded dashboard_origin at pairing: such a value is the meter's, and
        # the next pairing (perhaps with another cloud) may replace it; a value the user wrote it keeps.
        "dashboard_origin_written_by_meter": (None, _text(then=web_origin)),
        "batch_rows": (DEFAULT_BATCH_ROWS, _integer(1, MAX_BATCH_ROWS)),
        "batch_bytes": (DEFAULT_BATCH_BYTES, _integer(16 * 1024, MAX_BATCH_BYTES)),
        "sync_interval_seconds": (5.0, _number(0.05, 3600)),
        # The longest wait between two sync attempts after failures (the backoff's cap).
        "retry_max_seconds": (30.0, _number(0.05, 300)),
        # While waiting to retry after a failure, how often to ask the cloud's /healthz whether it is
        # back (a cloud that answers is retried at once).
        "health_probe_seconds": (5.0, _number(0.05, 60)),
        # How often the meter tells the cloud its sync state, unsynced rows and version while nothing
        # changes (idle or paused); a change is reported after the pass that made it. The cloud shows a
        # meter silent for much longer as NOT-REPORTING.
        "heartbeat_seconds": (120.0, _number(0.05, 3600)),
        # How often the sync worker compares this machine's per-day rows and cost with the cloud's and
        # re-sends what the cloud lacks (`halton-meter cloud reconcile` does it on demand).
        "reconcile_hours": (24.0, _number(0.001, 24 * 30, "hours")),
    },
    "limits": {
        # A spend figure fetched longer ago than this is stale: the meter then never blocks (it cannot tell).
        "fresh_minutes": (15.0, _number(0.001, 24 * 60, "minutes")),
        # How often the sync worker asks the cloud for the hard limits and each one's month-to-date spend.
        "refresh_seconds": (60.0, _number(0.05, 3600)),
    },
    "log": {"level": ("INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR"))},
}
# [providers.<name>], one table per provider.
PROVIDER_KEYS: dict[str, tuple[Any, Parse]] = {
    "upstream": (None, _text(then=_upstream)),
    "extra_hosts": ((), _hosts),
}


@dataclass(frozen=True)
class ConfigFile:
    """config.toml, validated: ``tables[table][key]`` for every key (defaults filled in),
    ``providers[name][key]`` for each provider table, and the ``table.key`` names the file wrote."""

    tables: dict[str, dict[str, Any]]
    written: frozenset[str]
    providers: dict[str, dict[str, Any]]


def _parse_table(
    where: tuple[str, ...], raw: Any, keys: dict[str, tuple[Any, Parse]], problems: list[tuple[str, str]]
) -> dict[str, Any]:
    """The table's keys, parsed, with defaults; each problem is added as (where, message)."""
    values = {key: default for key, (default, _) in keys.items()}
    table = ".".join(where)
    if not isinstance(raw, dict):
        problems.append((table, f"must be a table ([{table}]), {_got(raw)}"))
        return values
    for key, value in raw.items():
        if key not in keys:
            problems.append(
                (
                    f"[{table}] {key}",
                    "unknown key (check the spelling; see the comments in a fresh `halton-meter init` config)",
                )
            )
            continue
        try:
            values[key] = keys[key][1](value)
        except _Invalid as exc:
            problems.append((f"[{table}.{key}] {exc.at}", str(exc)))
        except ValueError as exc:
            problems.append((f"[{table}] {key}", str(exc)))
    return values


def _parse_config(raw: dict[str, Any]) -> tuple[ConfigFile, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    tables: dict[str, dict[str, Any]] = {}
    for name, keys in TABLES.items():
        tables[name] = _parse_table((name,), raw.get(name, {}), keys, problems)
    providers: dict[str, dict[str, Any]] = {}
    raw_providers = raw.get("providers", {})
    if not isinstance(raw_providers, dict):
        problems.append(("providers", f"must be tables like [providers.openai], {_got(raw_providers)}"))
        raw_providers = {}
    for name, section in raw_providers.items():
        if name not in PROVIDERS:
            problems.append(
                ("providers", f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
            )
            continue
        providers[name] = _parse_table(("providers", name), section, PROVIDER_KEYS, problems)
    for name in raw:
        if name not in TABLES and name != "providers":
            problems.append(
                (
                    name,
                    "unknown key (check the spelling; see the comments in a fresh `halton-meter init` config)",
                )
            )
    written = frozenset(
        f"{table}.{key}" for table, keys in raw.items() if isinstance(keys, dict) for key in keys
    )
    return ConfigFile(tables, written, providers), problems


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
    call_origin: bool = True
    ticket_pattern: str = DEFAULT_TICKET_PATTERN
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
    limits_fresh_minutes: float = 15.0
    limits_refresh_seconds: float = 60.0
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
    proxy, attribution, cloud = config.tables["proxy"], config.tables["attribution"], config.tables["cloud"]

    resolved_port = proxy["port"]
    env_port = os.environ.get(PORT_ENV)
    if env_port is not None and env_port.strip():
        resolved_port = _parse_port(env_port, PORT_ENV)
    if port is not None:
        resolved_port = _parse_port(str(port), "--port")
    base_url = cloud["base_url"]
    base_url_by_meter = (
        "cloud.base_url" not in config.written or base_url == cloud["base_url_written_by_meter"]
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
        listen_host=proxy["host"],
        port=resolved_port,
        upstream_ca_file=_under_home(paths, proxy["upstream_ca_file"]),
        default_project=attribution["default_project"],
        directory_attribution=attribution["directory"],
        call_origin=attribution["origin"],
        ticket_pattern=attribution["ticket_pattern"],
        api_key_projects=dict(attribution["api_keys"]),
        directory_projects={
            Path(p).expanduser().absolute(): project for p, project in attribution["directories"].items()
        },
        providers={
            name: ProviderSettings(upstream=section["upstream"], extra_hosts=section["extra_hosts"])
            for name, section in config.providers.items()
        },
        capture_bodies=config.tables["capture"]["bodies"],
        body_max_bytes=config.tables["capture"]["body_max_bytes"],
        pricing_overrides=_under_home(paths, config.tables["pricing"]["overrides"] or DEFAULT_RATES_FILE),
        cloud_enabled=cloud["enabled"],
        cloud_base_url=base_url,
        cloud_base_url_by_meter=base_url_by_meter,
        cloud_workspace_id=cloud["workspace_id"],
        cloud_dashboard_origin=cloud["dashboard_origin"] or dashboard_origin_for(base_url),
        cloud_dashboard_origin_chosen=cloud["dashboard_origin"] is not None
        and cloud["dashboard_origin"] != cloud["dashboard_origin_written_by_meter"],
        cloud_batch_rows=cloud["batch_rows"],
        cloud_batch_bytes=cloud["batch_bytes"],
        cloud_sync_interval=cloud["sync_interval_seconds"],
        cloud_retry_max=cloud["retry_max_seconds"],
        cloud_health_probe=cloud["health_probe_seconds"],
        cloud_heartbeat=cloud["heartbeat_seconds"],
        cloud_reconcile_hours=cloud["reconcile_hours"],
        limits_fresh_minutes=config.tables["limits"]["fresh_minutes"],
        limits_refresh_seconds=config.tables["limits"]["refresh_seconds"],
        log_level=config.tables["log"]["level"],
    )


def _read_config(path: Path) -> ConfigFile:
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(
                f"{path}: not valid TOML: {exc}. Fix the file or delete it and run `halton-meter init`."
            ) from exc
        except OSError as exc:
            raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from exc
    config, problems = _parse_config(raw)
    if problems:
        raise SettingsError("\n".join(f"{path.name}: {where}: {message}" for where, message in problems))
    return config


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
