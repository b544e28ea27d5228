"""Token format: kind prefix, 30 random base62 characters, a CRC32 checksum a scanner can check offline."""

from __future__ import annotations

import hashlib
import re

from hypothesis import given
from hypothesis import strategies as st

from halton_api import tokens


def test_shape_and_checksum() -> None:
    token = tokens.mint(tokens.DEVICE_TOKEN_PREFIX)
    assert re.fullmatch(r"hm_sync_[0-9A-Za-z]{36}", token)
    assert tokens.well_formed(token, tokens.DEVICE_TOKEN_PREFIX)
    assert not tokens.well_formed(token, tokens.API_KEY_PREFIX)
    assert tokens.digest(token) == hashlib.sha256(token.encode()).digest()
    assert tokens.shown_prefix(token) == token[:12]
    assert tokens.shown_prefix(tokens.mint(tokens.API_KEY_PREFIX)).startswith("hm_key_")


def test_tokens_do_not_repeat() -> None:
    assert len({tokens.mint(tokens.API_KEY_PREFIX) for _ in range(1000)}) == 1000


@given(
    st.integers(min_value=0, max_value=35),
    st.sampled_from("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
)
def test_a_single_changed_character_fails_the_checksum(position: int, replacement: str) -> None:
    token = tokens.mint(tokens.DEVICE_TOKEN_PREFIX)
    body = list(token[len(tokens.DEVICE_TOKEN_PREFIX) :])
    if body[position] == replacement:
        return
    body[position] = replacement
    assert not tokens.well_formed(tokens.DEVICE_TOKEN_PREFIX + "".join(body), tokens.DEVICE_TOKEN_PREFIX)


def test_malformed_tokens() -> None:
    for bad in ("", "hm_sync_", "hm_sync_" + "a" * 36, "hm_sync_" + "!" * 36, tokens.mint("hm_sync_") + "x"):
        assert not tokens.well_formed(bad, tokens.DEVICE_TOKEN_PREFIX)
