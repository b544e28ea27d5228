"""``cloud …``: pairing this machine with a Halton Meter Cloud workspace (``cloud_pairing_commands``), and
watching the sync (``cloud_sync_commands``)."""

from __future__ import annotations

import click

from halton_meter.cli.cloud_pairing_commands import connect, disconnect, whoami
from halton_meter.cli.cloud_sync_commands import cloud_status, pause, reconcile, resume, sync


@click.group()
def cloud() -> None:
    """Pair this machine with a Halton Meter Cloud workspace, and watch the sync.

    Off by default: nothing leaves this machine until `cloud connect` is approved in the browser.
    """


for command in (connect, cloud_status, sync, reconcile, pause, resume, whoami, disconnect):
    cloud.add_command(command)
