"""Ids posted by the dashboards' forms: read in one place, so a malformed one is always a 422 naming the
field and what it should have been, never a 500 from `UUID()`."""

from __future__ import annotations

from uuid import UUID

from halton_api.errors import Invalid


def optional_id(text: str, field: str, things: str) -> UUID | None:
    """The id a form field holds, None when it was left empty ("the whole workspace", "no cost center")."""
    if not text:
        return None
    try:
        return UUID(text)
    except ValueError:
        raise Invalid(f"{field}: not one of this workspace's {things}") from None


def required_id(text: str, field: str, things: str) -> UUID:
    found = optional_id(text, field, things)
    if found is None:
        raise Invalid(f"{field}: not one of this workspace's {things}")
    return found
