"""``halton-meter doctor``: checks that calls can reach the meter, each with what to do if not.

Checks, in order: the configuration loads; the home is initialised; the CA is present and valid;
the database opens; the daemon holds its lock and its port is bound; the loopback API answers; a
test call *through the proxy* over TLS, verified with the meter's CA, reaches the daemon's own
endpoint (``https://halton-meter.internal/v1/health``), which proves interception works; and the
environment variables tools read (proxy, base URLs, CA trust) point at the meter.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from halton_meter.ca import CaProblem, inspect_ca
from halton_meter.home import HomeProblem, load_machine_id
from halton_meter.routing import DOCTOR_HOST, LOOPBACK_NAMES, PREFIXES
from halton_meter.settings import Settings, SettingsError, load_settings
from halton_meter.status import probe_daemon
from halton_meter.store import MIGRATIONS, StoreError, connect, schema_version

logger = logging.getLogger(__name__)

OK, WARN, FAIL = "ok", "warn", "fail"
PROVIDER_HOSTS = ("api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com", "api.x.ai")
# Variables tools read for a base URL, with the meter prefix each should point at.
BASE_URL_VARS = {
    "ANTHROPIC_BASE_URL": f"/{PREFIXES['anthropic']}",
    "OPENAI_BASE_URL": f"/{PREFIXES['openai']}/v1",
    "GOOGLE_GEMINI_BASE_URL": f"/{PREFIXES['gemini']}",
    "XAI_BASE_URL": f"/{PREFIXES['xai']}/v1",
}
CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def run_checks(env: Mapping[str, str] | None = None, port: int | None = None) -> list[Check]:
    env = os.environ if env is None else env
    checks: list[Check] = []
    try:
        settings = load_settings(port=port)
    except SettingsError as exc:
        return [Check("config", FAIL, str(exc), "fix config.toml (the message names the key)")]
    checks.append(
        Check(
            "config",
            OK,
            f"{settings.paths.config} loads"
            if settings.paths.config.exists()
            else "no config.toml: defaults",
        )
    )
    checks.append(_check_home(settings))
    checks.append(_check_ca(settings))
    checks.append(_check_db(settings))
    checks.extend(_check_daemon(settings))
    checks.extend(_check_env(settings, env))
    return checks


def _check_home(settings: Settings) -> Check:
    try:
        machine_id = load_machine_id(settings.paths)
    except HomeProblem as exc:
        return Check("home", FAIL, str(exc), "run `halton-meter init`")
    return Check("home", OK, f"{settings.home} (machine {machine_id})")


def _check_ca(settings: Settings) -> Check:
    try:
        info = inspect_ca(settings.paths)
    except CaProblem as exc:
        return Check("ca", FAIL, str(exc), "run `halton-meter init`")
    return Check(
        "ca", OK, f"{info.cert_path} valid until {info.not_after:%Y-%m-%d} (SHA-256 {info.sha256[:23]}…)"
    )


def _check_db(settings: Settings) -> Check:
    try:
        conn = connect(settings.paths.db, readonly=True)
    except StoreError as exc:
        return Check("database", FAIL, str(exc), "run `halton-meter init`")
    try:
        version = schema_version(conn)
        count = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0] if version else 0
    except Exception as exc:
        return Check(
            "database",
            FAIL,
            f"{settings.paths.db} cannot be read: {exc}",
            "move it away and run `halton-meter init`",
        )
    finally:
        conn.close()
    if version < len(MIGRATIONS):
        return Check(
            "database",
            WARN,
            f"schema {version} of {len(MIGRATIONS)}",
            "run `halton-meter start` (it migrates)",
        )
    return Check("database", OK, f"{settings.paths.db} ({count} calls recorded)")


def _check_daemon(settings: Settings) -> list[Check]:
    daemon = probe_daemon(settings)
    if daemon.state == "stopped":
        return [Check("daemon", FAIL, "not running", "run `halton-meter start`")]
    host, port = daemon.host or settings.listen_host, daemon.port or settings.port
    checks = []
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
        checks.append(Check("port", OK, f"mitm bound on {host}:{port}"))
    except OSError as exc:
        return [
            Check(
                "port",
                FAIL,
                f"nothing listens on {host}:{port} ({exc.strerror})",
                "run `halton-meter stop` then `halton-meter start`",
            )
        ]
    if daemon.state != "running":
        checks.append(
            Check(
                "loopback api",
                FAIL,
                f"http://{host}:{port}/v1/health does not answer",
                "see ~/.halton-meter/logs/daemon.log",
            )
        )
        return checks
    checks.append(
        Check(
            "loopback api",
            OK,
            f"pid {daemon.pid}, version {daemon.health.get('version') if daemon.health else '?'}",
        )
    )
    try:
        context = ssl.create_default_context(cafile=str(settings.paths.ca_cert))
        with httpx.Client(
            proxy=f"http://{host}:{port}", verify=context, timeout=5, trust_env=False
        ) as client:
            response = client.get(f"https://{DOCTOR_HOST}/v1/health")
        if response.status_code == 200 and response.json().get("service") == "halton-meter":
            checks.append(
                Check(
                    "proxy + tls",
                    OK,
                    "a test call through the proxy, verified with the meter's CA, reached the daemon",
                )
            )
        else:
            checks.append(
                Check(
                    "proxy + tls",
                    FAIL,
                    f"the test call got HTTP {response.status_code}",
                    "see ~/.halton-meter/logs/daemon.log",
                )
            )
    except (httpx.HTTPError, ssl.SSLError, ValueError) as exc:
        checks.append(
            Check(
                "proxy + tls",
                FAIL,
                f"the test call through the proxy failed: {exc}",
                "check the CA files, then restart the daemon",
            )
        )
    return checks


def _points_at_meter(value: str, settings: Settings, port: int | None) -> bool:
    parts = urlsplit(value if "://" in value else f"http://{value}")
    return (parts.hostname or "") in (LOOPBACK_NAMES | {settings.listen_host}) and parts.port == port


def _check_env(settings: Settings, env: Mapping[str, str]) -> list[Check]:
    state = probe_daemon(settings)
    port = state.port or settings.port
    checks = []
    proxy = env.get("HTTPS_PROXY") or env.get("https_proxy")
    if not proxy:
        checks.append(
            Check(
                "HTTPS_PROXY",
                WARN,
                "not set: only tools given a meter base URL are metered",
                f"export HTTPS_PROXY=http://127.0.0.1:{port}",
            )
        )
    elif _points_at_meter(proxy, settings, port):
        checks.append(Check("HTTPS_PROXY", OK, proxy))
        bypassed = _bypassed(env.get("NO_PROXY") or env.get("no_proxy") or "")
        if bypassed:
            checks.append(
                Check(
                    "NO_PROXY",
                    WARN,
                    f"bypasses the meter for {', '.join(bypassed)}",
                    "remove those hosts from NO_PROXY",
                )
            )
        trusted = [
            v for v in CA_VARS if env.get(v) in (str(settings.paths.ca_cert), str(settings.paths.ca_bundle))
        ]
        if trusted:
            checks.append(Check("ca trust", OK, f"{', '.join(trusted)} point at the meter's CA"))
        else:
            checks.append(
                Check(
                    "ca trust",
                    WARN,
                    "no CA variable points at the meter's CA (fine if it is in the system trust store)",
                    "run `halton-meter ca` for the per-tool variables",
                )
            )
    else:
        checks.append(
            Check(
                "HTTPS_PROXY",
                WARN,
                f"{proxy} is not the meter: calls through it are not metered",
                f"export HTTPS_PROXY=http://127.0.0.1:{port}",
            )
        )
    for var, prefix in BASE_URL_VARS.items():
        value = env.get(var)
        if not value:
            continue
        if not _points_at_meter(value, settings, port):
            checks.append(
                Check(
                    var, WARN, f"{value} bypasses the meter", f"export {var}=http://127.0.0.1:{port}{prefix}"
                )
            )
        elif not urlsplit(value).path.rstrip("/").startswith(prefix.split("/v1")[0]):
            checks.append(
                Check(
                    var,
                    FAIL,
                    f"{value} has the wrong path for the meter",
                    f"export {var}=http://127.0.0.1:{port}{prefix}",
                )
            )
        else:
            checks.append(Check(var, OK, value))
    return checks


def _bypassed(no_proxy: str) -> list[str]:
    """Provider hosts a NO_PROXY value sends around the proxy (curl/httpx suffix semantics)."""
    entries = [e.strip().lower() for e in no_proxy.split(",") if e.strip()]
    if "*" in entries:
        return list(PROVIDER_HOSTS)
    bypassed = []
    for host in PROVIDER_HOSTS:
        for entry in entries:
            name = entry.lstrip("*").lstrip(".")
            if name and (host == name or host.endswith("." + name)):
                bypassed.append(host)
                break
    return bypassed
