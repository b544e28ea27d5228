"""The HTTP entity tag of a published catalogue version, shared by the cloud (``GET /v1/rates``) and the meter
(which sends its installed version back as ``If-None-Match``).

A version names one document (the cloud stores a version once, never changes it), so an ETag made from the
version is a strong validator and the meter can compute it without the bytes the cloud served.
"""

from __future__ import annotations

import hashlib


def catalogue_etag(version: str) -> str:
    """``"<sha256 of the version>"``: a quoted strong ETag whatever characters the version holds."""
    return '"' + hashlib.sha256(version.encode()).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as RFC 9110 asks for it)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
