"""Signed-in HTTP clients of the demo cloud, for the dashboard tests that post forms or read JSON and CSV."""

from __future__ import annotations

import httpx
from demo_marts import DEMO_PASSWORD

from cloud_support import CSRF_FIELD


def signed_in(base_url: str, email: str) -> httpx.Client:
    """A client with the session of `email` (a demo member: every one has the demo password)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    token = CSRF_FIELD.search(client.get("/signin").text).group(1)
    response = client.post("/signin", data={"csrf_token": token, "email": email, "password": DEMO_PASSWORD})
    assert response.status_code == 303, response.text
    return client


def csrf(client: httpx.Client, path: str) -> str:
    """The CSRF token of the form on `path`."""
    page = client.get(path)
    found = CSRF_FIELD.search(page.text)
    assert found, f"no form on {path} ({page.status_code})"
    return found.group(1)
