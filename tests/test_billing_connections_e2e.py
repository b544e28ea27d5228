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
from halton_meter.secretbox import seal_provider_key
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
ANTHROPIC_KEY = "sk-ant-admin01-e2e-anthropic-51c2"
HAIKU = "claude-haiku-4-5-20251001"
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


def pull_resources(cloud: CloudProcess, fake: FakeBilling, warehouse, postgres_url: str) -> dict:
    return {
        "warehouse": WarehouseResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix),
        "control_plane": ControlPlaneResource(database_url=postgres_url),
        "provider_keys": ProviderKeysResource(database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"]),
        "billing_apis": BillingAPIsResource(
            openai_base_url=fake.url, anthropic_base_url=fake.url, xai_base_url=fake.url, attempts=1
        ),
    }  # fmt: skip


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
    resources = pull_resources(cloud, fake, warehouse, postgres_url)
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


def map_project(page, slug: str, provider: str, theirs: str, ours: str) -> None:
    page.goto(f"/{slug}/settings/billing")
    form = page.locator("[data-map-form]")
    form.locator("select[name=provider]").select_option(provider)
    form.locator("input[name=provider_project]").fill(theirs)
    form.locator("select[name=project]").select_option(ours)
    form.locator("button[type=submit]").click()
    page.wait_for_selector(f"table[data-table=project-map] code:text-is('{theirs}')")


def project_cell(page, project: str, provider: str, column: int) -> str:
    row = page.locator(f"table[data-table=projects] tr[data-project='{project}'][data-provider='{provider}']")
    return row.locator("td").nth(column).inner_text().strip()


def mapped_to(page, project: str, provider: str) -> tuple[str, str]:
    row = page.locator(f"table[data-table=projects] tr[data-project='{project}'][data-provider='{provider}']")
    mapped = row.locator("[data-mapped]")
    return mapped.get_attribute("data-mapped") or "", mapped.inner_text().strip()


def test_provider_projects_mapped_to_ours_reconcile_per_project(
    tab, cloud, person, fake, warehouse, postgres_url, artifacts_dir
) -> None:
    """Two OpenAI projects and an Anthropic workspace mapped to three of ours: each project's logged spend is
    compared with its own provider project's lines; a third OpenAI project nobody mapped is shown as
    unmapped, never as a match; a provider not mapped to a project (Gemini) leaves its logged spend without
    a bill in the project's coverage."""
    slug = person.workspace_slug
    with psycopg.connect(postgres_url) as conn:
        (workspace_id,) = conn.execute("SELECT id FROM workspaces WHERE slug = %s", (slug,)).fetchone()
        # Projects as a meter registers them (the project slugs its calls carry).
        for project, name in (
            ("alpha", "Alpha app"),
            ("beta", "Beta batch"),
            ("gamma", "Gamma tools"),
            ("delta", "Delta docs"),
        ):
            conn.execute(
                "INSERT INTO projects (workspace_id, slug, name) VALUES (%s, %s, %s)",
                (workspace_id, project, name),
            )
    day = datetime.now(UTC).date() - timedelta(days=1)
    fake.add(OPENAI_KEY, Organisation("openai", costs=[
        FakeCost(day, f"{MODEL}, input", Decimal("1.2"), project="proj_alpha"),
        FakeCost(day, f"{MODEL}, output", Decimal("0.3"), project="proj_alpha"),
        FakeCost(day, f"{MODEL}, input", Decimal("2.00"), project="proj_beta"),
        FakeCost(day, f"{MODEL}, input", Decimal("0.75"), project="proj_stray"),
    ]))  # fmt: skip
    fake.add(ANTHROPIC_KEY, Organisation("anthropic", costs=[
        FakeCost(day, "Claude Haiku 4.5 input tokens", Decimal("0.5"), model=HAIKU, project="wrkspc_gamma"),
    ]))  # fmt: skip
    add_key(tab, slug, "openai", OPENAI_KEY)
    add_key(tab, slug, "anthropic", ANTHROPIC_KEY)
    map_project(tab, slug, "openai", "proj_alpha", "alpha")
    map_project(tab, slug, "openai", "proj_beta", "beta")
    map_project(tab, slug, "anthropic", "wrkspc_gamma", "gamma")
    assert [e for e, _ in audit_events(postgres_url, workspace_id) if e.startswith("billing.project")] == [
        "billing.project_mapped", "billing.project_mapped", "billing.project_mapped",
    ]  # fmt: skip

    # Logged: alpha matches its OpenAI project to the cent, beta is 5% over its own; alpha's Gemini calls
    # have no bill at all. gamma logs nothing and has no mapping.
    hand = HandWorkspace(workspace_id=workspace_id)
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    calls = [
        hand.row("openai", MODEL, noon, Decimal("1.50"), 0),
        hand.row("openai", MODEL, noon, Decimal("2.10"), 1).model_copy(update={"project": "beta"}),
        hand.row("gemini", "gemini-2.5-flash", noon, Decimal("0.40"), 2),
        hand.row("anthropic", HAIKU, noon, Decimal("0.50"), 3).model_copy(update={"project": "gamma"}),
    ]
    insert_request_rows(warehouse.client(), warehouse.databases, workspace_id, uuid.uuid4(), calls)
    resources = pull_resources(cloud, fake, warehouse, postgres_url)
    [openai_billing] = [a for a in billing_assets if a.key.path[-1] == "openai_billing"]
    assert dg.materialize([openai_billing], partition_key=day.isoformat(), resources=resources).success
    [anthropic_billing] = [a for a in billing_assets if a.key.path[-1] == "anthropic_billing"]
    assert dg.materialize([anthropic_billing], partition_key=day.isoformat(), resources=resources).success
    # The marts as the scheduled jobs build them: the snapshot copies the mapping, dbt builds up to the
    # per-project mart, whose own data tests pass.
    assert dg.materialize([control_plane_snapshot], resources=resources).success
    dbt = HaltonDbtResource(
        clickhouse_url=warehouse.url, database_prefix=warehouse.prefix, as_of=day.isoformat()
    )
    assert dbt.cli(["run", "--select", "+reconciliation +reconciliation_projects"]).wait().is_successful()
    tests = ["test", "--select", "reconciliation_projects stg_billing__provider_project_map"]
    assert dbt.cli(tests).wait().is_successful()

    # The mart: each mapped project against its own provider project; the stray one unmapped.
    marts = warehouse.databases.marts
    rows = {
        (r["project"], r["provider"]): r
        for r in warehouse.client()
        .query(
            "SELECT project, provider, mapped, provider_projects, logged_usd, compared_logged_usd, billed_usd,"
            f" status FROM {marts}.reconciliation_projects WHERE workspace_id = %(w)s AND period = %(p)s",
            {"w": str(workspace_id), "p": day.replace(day=1)},
        )
        .named_results()
    }
    alpha, beta = rows[("alpha", "openai")], rows[("beta", "openai")]
    assert (alpha["logged_usd"], alpha["billed_usd"], alpha["status"]) == (
        Decimal("1.5"),
        Decimal("1.5"),
        "sage",
    )
    assert alpha["provider_projects"] == ["proj_alpha"]
    assert (beta["logged_usd"], beta["billed_usd"], beta["status"]) == (Decimal("2.1"), Decimal("2"), "red")
    gamma = rows[("gamma", "anthropic")]  # Anthropic's cents, per workspace
    assert (gamma["provider_projects"], gamma["logged_usd"], gamma["billed_usd"], gamma["status"]) == (
        ["wrkspc_gamma"], Decimal("0.5"), Decimal("0.5"), "sage",
    )  # fmt: skip
    gemini = rows[("alpha", "gemini")]
    assert (gemini["mapped"], gemini["billed_usd"], gemini["status"]) == (False, None, "unbilled")
    stray = rows[(None, "openai")]
    assert (stray["provider_projects"], stray["billed_usd"], stray["status"]) == (
        ["proj_stray"], Decimal("0.75"), "unmapped",
    )  # fmt: skip
    # Nothing billed is lost: the mapped and unmapped lines add up to the provider's bill for the day.
    (billed,) = (
        warehouse.client()
        .query(
            f"SELECT billed_usd FROM {marts}.reconciliation_daily"
            " WHERE workspace_id = %(w)s AND provider = 'openai' AND day = %(d)s",
            {"w": str(workspace_id), "d": day},
        )
        .result_rows[0]
    )
    assert billed == alpha["billed_usd"] + beta["billed_usd"] + stray["billed_usd"] == Decimal("4.25")

    # The page: every mapped project, with its providers, coverage and the unmapped lines apart.
    month = f"range=custom&from={day.replace(day=1)}&to={day}"
    tab.goto(f"/{slug}/reconciliation?{month}")
    section = tab.locator("[data-per-project]")
    assert mapped_to(tab, "alpha", "openai") == ("true", "proj_alpha")
    assert project_cell(tab, "alpha", "openai", 3) == "$1.50"
    assert project_cell(tab, "alpha", "openai", 4) == "$1.50"
    assert project_cell(tab, "alpha", "openai", 7) == "Matches"
    assert mapped_to(tab, "alpha", "gemini") == ("false", "not mapped to this project")
    assert project_cell(tab, "alpha", "gemini", 7) == "Not billed yet"
    # alpha in all: $1.90 logged, $1.50 of it billed; never "Matches" while Gemini's $0.40 has no bill.
    assert project_cell(tab, "alpha", "all", 7) == "Partly billed"
    coverage = section.locator("tr[data-project=alpha][data-provider=all] [data-coverage]").inner_text()
    assert "billed data for 1 of 2 providers, 78% of logged spend" in coverage, coverage
    assert project_cell(tab, "beta", "openai", 5) == "+$0.10"
    assert project_cell(tab, "beta", "openai", 7) == "Investigate"
    assert mapped_to(tab, "gamma", "anthropic") == ("true", "wrkspc_gamma")
    assert project_cell(tab, "gamma", "anthropic", 7) == "Matches"
    assert section.locator("tr[data-project=delta]").count() == 0  # no mapping, nothing to read
    unmapped = section.locator("table[data-table=unmapped] tr[data-provider=openai]")
    assert "proj_stray" in unmapped.inner_text() and "$0.75" in unmapped.inner_text()
    assert unmapped.locator("[data-status]").get_attribute("data-status") == "unmapped"
    assert "Matches" not in unmapped.inner_text()

    # One project picked: only its rows (the unmapped lines still shown, as they belong to no project).
    section.locator("[data-project-picker] a[data-project=beta]").click()
    tab.wait_for_url("**project=beta**")
    section = tab.locator("[data-per-project]")
    assert section.locator("table[data-table=projects] tr[data-project=alpha]").count() == 0
    assert project_cell(tab, "beta", "openai", 4) == "$2.00"
    assert section.locator("table[data-table=unmapped] tr[data-provider=openai]").count() == 1
    tab.goto(f"/{slug}/reconciliation?{month}")
    tab.locator("[data-per-project]").screenshot(path=str(artifacts_dir / "reconciliation-per-project.png"))
    # A project with nothing mapped says so when picked, rather than showing nothing.
    tab.goto(f"/{slug}/reconciliation?{month}&project=delta")
    assert "Nothing logged or billed for this project" in tab.locator("[data-per-project]").inner_text()


def test_a_stored_key_that_cannot_be_read_says_so_on_both_pages(
    tab, cloud, person, fake, warehouse, postgres_url
) -> None:
    """A key sealed under another HALTON_SECRET_KEY (the secret changed since it was saved) is named as such on
    the settings page, by its Test button and on the reconciliation page, never a crash or a silent skip;
    re-entering it mends it."""
    slug = person.workspace_slug
    fake.add(OPENAI_KEY, Organisation("openai"))
    add_key(tab, slug, "openai", OPENAI_KEY)
    assert status(tab, "openai")[0] == "works"
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "UPDATE provider_connections SET admin_key_encrypted = %s WHERE provider = 'openai'",
            (seal_provider_key(b"the secret before it was rotated", OPENAI_KEY),),
        )
    unreadable = "Stored key cannot be read — re-enter it"

    tab.goto(f"/{slug}/settings/billing")
    works, sentence = status(tab, "openai")
    assert works == "failed" and sentence.startswith(unreadable), sentence
    calls = len(fake.calls("/v1/"))
    tab.click("tr[data-provider=openai] button:text-is('Test')")
    tab.wait_for_url("**notice=**")
    assert "OpenAI connection test failed" in tab.content()
    assert status(tab, "openai")[1].startswith(unreadable)
    assert len(fake.calls("/v1/")) == calls  # nothing to call the provider with

    # The pipelines report it for the workspace rather than skipping it.
    keys = ProviderKeysResource(database_url=postgres_url, secret_key=cloud.env["HALTON_SECRET_KEY"])
    connections, problems = keys.connections("openai")
    assert connections == [] and len(problems) == 1 and "does not decrypt" in problems[0], problems

    # The reconciliation page's billing pulls say it too (once the marts exist to show the page's figures).
    dbt = HaltonDbtResource(clickhouse_url=warehouse.url, database_prefix=warehouse.prefix)
    resources = pull_resources(cloud, fake, warehouse, postgres_url)
    assert dg.materialize([control_plane_snapshot], resources=resources).success
    assert dbt.cli(["run", "--select", "+reconciliation +reconciliation_projects"]).wait().is_successful()
    tab.goto(f"/{slug}/reconciliation")
    pull = tab.locator("[data-billing-pulls] li[data-provider=openai]")
    assert pull.get_attribute("data-pull") == "unreadable"
    assert unreadable in pull.inner_text()

    add_key(tab, slug, "openai", OPENAI_KEY)
    assert status(tab, "openai")[0] == "works"
