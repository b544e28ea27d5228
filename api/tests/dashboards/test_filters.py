"""The rail's branch, ticket and tool filters: parsed, echoed into links, applied only where the marts can."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from halton_api.dashboards.filters import Filters, Scope
from halton_api.errors import Invalid


def scope(filters: Filters) -> Scope:
    now = datetime(2026, 12, 6, 14, tzinfo=UTC)
    return Scope(workspace_id=uuid4(), filters=filters, period=filters.period(now), now=now)


def test_branch_ticket_and_tool_are_rail_parameters() -> None:
    filters = Filters.from_query(
        [("ticket", "SHOP-1,SHOP-2"), ("branch", "feature/SHOP-1"), ("tool", "claude-code"), ("kind", "x")]
    )
    assert (filters.tickets, filters.branches, filters.tools) == (
        ("SHOP-1", "SHOP-2"), ("feature/SHOP-1",), ("claude-code",)
    )  # fmt: skip
    assert filters.narrowed and filters.by_origin
    assert filters.query() == "?branch=feature%2FSHOP-1&ticket=SHOP-1&ticket=SHOP-2&tool=claude-code"
    assert filters.without_origin() == ""  # what the navigation keeps: views that cannot filter by them
    assert filters.as_json()["ticket"] == ["SHOP-1", "SHOP-2"]


def test_views_over_per_call_marts_apply_them_and_the_others_refuse() -> None:
    where, params = scope(Filters(tickets=("SHOP-1",), tools=("claude-code",))).condition(
        origin=True, alias="r"
    )
    assert "ifNull(r.ticket, '') IN %(tickets)s" in where and "ifNull(r.tool, '') IN %(tools)s" in where
    assert params["tickets"] == ("SHOP-1",) and "branchs" not in params
    with pytest.raises(Invalid, match="Branches & tickets"):
        scope(Filters(branches=("main",))).condition()
    # Without them, every view works as before.
    plain, _ = scope(Filters()).condition()
    assert "ticket" not in plain
