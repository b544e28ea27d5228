"""Encryption at rest for secrets we must be able to read back (pending pairing tokens, provider admin keys).

Each use gets its own Fernet key derived from the cloud's secret key and a purpose label, so a ciphertext
of one kind can never be decrypted as another, and rotating the secret key invalidates them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet


def fernet_for(secret: bytes, purpose: str) -> Fernet:
    key = hmac.new(secret, f"halton-secretbox|{purpose}".encode(), hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))
