"""Provider admin keys: encrypted with a key derived from the cloud secret, decrypted only for a pull."""

from __future__ import annotations

import psycopg
import pytest

from halton_pipelines.provider_keys import (
    ProviderKeyError,
    decrypt_admin_key,
    encrypt_admin_key,
    fernet,
    load_connections,
)
from halton_pipelines.testing.factories import SECRET, HandWorkspace


def test_round_trip_and_a_wrong_secret() -> None:
    token = encrypt_admin_key(SECRET, "sk-admin-123")
    assert b"sk-admin" not in token
    assert decrypt_admin_key(SECRET, token) == "sk-admin-123"
    with pytest.raises(ProviderKeyError, match=r"does not decrypt.*save the key again"):
        decrypt_admin_key("another-secret", token)
    with pytest.raises(ProviderKeyError, match="HALTON_SECRET_KEY is empty"):
        fernet("")


def test_connections_are_read_and_bad_ones_reported(stores) -> None:
    hand = HandWorkspace()
    hand.seed_control_plane(stores.control_plane_url)
    connections, problems = load_connections(stores.control_plane_url, SECRET, "xai")
    assert [(c.workspace_id, c.admin_key, c.team_id) for c in connections] == [
        (hand.workspace_id, hand.xai_key, hand.xai_team)
    ]
    assert problems == []
    with psycopg.connect(stores.control_plane_url) as conn:
        conn.execute(
            "UPDATE provider_connections SET admin_key_encrypted = %s WHERE provider = 'openai'",
            (encrypt_admin_key("rotated-secret", "sk-x"),),
        )
    connections, problems = load_connections(stores.control_plane_url, SECRET, "openai")
    assert connections == [] and "does not decrypt" in problems[0] and str(hand.workspace_id) in problems[0]
    with psycopg.connect(stores.control_plane_url) as conn:
        conn.execute("UPDATE provider_connections SET revoked_at = now() WHERE provider = 'anthropic'")
    assert load_connections(stores.control_plane_url, SECRET, "anthropic") == ([], [])


def test_no_table_yet_means_nothing_to_pull(postgres_url) -> None:
    assert load_connections(postgres_url, SECRET, "openai") == ([], [])
