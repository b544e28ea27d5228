"""CSRF tokens for every form: a signed double-submit bound to the browser and to its session.

Each browser gets a random `halton_csrf` cookie (HttpOnly, SameSite=Lax). A form's token is an HMAC, under
the server's secret key, of that cookie value and of the session (when signed in). A forged cross-site
post cannot read the cookie nor compute the HMAC, and a token from before sign-in or from another session
does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COOKIE = "halton_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"


def new_cookie_value() -> str:
    return secrets.token_urlsafe(32)


def token_for(secret: bytes, cookie_value: str, session: str | None) -> str:
    session_part = hashlib.sha256(session.encode()).hexdigest() if session else "-"
    message = f"csrf|{cookie_value}|{session_part}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify(secret: bytes, cookie_value: str | None, session: str | None, submitted: str | None) -> bool:
    if not cookie_value or not submitted:
        return False
    return hmac.compare_digest(token_for(secret, cookie_value, session), submitted)
