"""Security headers on every response: what a browser may load and run on our pages, and who may frame them.

The pages are server-rendered with their script in `/static` (no inline script, no inline style, no event
attribute; charts are SVG whose colours are attributes), so the policy allows only this origin, plus the
meter on the visitor's own machine for "Pair this machine" (`static/pair.js` calls its loopback API).
`/docs` (Swagger UI from its CDN, one inline bootstrap script) gets a policy of its own, set by its route.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from halton_api.cloud_settings import CloudSettings

SWAGGER_CDN = "https://cdn.jsdelivr.net"
SWAGGER_FAVICON = "https://fastapi.tiangolo.com"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def page_policy(settings: CloudSettings) -> str:
    """The Content-Security-Policy of every page (and, harmlessly, of every other response)."""
    meter = urlsplit(settings.meter_loopback_url)
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            f"connect-src 'self' {meter.scheme}://{meter.netloc}",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def docs_policy(page: bytes) -> str:
    """The policy of the Swagger UI page `page`: its CDN, and its inline bootstrap script by hash (computed
    from the page itself, so a FastAPI upgrade that changes the script cannot silently break the docs).
    Swagger UI styles elements as it renders them, hence 'unsafe-inline' for styles on this page only; it
    shows nothing but our own schema."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {SWAGGER_CDN} {hashes}",
            f"style-src 'self' {SWAGGER_CDN} 'unsafe-inline'",
            f"img-src 'self' data: {SWAGGER_FAVICON}",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "object-src 'none'",
        )
    )


def default_headers(settings: CloudSettings) -> list[tuple[str, str]]:
    return [
        ("Content-Security-Policy", page_policy(settings)),
        ("X-Frame-Options", "DENY"),  # frame-ancestors for browsers that predate it
        ("X-Content-Type-Options", "nosniff"),
        # Links out (methodology, a provider's console) carry no path: invitation and report URLs stay here.
        ("Referrer-Policy", "same-origin"),
    ]


class SecurityHeaders:
    """Adds `headers` to every HTTP response that does not set them itself. Plain ASGI, not
    BaseHTTPMiddleware: on the ingestion path it costs a closure and a short list, nothing measurable."""

    def __init__(self, app, *, headers: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self.headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                existing = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in existing}
                message["headers"] = existing + [h for h in self.headers if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)
