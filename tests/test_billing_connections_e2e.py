"""Provider connections from the settings page (issue 19): an owner adds an OpenAI admin key in a browser,
the page tests it against the provider (here a fake billing server on 127.0.0.1 speaking OpenAI's cost API),
the Dagster billing pull (a real materialize) decrypts the key the API sealed and pulls the day, and its
lines reconcile with what was logged; a wrong Anthropic key shows Anthropic's refusal on the page; removing
a key stops its pulls. Every step is an audit event.

Real processes: the API under `halton-cloud serve` on PostgreSQL and the embedded warehouse, Debian's
Chromium through Playwright, the fake billing server, Dagster and dbt.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from cloud_support import PASSWORD, CloudProcess, Person
from halton_meter.testing.processes import wait_for
from halton_pipelines.defs.billing_pulls import billing_assets
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import (
    BillingAPIsResource,
    ControlPlaneResource,
    HaltonDbtResource,
    ProviderKeysResource,
    WarehouseResource,
)
from halton_pipelines.testing.factories import HandWorkspace, insert_request_rows
from halton_pipelines.testing.fake_billing import FakeBilling, FakeCost, Organisation, serve

OPENAI_KEY = "sk-admin-e2e-openai-7f3a"
MODEL = "gpt-5-mini-2025-08-07"


@pytest.fixture
def fake() -> Iterator[FakeBilling]:
    with serve(FakeBilling(page_size=1)) as running:
        yield running


@pytest.fixture
def cloud(postgres_url: str, warehouse, tmp_path: Path, fake: FakeBilling) -> Iterator[CloudProcess]:
    """The API with the providers' billing APIs pointed at the fake (the variables the pipelines read too)."""
    process = CloudProcess.on_stores(
        tmp_path, database_url=postgres_url, warehouse_url=warehouse.url, prefix=warehouse.prefix,
        OPENAI_BILLING_URL=fake.url, ANTHROPIC_BILLING_URL=fake.url, XAI_BILLING_URL=fake.url,
    )  # fmt: skip
    process.start()
    yield process
    process.stop()


@pytest.fixture
def tab(chromium, cloud: CloudProcess, person: Person):
    context = chromium.new_context(base_url=cloud.url)
    page = context.new_page()
    page.goto("/signin")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview**")
    yield page
    context.close()


def add_key(page, slug: str, provider: str, key: str) -> None:
    page.goto(f"/{slug}/settings/billing")
    page.select_option("[data-connection-form] select[name=provider]", provider)
    page.fill("[data-connection-form] input[name=admin_key]", key)
    page.click("[data-connection-form] button[type=submit]")
    page.wait_for_selector(f"tr[data-provider={provider}] [data-status]")


def status(page, provider: str) -> tuple[str, str]:
    cell = page.locator(f"table[data-table=billing-connections] tr[data-provider={provider}] [data-status]")
    return cell.get_attribute("data-status") or "", cell.inner_text()


def audit_events(postgres_url: str, workspace_id: uuid.UUID) -> list[tuple[str, str]]:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT event, resource_label FROM audit_events WHERE workspace_id = %s AND event LIKE 'billing.%%'"
            " ORDER BY created_at, id",
            (workspace_id,),
        ).fetchall()


def test_a_key_added_on_the_settings_page_is_pulled_and_reconciles(
    tab, cloud, person, fake, warehouse, postgres_url
) -> None:
    slug = person.workspace_slug
    with psycopg.connect(postgres_url) as conn:
        (workspace_id,) = conn.execute("SELECT id FROM workspaces WHERE slug = %s", (slug,)).fetchone()
    day = datetime.now(UTC).date() - timedelta(days=1)
    fake.add(OPENAI_KEY, Organisation("openai", costs=[
        FakeCost(day, f"{MODEL}, input", Decimal("1.2"), project="proj_e2e"),
        FakeCost(day, f"{MODEL}, output", Decimal("2.28"), project="proj_e2e"),
    ]))  # fmt: skip

    # A working key: added, tested at once against the provider, shown only as a fingerprint.
    add_key(tab, slug, "openai", OPENAI_KEY)
    works, sentence = status(tab, "openai")
    assert works == "works" and sentence.startswith("Connection works"), sentence
    assert tab.locator("tr[data-provider=openai] [data-fingerprint]").inner_text() == "sk-admin…7f3a"
    assert OPENAI_KEY not in tab.content()
    assert [c.status for c in fake.calls("/v1/organization/costs")][-1] == 200

    # A wrong key: the provider's refusal, in its words, on the page.
    add_key(tab, slug, "anthropic", "sk-ant-admin01-not-a-real-key")
    failed, refusal = status(tab, "anthropic")
    assert failed == "failed" and "Anthropic refused the admin key (401)" in refusal, refusal

    # The pipelines open what the page sealed, pull the day and say so on both pages.
    hand = HandWorkspace(workspace_id=workspace_id)
    insert_request_rows(
        warehouse.client(), warehouse.databases, workspace_id, uuid.uuid4(),
        [hand.row("openai", MODEL, datetime(day.year, day.month, day.day, 12, tzinfo=UTC), Decimal("3.48"))],
    )  # fmt: skip
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "control_plane": ControlPlaneResource(database_url=postgres_url),
        "provider_keys": ProviderKeysResource(database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"]),
        "billing_apis": BillingAPIsResource(
            openai_base_url=fake.url, anthropic_base_url=fake.url, xai_base_url=fake.url, attempts=1
        ),
    }  # fmt: skip
    [openai_billing] = [a for a in billing_assets if a.key.path[-1] == "openai_billing"]
    pulled = dg.materialize([openai_billing], partition_key=day.isoformat(), resources=resources)
    assert pulled.success
    [materialized] = pulled.asset_materializations_for_node("billing__openai_billing")
    assert materialized.metadata["billed_usd"].value == "3.48"
    [anthropic_billing] = [a for a in billing_assets if a.key.path[-1] == "anthropic_billing"]
    refused = dg.materialize(
        [anthropic_billing], partition_key=day.isoformat(), resources=resources, raise_on_error=False
    )
    assert not refused.success

    # Its lines reconcile: the marts, built as the scheduled jobs build them (the snapshot, then dbt up to
    # the reconciliation the page reads), compare them with the log.
    assert dg.materialize([control_plane_snapshot], resources=resources).success
    dbt = HaltonDbtResource(
        clickhouse_url=warehouse.url, database_prefix=warehouse.prefix, as_of=day.isoformat()
    )
    assert dbt.cli(["run", "--select", "+reconciliation"]).wait().is_successful()
    (row,) = (
        warehouse.client()
        .query(
            f"SELECT logged_usd, billed_usd, status FROM {warehouse.databases.marts}.reconciliation_daily "
            "WHERE workspace_id = %(w)s AND provider = 'openai' AND day = %(d)s",
            {"w": str(workspace_id), "d": day},
        )
        .result_rows
    )
    assert (row[0], row[1]) == (Decimal("3.48"), Decimal("3.48")), row

    tab.goto(f"/{slug}/reconciliation")
    pulls = tab.locator("[data-billing-pulls]")
    assert pulls.locator("li[data-provider=openai]").get_attribute("data-pull") == "ok"
    pulled_line = pulls.locator("li[data-provider=openai]").inner_text()
    assert re.search(rf"Connection works, last pull .+ \(day {day}\)", pulled_line), pulled_line
    anthropic = pulls.locator("li[data-provider=anthropic]")
    assert anthropic.get_attribute("data-pull") == "failed"
    assert "Anthropic refused the admin key (401)" in anthropic.inner_text()

    # Removing a key stops its pulls; every step is in the audit log.
    tab.goto(f"/{slug}/settings/billing")
    tab.click("tr[data-provider=anthropic] button.danger")
    wait_for(
        lambda: tab.locator("tr[data-provider=anthropic]").count() == 0, timeout=10, what="the key removed"
    )
    assert ProviderKeysResource(
        database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"]
    ).connections("anthropic") == ([], [])
    assert [event for event, _ in audit_events(postgres_url, workspace_id)] == [
        "billing.connection_added", "billing.connection_tested",
        "billing.connection_added", "billing.connection_tested",
        "billing.connection_removed",
    ]  # fmt: skip
    tab.goto(f"/{slug}/audit?kind=billing")
    assert "billing.connection_removed" in tab.content()


@pytest.mark.parametrize("role", ["admin", "member", "viewer"])
def test_only_owners_add_or_test_keys(cloud, person, postgres_url, fake, role: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "UPDATE memberships SET role = %s WHERE workspace_id = (SELECT id FROM workspaces WHERE slug = %s)",
            (role, person.workspace_slug),
        )
    page = f"/{person.workspace_slug}/settings/billing"
    for path, form in (
        (f"{page}/connections", {"provider": "openai", "admin_key": OPENAI_KEY}),
        (f"{page}/connections/openai/test", {}),
    ):
        answer = person.post_form(path, page, form)
        assert answer.status_code == 403 and "manage billing" in answer.text, (path, answer.status_code)
    assert "Only workspace owners" in person.client.get(page).text
    assert fake.calls("/v1/") == []
