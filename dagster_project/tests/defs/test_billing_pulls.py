"""Billing assets: a day's pull for every connected workspace lands in raw.provider_costs and provider_usage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import dagster as dg
import psycopg
import pytest

from halton_meter.secretbox import seal_provider_key
from halton_pipelines.defs.billing_pulls import billing_assets, billing_daily_schedule
from halton_pipelines.resources import BillingAPIsResource, ProviderKeysResource, WarehouseResource
from halton_pipelines.testing.factories import SECRET, HandWorkspace
from halton_pipelines.testing.fake_billing import FakeBilling, FakeCost, Organisation, serve

OCT1 = "2026-10-01"


@pytest.fixture(scope="module")
def hand(stores) -> HandWorkspace:
    workspace = HandWorkspace()
    workspace.seed_control_plane(stores.control_plane_url)
    return workspace


@pytest.fixture(scope="module")
def fake(hand):
    billing = FakeBilling(page_size=1)
    for key, organisation in hand.organisations().items():
        billing.add(key, organisation)
    with serve(billing) as running:
        yield running


def _resources(stores, fake: FakeBilling) -> dict:
    return {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "provider_keys": ProviderKeysResource(database_url=stores.control_plane_url, secret_key=SECRET),
        "billing_apis": BillingAPIsResource(
            openai_base_url=fake.url, anthropic_base_url=fake.url, xai_base_url=fake.url, backoff_seconds=0.01
        ),
    }


def _lines(stores, provider: str) -> list[tuple]:
    return (
        stores.client()
        .query(
            f"SELECT line_item, provider_project, model, amount FROM {stores.databases.raw}.provider_costs FINAL "
            f"WHERE provider = '{provider}' AND day = '{OCT1}' "
            f"AND pulled_at = (SELECT max(pulled_at) FROM {stores.databases.raw}.provider_costs WHERE provider = '{provider}') "
            "ORDER BY line_item"
        )
        .result_rows
    )


def test_every_provider_materializes_a_day_through_429_and_5xx(stores, hand, fake) -> None:
    fake.fail_first("/v1/organization/costs", 429)
    fake.fail_first("/v1/organizations/cost_report", 503, 500)
    result = dg.materialize(billing_assets, partition_key=OCT1, resources=_resources(stores, fake))
    assert result.success
    assert _lines(stores, "openai") == [
        ("gpt-5-mini-2025-08-07, input", "proj_hand", "gpt-5-mini-2025-08-07", Decimal("1.2")),
        ("gpt-5-mini-2025-08-07, output", "proj_hand", "gpt-5-mini-2025-08-07", Decimal("2.28")),
    ]
    anthropic = _lines(stores, "anthropic")
    assert [row[3] for row in anthropic] == [Decimal("0.19"), Decimal("0.3")]  # cents / 100
    assert _lines(stores, "xai") == [("grok-code-fast-1", "", "grok-code-fast-1", Decimal("1"))]
    usage = (
        stores.client()
        .query(
            f"SELECT provider, model, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, requests "
            f"FROM {stores.databases.raw}.provider_usage FINAL ORDER BY provider"
        )
        .result_rows
    )
    assert usage == [
        ("anthropic", "claude-haiku-4-5-20251001", 2000, 400, 100, 200, None),
        ("openai", "gpt-5-mini-2025-08-07", 3000, 0, 0, 300, 3),
    ]
    statuses = [c.status for c in fake.calls("/v1/organizations/cost_report")]
    assert statuses[:2] == [503, 500] and set(statuses[2:]) == {200}
    [openai] = [m for m in result.asset_materializations_for_node("billing__openai_billing")]
    assert openai.metadata["billed_usd"].value == "3.48"


def test_a_repull_replaces_the_day(stores, hand, fake) -> None:
    organisation = fake.organisations[hand.xai_key]
    fake.organisations[hand.xai_key] = Organisation(
        "xai", team_id=hand.xai_team, costs=[FakeCost(date(2026, 10, 1), "grok-4-0709", Decimal("2.5"))]
    )
    try:
        xai = [a for a in billing_assets if a.key.path[-1] == "xai_billing"]
        assert dg.materialize(xai, partition_key=OCT1, resources=_resources(stores, fake)).success
    finally:
        fake.organisations[hand.xai_key] = organisation
    rows = (
        stores.client()
        .query(
            f"SELECT line_item, amount FROM {stores.prefix}raw.provider_costs FINAL WHERE provider = 'xai' AND "
            f"pulled_at = (SELECT max(pulled_at) FROM {stores.prefix}raw.provider_costs WHERE provider = 'xai')"
        )
        .result_rows
    )
    assert rows == [
        ("grok-4-0709", Decimal("2.5"))
    ]  # grok-code-fast-1 of the older pull is not in the new pull


def test_one_refused_workspace_fails_the_run_but_not_the_others(stores, hand, fake) -> None:
    other = "00000000-0000-4000-8000-00000000c0c1"
    with psycopg.connect(stores.control_plane_url) as conn, conn.transaction():
        conn.execute("INSERT INTO workspaces (id, slug, name) VALUES (%s, 'other', 'Other')", (other,))
        conn.execute(
            "INSERT INTO provider_connections (workspace_id, provider, admin_key_encrypted, key_prefix) "
            "VALUES (%s, 'openai', %s, 'sk-bad')",
            (other, seal_provider_key(SECRET, "sk-bad-key")),
        )
    try:
        result = dg.materialize(
            [a for a in billing_assets if a.key.path[-1] == "openai_billing"],
            partition_key="2026-10-02", resources=_resources(stores, fake), raise_on_error=False,
        )  # fmt: skip
        assert not result.success
        failure = result.failure_data_for_node("billing__openai_billing")
        assert "refused the admin key (401)" in str(failure.error) and other in str(failure.error)
        written = (
            stores.client()
            .query(
                f"SELECT toString(workspace_id), sum(amount) FROM {stores.databases.raw}.provider_costs FINAL "
                "WHERE provider = 'openai' AND day = '2026-10-02' GROUP BY workspace_id"
            )
            .result_rows
        )
        assert written == [(str(hand.workspace_id), Decimal("10"))]
    finally:
        with psycopg.connect(stores.control_plane_url) as conn:
            conn.execute("DELETE FROM workspaces WHERE id = %s", (other,))


def test_the_daily_schedule_pulls_yesterday_and_two_days_again() -> None:
    from datetime import UTC, datetime

    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 6, tzinfo=UTC))
    requests = list(billing_daily_schedule(context))
    assert [r.partition_key for r in requests] == ["2026-11-19", "2026-11-18", "2026-11-17"]
