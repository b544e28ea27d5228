"""The meter's CA: created once with our name, private key owner-only, bundle, checks."""

from __future__ import annotations

import stat
from pathlib import Path

import certifi
import pytest

from halton_meter.ca import CA_COMMON_NAME, CaProblem, ensure_ca, inspect_ca
from halton_meter.paths import MeterPaths


def test_created_once_and_checked(tmp_path: Path):
    paths = MeterPaths.resolve(tmp_path)
    info, created = ensure_ca(paths)
    assert created and CA_COMMON_NAME in info.subject
    assert stat.S_IMODE(paths.ca_key.stat().st_mode) & 0o077 == 0  # the private key is owner-only
    again, created_again = ensure_ca(paths)
    assert not created_again and again.sha256 == info.sha256
    bundle = paths.ca_bundle.read_text()
    assert paths.ca_cert.read_text().strip() in bundle
    assert Path(certifi.where()).read_text().strip()[:200] in bundle


def test_problems_say_what_to_do(tmp_path: Path):
    paths = MeterPaths.resolve(tmp_path)
    with pytest.raises(CaProblem, match="halton-meter init"):
        inspect_ca(paths)
    ensure_ca(paths)
    other = MeterPaths.resolve(tmp_path / "other")
    ensure_ca(other)
    paths.ca_key.write_bytes(other.ca_key.read_bytes())  # a key that does not match the certificate
    with pytest.raises(CaProblem, match="does not hold the key"):
        inspect_ca(paths)
