"""``cloud-credentials.json`` (the raw ``hm_sync_…`` token) and ``cloud.key`` (a Fernet key), both 0600.

The token file is what the worker authenticates with. ``cloud.key`` encrypts the copy of the token kept
in the ``cloud_state`` row (``api_key_ciphertext``), so a copied ``db.sqlite`` alone does not leak it.
Files are written to a temporary name created 0600 and renamed into place, so the secret is never
readable by others, not even for an instant, and a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from halton_meter.paths import MeterPaths

PRIVATE_MODE = 0o600
TOKEN_PREFIX = "hm_sync_"


class CredentialsProblem(RuntimeError):
    """The credentials on disk cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Credentials:
    token: str
    pairing_id: str  # local: tells this pairing's cloud_state row from a newer one
    workspace_id: str
    machine_id: str
    paired_at: str
    device_id: str | None = None


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, PRIVATE_MODE)  # in case a umask narrowed it further, or a filesystem ignored the mode
    tmp.replace(path)


def save_credentials(paths: MeterPaths, credentials: Credentials) -> None:
    write_private(paths.cloud_credentials, (json.dumps(asdict(credentials), indent=2) + "\n").encode())


def load_credentials(paths: MeterPaths) -> Credentials | None:
    """The saved credentials, or None when the machine is not paired."""
    try:
        document = json.loads(paths.cloud_credentials.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CredentialsProblem(
            f"{paths.cloud_credentials} cannot be read ({exc}): run `halton-meter cloud connect` to pair again"
        ) from None
    try:
        credentials = Credentials(
            token=str(document["token"]),
            pairing_id=str(document["pairing_id"]),
            workspace_id=str(document["workspace_id"]),
            machine_id=str(document["machine_id"]),
            paired_at=str(document["paired_at"]),
            device_id=document.get("device_id"),
        )
    except (KeyError, TypeError) as exc:
        raise CredentialsProblem(
            f"{paths.cloud_credentials} is missing {exc}: run `halton-meter cloud connect` to pair again"
        ) from None
    if not credentials.token.startswith(TOKEN_PREFIX):
        raise CredentialsProblem(
            f"{paths.cloud_credentials} does not hold an {TOKEN_PREFIX}… token: run `halton-meter cloud connect`"
        )
    return credentials


def new_key(paths: MeterPaths) -> bytes:
    """A fresh Fernet key in ``cloud.key`` (each pairing gets its own)."""
    # cryptography is imported where a key is used, so `status` on an unpaired machine never loads it.
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    write_private(paths.cloud_key, key + b"\n")
    return key


def encrypt(key: bytes, token: str) -> str:
    from cryptography.fernet import Fernet

    return Fernet(key).encrypt(token.encode()).decode("ascii")


def decrypt(key: bytes, ciphertext: str) -> str:
    from cryptography.fernet import Fernet, InvalidToken

    try:
        return Fernet(key).decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise CredentialsProblem(
            "cloud.key does not decrypt the token mirrored in db.sqlite: run `halton-meter cloud connect`"
        ) from exc


def wipe(paths: MeterPaths) -> list[Path]:
    """Remove the token and the key; returns the files that were there."""
    removed = []
    for path in (paths.cloud_credentials, paths.cloud_key):
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777
