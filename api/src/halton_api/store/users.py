"""People who sign in: accounts and their server-side sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from psycopg import errors

from halton_api import tokens
from halton_api.errors import Conflict
from halton_api.models import UserPublic
from halton_api.store import Connection


@dataclass(frozen=True)
class Credentials:
    user: UserPublic
    password_hash: str


async def create_user(conn: Connection, *, email: str, name: str, password_hash: str) -> UserPublic:
    try:
        async with conn.transaction():
            cursor = await conn.execute(
                "INSERT INTO users (email, name, password_hash) VALUES (%s, %s, %s) RETURNING id, email, name",
                (email.strip(), name.strip(), password_hash),
            )
    except errors.UniqueViolation:
        raise Conflict(f"an account for {email} already exists: sign in instead") from None
    return UserPublic.model_validate(await cursor.fetchone())


async def get_credentials(conn: Connection, *, email: str) -> Credentials | None:
    row = await (
        await conn.execute(
            "SELECT id, email, name, password_hash FROM users WHERE lower(email) = lower(%s)",
            (email.strip(),),
        )
    ).fetchone()
    if row is None:
        return None
    return Credentials(UserPublic.model_validate(row), row["password_hash"])


async def set_password_hash(conn: Connection, *, user_id: UUID, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


async def create_session(conn: Connection, *, user_id: UUID, ttl: timedelta, user_agent: str = "") -> str:
    """A new session for `user_id`; returns the raw cookie value (stored only as its sha256)."""
    token = tokens.mint(tokens.SESSION_PREFIX)
    await conn.execute("DELETE FROM sessions WHERE user_id = %s AND expires_at < now()", (user_id,))
    await conn.execute(
        "INSERT INTO sessions (user_id, token_hash, expires_at, user_agent) VALUES (%s, %s, now() + %s, %s)",
        (user_id, tokens.digest(token), ttl, user_agent[:512]),
    )
    return token


async def get_session_user(conn: Connection, *, token: str) -> UserPublic | None:
    if not tokens.well_formed(token, tokens.SESSION_PREFIX):
        return None
    row = await (
        await conn.execute(
            "SELECT u.id, u.email, u.name FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = %s AND s.expires_at > now()",
            (tokens.digest(token),),
        )
    ).fetchone()
    return UserPublic.model_validate(row) if row else None


async def delete_session(conn: Connection, *, token: str) -> None:
    await conn.execute("DELETE FROM sessions WHERE token_hash = %s", (tokens.digest(token),))
