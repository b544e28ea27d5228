"""Provider admin keys: encrypted with a key derived from the cloud secret, decrypted only for a pull."""

from __future__ import annotations

import base64

import psycopg
import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from halton_meter.secretbox import SecretBoxError, fernet_for, open_provider_key, seal_provider_key
from halton_pipelines.provider_keys import load_connections
from halton_pipelines.testing.factories import SECRET, HandWorkspace


def test_round_trip_and_a_wrong_secret() -> None:
    token = seal_provider_key(SECRET, "sk-admin-123")
    assert b"sk-admin" not in token
    assert open_provider_key(SECRET, token) == "sk-admin-123"
    # The API seals with the same derivation (one purpose label), so what a settings page stores, Dagster reads.
    assert fernet_for(SECRET.encode(), "provider-admin-key").decrypt(token) == b"sk-admin-123"
    with pytest.raises(SecretBoxError, match=r"does not decrypt.*save the key again"):
        open_provider_key("another-secret", token)
    with pytest.raises(SecretBoxError, match="HALTON_SECRET_KEY is empty"):
        seal_provider_key("", "sk-x")


def test_keys_sealed_with_the_earlier_hkdf_derivation_still_open() -> None:
    legacy = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"halton provider connections v1")
    token = Fernet(base64.urlsafe_b64encode(legacy.derive(SECRET.encode()))).encrypt(b"sk-old")
    assert open_provider_key(SECRET, token) == "sk-old"


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
            (seal_provider_key("rotated-secret", "sk-x"),),
        )
    connections, problems = load_connections(stores.control_plane_url, SECRET, "openai")
    assert connections == [] and "does not decrypt" in problems[0] and str(hand.workspace_id) in problems[0]
    with psycopg.connect(stores.control_plane_url) as conn:
        conn.execute("UPDATE provider_connections SET revoked_at = now() WHERE provider = 'anthropic'")
    assert load_connections(stores.control_plane_url, SECRET, "anthropic") == ([], [])


def test_no_table_yet_means_nothing_to_pull(postgres_url) -> None:
    assert load_connections(postgres_url, SECRET, "openai") == ([], [])
