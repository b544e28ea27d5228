"""Encryption at rest for secrets the cloud must read back: pending pairing tokens, signing keys, provider admin
keys. The one key derivation the API (which encrypts what a person saves) and the Dagster pipelines (which
decrypt provider keys to pull billing) share: both import it from here, so they agree on nothing but the cloud
secret (`HALTON_SECRET_KEY`).

Each use gets its own Fernet key, HMAC-SHA256 of a purpose label under the secret, so a ciphertext of one kind
can never be decrypted as another, and rotating the secret invalidates them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROVIDER_KEY_PURPOSE = "provider-admin-key"
# Budget alert channels' secrets (the webhook signing secret, the SMTP password): sealed by the API, opened by
# the pipelines that deliver the alerts.
ALERT_CHANNEL_PURPOSE = "alert-channel"
# Provider keys written before the derivation was shared used HKDF with this info string; they still decrypt.
_LEGACY_PROVIDER_KEY_INFO = b"halton provider connections v1"


class SecretBoxError(RuntimeError):
    """A secret cannot be sealed or opened with the cloud secret."""


def _material(secret: str | bytes) -> bytes:
    material = secret.encode() if isinstance(secret, str) else secret
    if not material:
        raise SecretBoxError(
            "HALTON_SECRET_KEY is empty: secrets cannot be encrypted or decrypted without it"
        )
    return material


def fernet_for(secret: str | bytes, purpose: str) -> Fernet:
    key = hmac.new(_material(secret), f"halton-secretbox|{purpose}".encode(), hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def _provider_key_fernet(secret: str | bytes) -> MultiFernet:
    legacy = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LEGACY_PROVIDER_KEY_INFO)
    return MultiFernet(
        [
            fernet_for(secret, PROVIDER_KEY_PURPOSE),
            Fernet(base64.urlsafe_b64encode(legacy.derive(_material(secret)))),
        ]
    )


def seal_provider_key(secret: str | bytes, admin_key: str) -> bytes:
    """A provider admin key encrypted for `provider_connections.admin_key_encrypted`."""
    return _provider_key_fernet(secret).encrypt(admin_key.encode())


def open_provider_key(secret: str | bytes, token: bytes) -> str:
    try:
        return _provider_key_fernet(secret).decrypt(bytes(token)).decode()
    except InvalidToken as error:
        raise SecretBoxError(
            "a stored provider key does not decrypt with HALTON_SECRET_KEY (was the secret rotated?): "
            "save the key again in the workspace's billing connection settings"
        ) from error


EXPORT_SECRET_PURPOSE = "export-secret-access-key"


def seal_export_secret(secret: str | bytes, secret_access_key: str) -> bytes:
    """An export bucket's secret access key encrypted for `export_destinations.secret_access_key_encrypted`."""
    return fernet_for(secret, EXPORT_SECRET_PURPOSE).encrypt(secret_access_key.encode())


def open_export_secret(secret: str | bytes, token: bytes) -> str:
    try:
        return fernet_for(secret, EXPORT_SECRET_PURPOSE).decrypt(bytes(token)).decode()
    except InvalidToken as error:
        raise SecretBoxError(
            "the stored export secret access key does not decrypt with HALTON_SECRET_KEY (was the secret "
            "rotated?): save the export settings again"
        ) from error
