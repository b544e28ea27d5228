"""``halton-meter``: the command line. It owns the terminal; everything else logs.

One module per command group: ``meter_commands`` (init, start, stop, status, override), ``report_commands``
(report, reprice), ``setup_commands`` (ca, doctor, fingerprint), ``cloud_commands`` (cloud …, its pairing
commands in ``cloud_pairing_commands`` and its sync commands in ``cloud_sync_commands``) and
``rates_commands`` (rates …); ``terminal`` holds what they share. Heavy modules (mitmproxy, httpx,
cryptography, pricing data, rich's tables) are imported inside the commands that need them, so
``status``, ``cloud status`` and ``report`` start fast; ``daemon/tests/test_cli_imports.py`` fails if one
of them creeps back onto those paths.
"""

from __future__ import annotations

import click

from halton_meter.cli.cloud_commands import cloud
from halton_meter.cli.meter_commands import init, override, start, status, stop
from halton_meter.cli.rates_commands import rates
from halton_meter.cli.report_commands import report, reprice
from halton_meter.cli.setup_commands import ca, doctor, fingerprint


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="halton-meter", prog_name="halton-meter")
def main() -> None:
    """Halton Meter: see what every LLM API call costs, on this machine.

    The daemon is a local proxy on 127.0.0.1:8090. Point tools at it with HTTPS_PROXY (and trust the
    meter's CA: `halton-meter ca`) or with a base URL such as
    ANTHROPIC_BASE_URL=http://127.0.0.1:8090/anthropic. Files live in ~/.halton-meter
    (HALTON_METER_HOME to move them).
    """


for command in (init, start, stop, status, override, report, reprice, ca, doctor, fingerprint, cloud, rates):
    main.add_command(command)
