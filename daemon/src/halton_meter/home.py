"""The meter's home directory: ``init`` creates it, everything else reads it.

``init`` is idempotent: it creates what is missing and keeps what exists (above all ``machine.json``,
whose ``machine_id`` names this laptop to the cloud, and the CA users already trust).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from halton_meter.ca import ensure_ca
from halton_meter.paths import MeterPaths
from halton_meter.store import open_store

logger = logging.getLogger(__name__)

CONFIG_TEMPLATE = """\
# Halton Meter configuration. Every key is optional; the values shown are the defaults.
# Docs: `halton-meter --help`. Environment: HALTON_METER_HOME, HALTON_METER_PORT.

[proxy]
host = "127.0.0.1"
port = 8090
# A PEM bundle to verify upstream servers with, instead of the public roots (company gateways).
# upstream_ca_file = "/path/to/corp-ca.pem"

[attribution]
# Calls that no other tier claims go to this project.
default_project = "default"
# Attribute calls to the git repository of the calling process (Linux; best effort).
directory = true
# Record the repository, git branch and tool of the calling process with each call (Linux; best effort),
# and the ticket key found in the branch name by this regular expression.
origin = true
ticket_pattern = '[A-Z][A-Z0-9]+-\\d+'

# API key fingerprints -> project. Never put a raw key here: `halton-meter fingerprint` prints the
# fingerprint of a key read from stdin. At least 12 hex digits of the sha256.
[attribution.api_keys]
# "sha256:9f86d081884c7d65" = "checkout"

# Folders -> project (the deepest folder containing the caller's working directory wins).
[attribution.directories]
# "~/src/checkout" = "checkout"

# Per provider (anthropic, openai, gemini, xai): where calls go, and more hosts to meter as it.
# [providers.openai]
# upstream = "https://api.openai.com"
# extra_hosts = ["mycompany.openai.azure.com"]

[capture]
# Keep request and response bodies in db.sqlite (local only, never synced).
bodies = false
body_max_bytes = 262144

[pricing]
# Negotiated or missing prices (JSON, USD per million tokens; format in `halton-meter reprice --help`).
# Relative paths are under this folder; the file is optional.
overrides = "rates.json"

[cloud]
# Off until `halton-meter cloud connect` is approved in the browser; `cloud disconnect` turns it off.
enabled = false
# base_url = "https://api.haltonmeter.com"
# The only web page allowed to call the meter's loopback /v1/cloud/* routes. Unset: the dashboard of
# base_url (app.haltonmeter.com for the hosted cloud, else base_url's own origin); pairing records
# the dashboard the cloud names.
# dashboard_origin = "https://app.haltonmeter.com"

[log]
level = "INFO"
"""


class HomeProblem(RuntimeError):
    """The home directory is unusable; the message says what to do."""


@dataclass
class InitReport:
    home: Path
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    machine_id: str = ""


def init_home(paths: MeterPaths) -> InitReport:
    report = InitReport(home=paths.home)
    paths.home.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.home, 0o700)  # holds the CA key: owner only
    paths.logs.mkdir(exist_ok=True)

    if paths.config.exists():
        report.kept.append(paths.config)
    else:
        paths.config.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        report.created.append(paths.config)

    existed = paths.machine.exists()
    report.machine_id = ensure_machine_id(paths)
    (report.kept if existed else report.created).append(paths.machine)

    _, created = ensure_ca(paths)
    (report.created if created else report.kept).append(paths.ca_cert)

    existed = paths.db.exists()
    open_store(paths.db).close()
    (report.kept if existed else report.created).append(paths.db)
    return report


def ensure_machine_id(paths: MeterPaths) -> str:
    """The machine id from ``machine.json``, creating the file (random UUID) on first use."""
    if paths.machine.exists():
        return load_machine_id(paths)
    document = {
        "machine_id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).isoformat(),
        "hostname": socket.gethostname(),
    }
    tmp = paths.machine.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(paths.machine)
    return document["machine_id"]


def load_machine_id(paths: MeterPaths) -> str:
    try:
        document = json.loads(paths.machine.read_text(encoding="utf-8"))
        machine_id = str(document["machine_id"]).strip()
    except FileNotFoundError:
        raise HomeProblem(f"{paths.machine} is missing: run `halton-meter init`") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise HomeProblem(
            f"{paths.machine} is not valid ({exc}); restore it from a backup to keep this machine's "
            "identity, or move it away and run `halton-meter init` for a new one"
        ) from None
    if not machine_id or len(machine_id) > 128:
        raise HomeProblem(f"{paths.machine}: machine_id must be 1 to 128 characters")
    return machine_id
