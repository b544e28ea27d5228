"""API keys on the advanced settings page: shown once, stored hashed, listed by prefix, revocable."""

from __future__ import annotations

import hashlib
import re

import psycopg
from fastapi.testclient import TestClient

from halton_api import tokens
from halton_api.testing.factories import Browser, bearer, make_user, make_workspace


def test_create_shows_the_key_once_and_stores_only_a_hash(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    page = admin.post(f"/{workspace.slug}/settings/advanced/api-keys", {"name": "finance export"})
    assert page.status_code == 200
    key = re.search(r'value="(hm_key_[A-Za-z0-9]+)"', page.text).group(1)
    assert tokens.well_formed(key, tokens.API_KEY_PREFIX)

    listing = admin.get(f"/{workspace.slug}/settings/advanced").text
    assert key not in listing and tokens.shown_prefix(key) in listing and "finance export" in listing
    with psycopg.connect(postgres_url) as conn:
        stored_hash, prefix = conn.execute("SELECT key_hash, key_prefix FROM api_keys").fetchone()
    assert bytes(stored_hash) == hashlib.sha256(key.encode()).digest()
    assert prefix == tokens.shown_prefix(key) and len(prefix) < 16

    listed = client.get(f"/v1/{workspace.slug}/api-keys", headers=bearer(key)).json()
    assert [(k["name"], k["key_prefix"]) for k in listed] == [("finance export", prefix)]
    assert listed[0]["last_used_at"] is not None
