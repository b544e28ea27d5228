"""Where the meter keeps its files: one home directory, ``~/.halton-meter`` unless told otherwise.

The names below are the ones the product documents promise (``config.toml``, ``machine.json``,
``db.sqlite``, ``cloud-credentials.json``, ``cloud.key``); the CA files are mitmproxy's own names
because mitmproxy's confdir *is* the home directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "HALTON_METER_HOME"

# mitmproxy names its CA files after this basename; it is not configurable in its TlsConfig addon.
CA_BASENAME = "mitmproxy"


def default_home() -> Path:
    """``$HALTON_METER_HOME`` if set (tests and several installs use it), else ``~/.halton-meter``."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser().absolute()
    return Path.home() / ".halton-meter"


@dataclass(frozen=True)
class MeterPaths:
    """Every file the meter reads or writes, under one home directory."""

    home: Path

    @classmethod
    def resolve(cls, home: Path | None = None) -> MeterPaths:
        return cls(home=(home.expanduser().absolute() if home else default_home()))

    @property
    def config(self) -> Path:
        return self.home / "config.toml"

    @property
    def machine(self) -> Path:
        return self.home / "machine.json"

    @property
    def db(self) -> Path:
        return self.home / "db.sqlite"

    @property
    def journal(self) -> Path:
        """Segments of the call journal (see ``halton_meter.journal``): answered calls not yet in db.sqlite."""
        return self.home / "journal"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def daemon_log(self) -> Path:
        return self.logs / "daemon.log"

    @property
    def pidfile(self) -> Path:
        return self.home / "daemon.pid"

    @property
    def daemon_state(self) -> Path:
        """Written by the running daemon: pid, bound address, start time (read by status/stop/doctor)."""
        return self.home / "daemon.json"

    @property
    def ca_key(self) -> Path:
        """The CA certificate *and* private key (mitmproxy's format); 0600, never share it."""
        return self.home / f"{CA_BASENAME}-ca.pem"

    @property
    def ca_cert(self) -> Path:
        """The CA certificate alone: what users add to their trust store."""
        return self.home / f"{CA_BASENAME}-ca-cert.pem"

    @property
    def ca_bundle(self) -> Path:
        """The public roots plus our CA, for tools whose CA variable *replaces* the system bundle."""
        return self.home / "ca-bundle.pem"

    @property
    def catalogue(self) -> Path:
        """Price catalogues installed after the meter's own (``rates.json`` in force, ``versions/``)."""
        return self.home / "catalogue"

    @property
    def cloud_credentials(self) -> Path:
        return self.home / "cloud-credentials.json"

    @property
    def cloud_key(self) -> Path:
        return self.home / "cloud.key"
