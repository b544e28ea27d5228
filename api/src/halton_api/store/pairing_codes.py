"""Pairing codes: a meter asks for one, a member approves it in the browser, the meter collects its token.

The code is 8 Crockford-base32 characters (no I, L, O or U; shown as `XXXX-XXXX`), valid for 10 minutes
and good for one decision. Codes and poll secrets are stored as sha256 digests. Approval creates the device
(and its audit event) and mints its sync token at once; the token waits, Fernet-encrypted, for the meter's
next poll, which takes it exactly once and wipes the ciphertext.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from cryptography.fernet import Fernet

from halton_api import tokens
from halton_api.models import DevicePublic, UserPublic, WorkspacePublic
from halton_api.store import Connection, audit, devices, workspaces
from halton_api.store.audit import Actor

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 8
CODE_TTL = timedelta(minutes=10)
POLL_SECRET_PREFIX = "hm_poll_"
# Crockford's decoding rules: read the look-alikes a person may type as the digits they stand for.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})

PollStatus = Literal["pending", "approved", "denied", "expired", "consumed", "cancelled"]


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str | None:
    """The canonical code for what a person typed or pasted, or None when it cannot be a code."""
    cleaned = "".join(text.split()).replace("-", "").upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in cleaned):
        return None
    return cleaned


def display_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class PairingStarted:
    code: str
    poll_secret: str
    expires_at: datetime


@dataclass(frozen=True)
class PendingPairing:
    id: UUID
    code: str
    machine_id: str
    hostname: str
    meter_version: str
    requested_from: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PollResult:
    status: PollStatus
    token: str | None = None
    workspace: WorkspacePublic | None = None
    device_id: UUID | None = None
    machine_id: str | None = None


async def start_pairing(
    conn: Connection, *, machine_id: str, hostname: str, meter_version: str, requested_from: str
) -> PairingStarted:
    # Drop codes long past their use so the table stays small; expired ones are kept a day for polls.
    await conn.execute("DELETE FROM pairing_codes WHERE expires_at < now() - interval '1 day'")
    while True:
        code = new_code()
        poll_secret = tokens.mint(POLL_SECRET_PREFIX)
        row = await (
            await conn.execute(
                "INSERT INTO pairing_codes (code_hash, poll_secret_hash, machine_id, hostname, meter_version,"
                " requested_from, expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + %s)"
                " ON CONFLICT (code_hash) DO NOTHING RETURNING expires_at",
                (
                    _digest(code),
                    _digest(poll_secret),
                    machine_id,
                    hostname,
                    meter_version,
                    requested_from,
                    CODE_TTL,
                ),
            )
        ).fetchone()
        if row is not None:  # else a live code collided (one in 2^40): draw again
            return PairingStarted(code=code, poll_secret=poll_secret, expires_at=row["expires_at"])


async def find_pending(conn: Connection, *, code: str) -> PendingPairing | None:
    """The pairing waiting for a decision under `code` (canonical form), or None (unknown, used, expired)."""
    row = await (
        await conn.execute(
            "SELECT id, machine_id, hostname, meter_version, requested_from, created_at, expires_at"
            " FROM pairing_codes WHERE code_hash = %s AND status = 'pending' AND expires_at > now()",
            (_digest(code),),
        )
    ).fetchone()
    return PendingPairing(code=code, **row) if row else None


async def approve(
    conn: Connection, *, code: str, workspace: WorkspacePublic, user: UserPublic, cipher: Fernet
) -> DevicePublic | None:
    """Pair the machine behind `code` with `workspace`; None when the code is no longer pending."""
    row = await (
        await conn.execute(
            "SELECT id, machine_id, hostname FROM pairing_codes"
            " WHERE code_hash = %s AND status = 'pending' AND expires_at > now() FOR UPDATE",
            (_digest(code),),
        )
    ).fetchone()
    if row is None:
        return None
    actor = Actor.user(user.id, user.email)
    created = await devices.create_device(
        conn,
        workspace_id=workspace.id,
        machine_id=row["machine_id"],
        hostname=row["hostname"],
        paired_by=user,
        actor=actor,
    )
    await conn.execute(
        "UPDATE pairing_codes SET status = 'approved', decided_by = %s, decided_at = now(), workspace_id = %s,"
        " device_id = %s, token_ciphertext = %s WHERE id = %s",
        (user.id, workspace.id, created.device.id, cipher.encrypt(created.token.encode()), row["id"]),
    )
    await audit.record(
        conn,
        workspace_id=workspace.id,
        actor=actor,
        event="pairing.approved",
        resource_type="device",
        resource_id=created.device.id,
        resource_label=created.device.display_name,
        details={"machine_id": row["machine_id"], "hostname": row["hostname"], "code": display_code(code)},
    )
    return created.device


async def deny(conn: Connection, *, code: str, workspace: WorkspacePublic, user: UserPublic) -> bool:
    """Refuse the pairing behind `code`; False when it is no longer pending."""
    row = await (
        await conn.execute(
            "UPDATE pairing_codes SET status = 'denied', decided_by = %s, decided_at = now()"
            " WHERE code_hash = %s AND status = 'pending' AND expires_at > now()"
            " RETURNING machine_id, hostname",
            (user.id, _digest(code)),
        )
    ).fetchone()
    if row is None:
        return False
    await audit.record(
        conn,
        workspace_id=workspace.id,
        actor=Actor.user(user.id, user.email),
        event="pairing.denied",
        resource_type="device",
        resource_label=row["hostname"] or row["machine_id"],
        details={"machine_id": row["machine_id"], "hostname": row["hostname"], "code": display_code(code)},
    )
    return True


async def cancel(conn: Connection, *, poll_secret: str) -> PollStatus | None:
    """Withdraw the code behind `poll_secret` so nobody can approve it any more; None when no pairing has it.

    Idempotent. A pending code becomes `cancelled`. So does one approved a moment before the meter gave up
    but whose token it never collected: its device is revoked, since no machine will ever hold that token.
    A collected (`consumed`), denied or already cancelled code is left as it is.
    """
    row = await (
        await conn.execute(
            "SELECT id, status, expires_at < now() AS expired, workspace_id, device_id"
            " FROM pairing_codes WHERE poll_secret_hash = %s FOR UPDATE",
            (_digest(poll_secret),),
        )
    ).fetchone()
    if row is None:
        return None
    if row["status"] not in ("pending", "approved"):
        return row["status"]
    await conn.execute(
        "UPDATE pairing_codes SET status = 'cancelled', token_ciphertext = NULL,"
        " decided_at = coalesce(decided_at, now()) WHERE id = %s",
        (row["id"],),
    )
    if row["status"] == "approved":
        await devices.set_status(
            conn,
            workspace_id=row["workspace_id"],
            device_id=row["device_id"],
            status="revoked",
            actor=Actor.system("pairing cancelled by the meter before it collected its token"),
        )
    return "cancelled"


async def collect(conn: Connection, *, poll_secret: str, cipher: Fernet) -> PollResult | None:
    """What the meter polling with `poll_secret` may know now; the token is handed out exactly once."""
    # Lock the pairing row alone: a join under FOR UPDATE would re-check only this row after waiting
    # for a concurrent approval and could pair its new state with the join's old (empty) workspace.
    row = await (
        await conn.execute(
            "SELECT id, status, expires_at < now() AS expired, token_ciphertext, device_id, machine_id,"
            " workspace_id FROM pairing_codes WHERE poll_secret_hash = %s FOR UPDATE",
            (_digest(poll_secret),),
        )
    ).fetchone()
    if row is None:
        return None
    status = row["status"]
    if status == "pending":
        return PollResult(status="expired" if row["expired"] else "pending")
    if status != "approved":
        return PollResult(status=status)
    await conn.execute(
        "UPDATE pairing_codes SET status = 'consumed', token_ciphertext = NULL WHERE id = %s", (row["id"],)
    )
    return PollResult(
        status="approved",
        token=cipher.decrypt(row["token_ciphertext"]).decode(),
        workspace=await workspaces.get_workspace_by_id(conn, workspace_id=row["workspace_id"]),
        device_id=row["device_id"],
        machine_id=row["machine_id"],
    )
