"""Starting the meter: what stops it from starting, said clearly."""

from __future__ import annotations

import socket

import pytest

from halton_meter.daemon import Meter, MeterError
from halton_meter.settings import load_settings


def test_a_port_in_use_is_named_with_the_fix(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        meter = Meter(load_settings(home.home, port=port))
        with pytest.raises(MeterError, match=rf"127.0.0.1:{port} is already in use.*\[proxy\] port"):
            meter.start_background()


def test_a_bad_rates_file_stops_the_start(home):
    (home.home / "rates.json").write_text('{"format": 2}')
    with pytest.raises(MeterError, match=r"rates\.json"):
        Meter(load_settings(home.home))


def test_a_missing_machine_file_says_to_init(home):
    home.machine.unlink()
    with pytest.raises(MeterError, match="halton-meter init"):
        Meter(load_settings(home.home))


def test_mitmproxy_options_follow_the_settings(home):
    home.config.write_text(
        '[proxy]\nport = 0\nupstream_ca_file = "/etc/corp.pem"\n'
        '[attribution]\ndefault_project = "misc"\n[attribution.api_keys]\n"sha256:0123456789abcdef" = "web"\n'
        '[providers.openai]\nupstream = "https://gw.corp"\nextra_hosts = ["x.openai.azure.com"]\n'
    )
    options = Meter(load_settings(home.home)).mitmproxy_options()
    assert options["connection_strategy"] == "lazy" and options["confdir"] == str(home.home)
    assert options["ssl_verify_upstream_trusted_ca"] == "/etc/corp.pem"
    assert options["halton_upstreams"] == ["openai=https://gw.corp"]
    assert options["halton_extra_hosts"] == ["openai=x.openai.azure.com"]
    assert options["halton_key_projects"] == ["sha256:0123456789abcdef=web"]
    assert options["halton_default_project"] == "misc"
