"""Secrets we hand out once: device sync tokens, API keys, invitation links and sessions.

A token is `<kind prefix><30 random base62 characters><6-character base62 CRC32 of those 30>`, the same
shape as GitHub's tokens: the prefix says what it is, the checksum lets a secret scanner (or this server,
before touching the database) reject a mistyped or made-up token offline. We store only its sha256 digest
(right for high-entropy secrets: nothing to brute-force) and a short prefix to show in lists.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from typing import Final

DEVICE_TOKEN_PREFIX: Final = "hm_sync_"
API_KEY_PREFIX: Final = "hm_key_"
INVITATION_PREFIX: Final = "hm_inv_"
SESSION_PREFIX: Final = "hm_ses_"

_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH: Final = 30  # 30 base62 characters: about 178 bits
_CHECKSUM_LENGTH: Final = 6
_SHOWN_LENGTH: Final = 4  # characters of the body kept in clear to tell keys apart


def mint(prefix: str) -> str:
    """A fresh token of the kind named by `prefix`."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    return f"{prefix}{body}{_checksum(body)}"


def well_formed(token: str, prefix: str) -> bool:
    """True when `token` has the kind's prefix, the right length, base62 characters and a valid checksum."""
    if not token.startswith(prefix) or len(token) != len(prefix) + _BODY_LENGTH + _CHECKSUM_LENGTH:
        return False
    rest = token[len(prefix) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, checksum = rest[:_BODY_LENGTH], rest[_BODY_LENGTH:]
    return secrets.compare_digest(checksum, _checksum(body))


def digest(token: str) -> bytes:
    """What we store and look tokens up by."""
    return hashlib.sha256(token.encode()).digest()


def shown_prefix(token: str) -> str:
    """The part of a token that lists may show, e.g. `hm_sync_Ab3x`."""
    kind = token[: token.index("_", 3) + 1] if token.count("_") >= 2 else ""
    return token[: len(kind) + _SHOWN_LENGTH]


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    chars = []
    for _ in range(_CHECKSUM_LENGTH):
        value, remainder = divmod(value, 62)
        chars.append(_ALPHABET[remainder])
    return "".join(reversed(chars))
