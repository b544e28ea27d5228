"""Password hashing with argon2id (argon2-cffi's defaults, the RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 1024

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def problem(password: str) -> str | None:
    """Why `password` is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters for your password"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters for your password"
    return None


# A real hash to verify against when the email is unknown, so both paths take the same time.
DUMMY_HASH = _hasher.hash("not a real password, only here to spend the same time")
