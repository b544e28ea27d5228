"""The local side of a pairing: what approval writes, and what disconnecting wipes.

Approval writes, in this order, so the daemon's supervisor (which starts the worker once
``enabled = true`` and the credentials exist) never sees half a pairing:

1. ``cloud.key`` - a fresh Fernet key, 0600;
2. the ``cloud_state`` row - workspace, machine id, hostname snapshot, the token encrypted with that key;
3. ``cloud-credentials.json`` - the raw token, 0600;
4. ``config.toml`` ``[cloud]`` - ``enabled = true``, ``base_url``, ``workspace_id`` (only that table),
   and ``base_url_written_by_meter`` when the URL was the meter's default rather than the user's choice.

Wiping undoes the same in reverse: ``enabled = false`` first (the worker stops on its next tick), then
the files, then the row. Rows stay in ``db.sqlite`` with their ``synced_at``: capture goes on locally.
"""

from __future__ import annotations

import logging
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from halton_meter.cloud import config_table, credentials, state
from halton_meter.cloud.client import Approval, CloudClient, CloudRefused, CloudUnreachable
from halton_meter.cloud.credentials import Credentials
from halton_meter.paths import MeterPaths
from halton_meter.spend_limits import forget_limits
from halton_meter.store import open_store, ts

logger = logging.getLogger(__name__)


class PairingMismatch(RuntimeError):
    """The cloud approved a different machine than this one; nothing was written."""


@dataclass(frozen=True)
class Paired:
    credentials: Credentials
    workspace_slug: str
    workspace_name: str
    hostname: str


def hostname_snapshot() -> str:
    return socket.gethostname() or "unknown"


def complete_pairing(
    paths: MeterPaths,
    *,
    base_url: str,
    approval: Approval,
    machine_id: str,
    hostname: str,
    base_url_by_meter: bool = False,
    dashboard_origin: str | None = None,
) -> Paired:
    """Write the pairing; ``base_url_by_meter``: nobody chose ``base_url``, it is the meter's default
    (recorded beside it, so that only such a URL can ever be healed; see :mod:`.config_table`).
    ``dashboard_origin``: the cloud's dashboard, recorded as ``[cloud] dashboard_origin`` so that its
    "Pair this machine" may call the meter later (None leaves the key alone: the user chose it)."""
    if approval.machine_id != machine_id:
        raise PairingMismatch(
            f"the cloud approved machine {approval.machine_id!r} but this machine is {machine_id!r} "
            f"({paths.machine}); nothing was written: run `halton-meter cloud connect` again"
        )
    paired_at = ts(state.now_utc())
    pairing_id = str(uuid.uuid4())
    key = credentials.new_key(paths)
    conn = open_store(paths.db)
    try:
        state.write_pairing(
            conn,
            {
                "pairing_id": pairing_id,
                "base_url": base_url,
                "workspace_id": approval.workspace_id,
                "workspace_slug": approval.workspace_slug,
                "workspace_name": approval.workspace_name,
                "device_id": approval.device_id,
                "machine_id": machine_id,
                "hostname": hostname,
                "api_key_ciphertext": credentials.encrypt(key, approval.token),
                "paired_at": paired_at,
            },
        )
    finally:
        conn.close()
    saved = Credentials(
        token=approval.token,
        pairing_id=pairing_id,
        workspace_id=approval.workspace_id,
        machine_id=machine_id,
        paired_at=paired_at,
        device_id=approval.device_id,
    )
    credentials.save_credentials(paths, saved)
    config_table.set_cloud_keys(
        paths.config,
        {
            "enabled": True,
            "base_url": base_url,
            "base_url_written_by_meter": base_url if base_url_by_meter else None,
            "workspace_id": approval.workspace_id,
            **(
                {"dashboard_origin": dashboard_origin, "dashboard_origin_written_by_meter": dashboard_origin}
                if dashboard_origin
                else {}
            ),
        },
    )
    logger.info(
        "paired with workspace %s (%s) as machine %s",
        approval.workspace_slug,
        approval.workspace_id,
        machine_id,
    )
    return Paired(saved, approval.workspace_slug, approval.workspace_name, hostname)


def revoke_replaced(base_url: str, token: str) -> tuple[bool, str]:
    """Revoke the token a completed re-pairing replaced; (done, the sentence for the person).

    Called only once the new pairing is saved, so an interrupted re-pairing leaves the machine paired.
    """
    with CloudClient(base_url) as old:
        try:
            old.disconnect(token)
        except CloudRefused as exc:
            if exc.status == 401:  # re-paired into the same workspace: the approval already replaced it
                return True, "The previous token was already replaced."
            problem = f"{old.host} refused to revoke it ({exc})"
        except CloudUnreachable as exc:
            problem = str(exc)
        else:
            return True, f"Previous token revoked at {old.host}."
    logger.warning("could not revoke the replaced token: %s", problem)
    return False, (
        f"Could not revoke the previous token: {problem}. Revoke the old device on its workspace's "
        "devices page."
    )


def wipe_local(paths: MeterPaths) -> list[Path]:
    """Disable sync and forget the pairing; returns the credential files removed."""
    config_table.set_cloud_keys(paths.config, {"enabled": False})
    removed = credentials.wipe(paths)
    if paths.db.exists():
        conn = open_store(paths.db)
        try:
            state.clear(conn)
            forget_limits(conn)  # another workspace's limits, or none: never this one's after a disconnect
        finally:
            conn.close()
    logger.info(
        "cloud pairing wiped locally: %s", ", ".join(p.name for p in removed) or "no credential files"
    )
    return removed
