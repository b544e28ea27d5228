"""The optimisation pages in a real browser and over HTTP: the recommendations the page lists are the marts'
current set (suppressed checks left out, for one project only), samples open their traces, decisions belong to
one workspace and to its admins (CSRF-checked), and an accepted recommendation's realised savings are the
README's formula over the calls made after it was accepted.

Most tests read the shared demo (its marts and recommendations built by `build_demo`); they add control-plane
rows only (decisions, suppressions) and undo them. Realised savings need calls made *after* an acceptance, and
the demo's calls end at the current hour, so that walk has stores of its own (`savings`, below).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from demo_marts import DEMO_PASSWORD, BuiltDemo
from psycopg import sql

from cloud_support import CloudProcess, DashboardPage, Person
from dashboard_clients import csrf, signed_in
from halton_api.charts import money
from halton_api.passwords import hash_password
from halton_api.postgres import migrate as migrate_control_plane
from halton_meter.testing.processes import free_port
from halton_warehouse import Databases, connect
from halton_warehouse.migrate import migrate

ADMIN = "bram@acme.example"
VIEWER = "hana@acme.example"
CURRENT = (
    "SELECT recommendation_id, kind, project, provider, model, monthly_saving_usd, sample_request_uids,"
    " sample_provider_request_ids FROM {marts}.recommendations WHERE workspace_id = '{ws}' AND run_id = ("
    "  SELECT argMax(run_id, computed_at) FROM {marts}.recommendation_runs WHERE workspace_id = '{ws}')"
    " ORDER BY monthly_saving_usd DESC, recommendation_id LIMIT 1 BY recommendation_id"
)


def current(demo: BuiltDemo) -> list[tuple]:
    return demo.query(CURRENT)


def control_plane(demo_or_url, statement: str, *params) -> list[tuple]:
    url = demo_or_url if isinstance(demo_or_url, str) else demo_or_url.database_url
    with psycopg.connect(url) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def shown(page: DashboardPage) -> list[tuple[str, Decimal]]:
    """(id, monthly saving) of every recommendation on the page: the open cards, then the decided table."""
    cards = page.page.locator("article[data-recommendation]")
    found = [
        (
            cards.nth(i).get_attribute("data-recommendation"),
            Decimal(cards.nth(i).get_attribute("data-saving")),
        )
        for i in range(cards.count())
    ]
    rows = page.page.locator("table[data-table=decided] tbody tr")
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td").all_inner_texts()
        found.append((rows.nth(i).get_attribute("data-recommendation"), cells[2]))
    return found


def test_the_page_lists_the_current_recommendations_of_the_marts(
    demo_page, demo_cloud, built_demo, artifacts_dir
) -> None:
    rows = current(built_demo)
    assert len(rows) >= 3, "the demo should give the checks something to find"
    suppressed = {
        (k, p) for k, p in control_plane(built_demo, "SELECT kind, project FROM check_suppressions")
    }
    decided = {
        r for (r,) in control_plane(built_demo, "SELECT recommendation_id FROM recommendation_decisions")
    }
    expected = [(str(r[0]), r[5]) for r in rows if (r[1], r[2]) not in suppressed]
    demo_page.open("/{ws}/optimization")
    on_page = shown(demo_page)
    assert [i for i, _ in on_page] == [i for i, r in expected if uuid.UUID(i) not in decided] + [
        i for i, r in expected if uuid.UUID(i) in decided
    ]
    savings = dict(expected)
    for rec_id, saving in on_page:  # exact on the cards, in cents in the decided table
        assert saving == savings[rec_id] if isinstance(saving, Decimal) else saving == money(savings[rec_id])
    open_total = sum((s for i, s in expected if uuid.UUID(i) not in decided), Decimal(0))
    assert demo_page.figure("open_saving") == money(open_total)

    # The spec's sentence, with the models' names and the saving.
    acme = next(r for r in rows if (r[1], r[2]) == ("right_sizing", "acme-batch-summariser"))
    card = demo_page.page.locator(f"article[data-recommendation='{acme[0]}']")
    assert card.locator("h3").inner_text() == (
        f"Swap Claude Sonnet 4.5 → Claude Haiku 4.5 on acme-batch-summariser and save {money(acme[5])}/month."
    )
    text = card.inner_text()
    assert "Based on" in text and "Confidence: " in text and "Input tokens p50 / p90 / p99" in text
    demo_page.screenshot(artifacts_dir, "optimization")

    # The JSON twin is built by the same function.
    with closing(signed_in(demo_cloud.url, ADMIN)) as client:
        body = client.get(f"/v1/{built_demo.slug}/optimization").json()
    assert [(r["recommendation_id"], Decimal(r["monthly_saving_usd"])) for r in body["recommendations"]] == [
        (i, s) for i, s in expected
    ]


def test_see_sample_requests_opens_a_trace(demo_page, built_demo) -> None:
    demo_page.open("/{ws}/optimization")
    card = demo_page.page.locator("article[data-recommendation]").first
    rec_id = card.get_attribute("data-recommendation")
    (row,) = [r for r in current(built_demo) if str(r[0]) == rec_id]
    card.locator("summary:has-text('See sample requests')").click()
    links = card.locator("a[data-sample]")
    assert [links.nth(i).get_attribute("data-sample") for i in range(links.count())] == [
        str(u) for u in row[6]
    ]
    links.first.click()
    demo_page.page.wait_for_url(f"**/traces/{row[6][0]}")
    assert demo_page.figure("provider_request_id") == row[7][0]


def test_suppressing_a_check_hides_it_for_that_project_only(
    demo_page, demo_cloud, built_demo, artifacts_dir
) -> None:
    rows = current(built_demo)
    by_kind: dict[str, list[tuple]] = {}
    for r in rows:
        by_kind.setdefault(r[1], []).append(r)
    kind, on_two = next((k, rs) for k, rs in by_kind.items() if len({r[2] for r in rs}) >= 2)
    target, other = on_two[-1], next(r for r in on_two if r[2] != on_two[-1][2])
    page = demo_page.page
    demo_page.open("/{ws}/optimization/catalog")
    check = page.locator(f"tr[data-check='{kind}/{target[2]}/{target[3]}/{target[4]}']")
    assert check.locator(".pill").inner_text() == "active"
    demo_page.screenshot(artifacts_dir, "optimization-catalog")
    try:
        check.locator("button[data-action=suppress]").click()
        page.wait_for_url("**/optimization/catalog**notice=**")
        assert "suppressed" in check.locator(".pill").inner_text()
        assert control_plane(built_demo, "SELECT kind, project FROM check_suppressions") == [
            (kind, target[2])
        ]
        demo_page.screenshot(artifacts_dir, "optimization-catalog-suppressed")

        demo_page.open("/{ws}/optimization")
        ids = [i for i, _ in shown(demo_page)]
        assert str(target[0]) not in ids  # gone on its project…
        assert str(other[0]) in ids  # …while the same check on another project still shows
        hidden = sum(1 for r in rows if (r[1], r[2]) == (kind, target[2]))
        assert demo_page.figure("suppressed_hidden").startswith(f"{hidden} recommendation")
        # The JSON twin agrees.
        with closing(signed_in(demo_cloud.url, VIEWER)) as client:
            body = client.get(f"/v1/{built_demo.slug}/optimization").json()
        assert {r["recommendation_id"] for r in body["recommendations"]} == set(ids)
        assert body["suppressed_hidden"] == hidden
    finally:
        demo_page.open("/{ws}/optimization/catalog")
        page.locator(f"tr[data-suppression='{kind}/{target[2]}'] button[data-action=unsuppress]").click()
        page.wait_for_url("**/optimization/catalog**notice=**")
    assert control_plane(built_demo, "SELECT count(*) FROM check_suppressions") == [(0,)]
    events = control_plane(
        built_demo,
        "SELECT event, resource_id FROM audit_events WHERE event LIKE 'check.%%' ORDER BY id DESC LIMIT 2",
    )
    assert events == [
        ("check.unsuppressed", f"{kind}/{target[2]}"),
        ("check.suppressed", f"{kind}/{target[2]}"),
    ]
    demo_page.open("/{ws}/optimization")
    assert str(target[0]) in [i for i, _ in shown(demo_page)]


def _decision_posts(slug: str, rec_id) -> list[tuple[str, dict]]:
    return [
        (f"/{slug}/optimization/{rec_id}/accept", {}),
        (f"/{slug}/optimization/{rec_id}/dismiss", {}),
        (f"/{slug}/optimization/{rec_id}/reopen", {}),
        (
            f"/{slug}/optimization/catalog/suppress",
            {"kind": "right_sizing", "project": "acme-batch-summariser"},
        ),
        (
            f"/{slug}/optimization/catalog/unsuppress",
            {"kind": "right_sizing", "project": "acme-batch-summariser"},
        ),
    ]


def test_viewers_cannot_decide_or_suppress(demo_cloud: CloudProcess, built_demo) -> None:
    rec_id = current(built_demo)[0][0]
    with closing(signed_in(demo_cloud.url, VIEWER)) as viewer:
        page = viewer.get(f"/{built_demo.slug}/optimization")
        assert page.status_code == 200 and 'data-action="accept"' not in page.text
        token = csrf(viewer, f"/{built_demo.slug}/optimization")
        for path, data in _decision_posts(built_demo.slug, rec_id):
            response = viewer.post(path, data={"csrf_token": token, **data})
            assert response.status_code == 403, path
            assert "viewer" in response.text
    assert control_plane(built_demo, "SELECT count(*) FROM recommendation_decisions") == [(0,)]
    assert control_plane(built_demo, "SELECT count(*) FROM check_suppressions") == [(0,)]


def test_decisions_need_the_csrf_token(demo_cloud: CloudProcess, built_demo) -> None:
    rec_id = current(built_demo)[0][0]
    with closing(signed_in(demo_cloud.url, ADMIN)) as admin:
        for path, data in _decision_posts(built_demo.slug, rec_id):
            assert admin.post(path, data=data).status_code == 403, path
            assert admin.post(path, data={"csrf_token": "forged", **data}).status_code == 403, path
    assert control_plane(built_demo, "SELECT count(*) FROM recommendation_decisions") == [(0,)]


def test_decisions_belong_to_one_workspace(demo_cloud: CloudProcess, built_demo) -> None:
    """Another workspace's admin cannot decide on the demo's recommendations, by either workspace's URL."""
    rec_id = current(built_demo)[0][0]
    stranger = Person(demo_cloud.url, f"other-{secrets.token_hex(3)}@example.com").sign_up("Other Co")
    try:
        page = f"/{stranger.workspace_slug}/optimization"
        assert stranger.client.get(page).status_code == 200
        token = stranger.csrf(page)
        for slug in (stranger.workspace_slug, built_demo.slug):
            for action in ("accept", "dismiss"):
                response = stranger.client.post(
                    f"/{slug}/optimization/{rec_id}/{action}", data={"csrf_token": token}
                )
                assert response.status_code == 404, (slug, action)
        body = stranger.client.get(f"/v1/{stranger.workspace_slug}/optimization").json()
        assert body["recommendations"] == [] and body["computed_at"] is None
    finally:
        stranger.client.close()
    assert control_plane(built_demo, "SELECT count(*) FROM recommendation_decisions") == [(0,)]


def test_accept_dismiss_and_reopen_keep_the_warehouse_figures(demo_cloud: CloudProcess, built_demo) -> None:
    (acme,) = built_demo.query(
        "SELECT recommendation_id, title, monthly_saving_usd, baseline_cost_per_request_usd, scope_models,"
        " baseline_spend_per_day_usd, expected_saving_per_request_usd FROM {marts}.recommendations_current"
        " WHERE workspace_id = '{ws}' AND kind = 'right_sizing' AND project = 'acme-batch-summariser'"
    )
    rec_id = acme[0]
    slug = built_demo.slug
    with closing(signed_in(demo_cloud.url, ADMIN)) as admin:
        token = csrf(admin, f"/{slug}/optimization")
        back = f"/{slug}/optimization?provider=anthropic&notice=old"
        response = admin.post(
            f"/{slug}/optimization/{rec_id}/accept", data={"csrf_token": token, "back": back}
        )
        assert response.status_code == 303
        assert response.headers["location"].startswith(f"/{slug}/optimization?provider=anthropic&notice=")
        try:
            (saved,) = control_plane(
                built_demo,
                "SELECT status, decided_by_label, monthly_saving_usd, baseline_cost_per_request_usd, scope_models,"
                " baseline_spend_per_day_usd, expected_saving_per_request_usd, decided_at"
                " FROM recommendation_decisions WHERE recommendation_id = %s",
                rec_id,
            )
            assert saved[:7] == ("accepted", ADMIN, acme[2], acme[3], list(acme[4]), acme[5], acme[6])
            accepted_at = saved[7]
            # Accepting again changes nothing (realised savings keep counting from the first acceptance).
            admin.post(f"/{slug}/optimization/{rec_id}/accept", data={"csrf_token": token})
            assert control_plane(
                built_demo,
                "SELECT decided_at FROM recommendation_decisions WHERE recommendation_id = %s",
                rec_id,
            ) == [(accepted_at,)]
            body = admin.get(f"/v1/{slug}/optimization").json()
            (mine,) = [r for r in body["recommendations"] if r["recommendation_id"] == str(rec_id)]
            assert mine["status"] == "accepted" and mine["decided_by"] == ADMIN
            assert Decimal(body["accepted_saving_usd"]) == acme[2]
            savings = admin.get(f"/v1/{slug}/optimization/savings").json()
            assert [s["recommendation_id"] for s in savings["savings"]] == [str(rec_id)]
            # Dismissing it instead, then re-opening it.
            admin.post(f"/{slug}/optimization/{rec_id}/dismiss", data={"csrf_token": token})
            assert control_plane(
                built_demo, "SELECT status FROM recommendation_decisions WHERE recommendation_id = %s", rec_id
            ) == [("dismissed",)]
            assert admin.get(f"/v1/{slug}/optimization/savings").json()["savings"] == []
        finally:
            response = admin.post(f"/{slug}/optimization/{rec_id}/reopen", data={"csrf_token": token})
            assert response.status_code == 303
    assert control_plane(built_demo, "SELECT count(*) FROM recommendation_decisions") == [(0,)]
    events = control_plane(
        built_demo,
        "SELECT event FROM audit_events WHERE resource_id = %s ORDER BY id",
        str(rec_id),
    )
    assert events == [
        ("recommendation.accepted",),
        ("recommendation.dismissed",),
        ("recommendation.reopened",),
    ]


# --- realised savings: stores of their own, with calls after the acceptance ---------------------------------

M = Decimal(1_000_000)
# The test card (USD per million tokens): what the calls below cost, by hand.
SONNET_IN, SONNET_OUT, HAIKU_IN, HAIKU_OUT = Decimal(3), Decimal(15), Decimal(1), Decimal(5)
BASELINE_CALLS, IN_TOKENS, OUT_TOKENS = 200, 2_000, 300
AFTER_HAIKU, AFTER_SONNET = 50, 5


def sonnet_call() -> Decimal:
    return (IN_TOKENS * SONNET_IN + OUT_TOKENS * SONNET_OUT) / M


def haiku_call() -> Decimal:
    return (IN_TOKENS * HAIKU_IN + OUT_TOKENS * HAIKU_OUT) / M


@dataclass
class SavingsStores:
    cloud: CloudProcess
    workspace: object  # halton_pipelines.testing.factories.HandWorkspace
    database_url: str
    warehouse_url: str
    prefix: str
    resources: dict

    @property
    def databases(self) -> Databases:
        return Databases.with_prefix(self.prefix)

    def build_marts(self) -> None:
        import dagster as dg

        from halton_pipelines.defs.dbt import halton_dbt

        assert dg.materialize([halton_dbt], resources=self.resources, raise_on_error=False).success


@pytest.fixture(scope="module")
def savings(warehouse_server: str, postgres_server: str, module_server_dir: Path) -> Iterator[SavingsStores]:
    """A small workspace (HandWorkspace's 'hand', project 'alpha') whose Sonnet calls of the last 20 days make the
    right-sizing check fire, its marts and recommendations built by Dagster as `build_demo` does, and the API
    over these stores."""
    import dagster as dg

    from halton_pipelines.defs.recommendation_assets import recommendations
    from halton_pipelines.defs.snapshot import control_plane_snapshot
    from halton_pipelines.resources import ControlPlaneResource, HaltonDbtResource, WarehouseResource
    from halton_pipelines.testing.factories import (
        HandWorkspace,
        catalogue_model,
        catalogue_of,
        insert_request_rows,
        metered_call,
    )
    from halton_warehouse.catalogue_rate_rows import card_rows
    from halton_warehouse.raw_writes import write_rate_rows

    prefix = f"o{secrets.token_hex(4)}_"
    client = connect(warehouse_server)
    migrate(client, Databases.with_prefix(prefix))
    name = f"opt_{secrets.token_hex(5)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    head, _, query = postgres_server.partition("?")
    database_url = f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
    migrate_control_plane(database_url)
    hand = HandWorkspace()
    hand.seed_control_plane(database_url)
    control_plane(database_url, "UPDATE users SET password_hash = %s", hash_password(DEMO_PASSWORD))

    card = catalogue_of(
        catalogue_model(
            "anthropic", "claude-sonnet-4-5", {"input": str(SONNET_IN), "output": str(SONNET_OUT)}
        ),
        catalogue_model("anthropic", "claude-haiku-4-5", {"input": str(HAIKU_IN), "output": str(HAIKU_OUT)}),
    )
    write_rate_rows(client, Databases.with_prefix(prefix), card_rows(card))
    # The baseline: short Sonnet calls spread over the 20 days before yesterday (none today, so every call
    # of the acceptance day on is one made after it).
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=21)
    baseline = [
        metered_call(f"opt/{i}", "alpha", first + i * timedelta(hours=2), input_tokens=IN_TOKENS,
                     output_tokens=OUT_TOKENS)
        for i in range(BASELINE_CALLS)
    ]  # fmt: skip
    insert_request_rows(client, Databases.with_prefix(prefix), hand.workspace_id, hand.device_id, baseline)
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=warehouse_server, database_prefix=prefix),
        "control_plane": ControlPlaneResource(database_url=database_url),
        "dbt": HaltonDbtResource(
            clickhouse_url=warehouse_server,
            database_prefix=prefix,
            as_of=datetime.now(UTC).date().isoformat(),
        ),
    }
    assert dg.materialize([control_plane_snapshot], resources=resources).success
    stores = SavingsStores(None, hand, database_url, warehouse_server, prefix, resources)  # type: ignore[arg-type]
    stores.build_marts()
    assert dg.materialize([recommendations], resources=resources).success

    home = module_server_dir
    port = free_port()
    env = {
        **os.environ,
        "HALTON_ENV": "development",
        "HALTON_DATA_DIR": str(home),
        "HALTON_DATABASE_URL": database_url,
        "HALTON_CLICKHOUSE_URL": warehouse_server,
        "HALTON_CLICKHOUSE_DATABASE_PREFIX": prefix,
        "HALTON_SECRET_KEY": secrets.token_urlsafe(48),
        "HALTON_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    stores.cloud = CloudProcess(env=env, port=port, log_path=home / "api.log")
    stores.cloud.start()
    yield stores
    stores.cloud.stop()
    databases = Databases.with_prefix(prefix)
    for database in (databases.raw, f"{prefix}staging", databases.marts, databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_accept_then_realised_savings_from_the_calls_made_since(
    savings: SavingsStores, chromium, artifacts_dir
) -> None:
    """Accepting through the page at time A (the decision's decided_at), then calls dated after A (mostly on
    the cheaper model) and an incremental dbt build: the page shows the README's per-request formula, checked
    here from the test card's rates by hand. No backdating: the baseline calls end before A's day, so the
    day-granular count since A holds exactly the calls made after it."""
    from halton_pipelines.testing.factories import insert_request_rows, metered_call

    hand = savings.workspace
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=savings.cloud.url)
    page = DashboardPage(context.new_page(), None)
    try:
        page.sign_in("hand@example.com", DEMO_PASSWORD)
        page.page.goto("/hand/optimization")
        cards = page.page.locator("article[data-recommendation]")
        assert cards.count() == 1
        saving = BASELINE_CALLS * (sonnet_call() - haiku_call())
        assert saving == Decimal("1.4")
        assert cards.first.locator("h3").inner_text() == (
            "Swap Claude Sonnet 4.5 → Claude Haiku 4.5 on alpha and save $1.40/month."
        )
        assert Decimal(cards.first.get_attribute("data-saving")) == saving

        cards.first.locator("button[data-action=accept]").click()
        page.page.wait_for_url("**/hand/optimization?notice=**")
        assert "accepted" in page.page.locator(".notice").inner_text()
        ((accepted_at, cost_per_request),) = control_plane(
            savings.database_url,
            "SELECT decided_at, baseline_cost_per_request_usd FROM recommendation_decisions",
        )
        assert cost_per_request == sonnet_call() == Decimal("0.0105")

        # Accepted, nothing sent since: the page says so instead of quoting a figure.
        page.page.goto("/hand/optimization/savings")
        row = page.page.locator("table[data-table=savings] tbody tr").first
        assert "No post-acceptance data yet" in row.inner_text()
        assert page.figure("without_data") == "1" and page.figure("total_realised") == "—"
        page.screenshot(artifacts_dir, "optimization-savings-waiting")

        # After A: the project moved to Haiku, with a few Sonnet calls left (both are the scope).
        after = [
            metered_call(f"opt/after/{i}", "alpha", accepted_at + timedelta(milliseconds=100 * (i + 1)),
                         input_tokens=IN_TOKENS, output_tokens=OUT_TOKENS,
                         model="claude-haiku-4-5-20251001" if i < AFTER_HAIKU else "claude-sonnet-4-5-20250929")
            for i in range(AFTER_HAIKU + AFTER_SONNET)
        ]  # fmt: skip
        assert all(call.started_at.date() == accepted_at.date() for call in after)
        insert_request_rows(connect(savings.warehouse_url), savings.databases, hand.workspace_id, hand.device_id,
                            after)  # fmt: skip
        savings.build_marts()

        calls = AFTER_HAIKU + AFTER_SONNET
        spent = AFTER_HAIKU * haiku_call() + AFTER_SONNET * sonnet_call()
        realised = (
            Decimal("0.0105") * calls - spent
        )  # the README: baseline cost per request * calls since - spend since
        assert realised == Decimal("0.35")
        promised = Decimal("0.007") * calls  # the monthly $1.40 over the baseline's 200 calls, per call
        page.page.goto("/hand/optimization/savings")
        assert page.figure("total_realised") == money(realised)
        assert page.figure("total_expected") == money(promised)
        row = page.page.locator("table[data-table=savings] tbody tr").first
        assert Decimal(row.locator("[data-realised]").get_attribute("data-realised")) == realised
        cells = row.locator("td").all_inner_texts()
        assert cells[3] == str(calls) and cells[4] == money(spent)
        page.screenshot(artifacts_dir, "optimization-savings")

        with closing(signed_in(savings.cloud.url, "hand@example.com")) as client:
            body = client.get("/v1/hand/optimization/savings").json()
        (one,) = body["savings"]
        assert (Decimal(one["realised_usd"]), one["requests_since"], Decimal(one["spend_since_usd"])) == (
            realised, calls, spent
        )  # fmt: skip
        assert set(one["measured_models"]) == {"claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"}
        page.page.goto("/hand/optimization")
        assert page.figure("realised") == money(realised)
        assert page.table("decided")[0][1] == "accepted"
        page.screenshot(artifacts_dir, "optimization-accepted")
        assert page.errors == [], f"console errors: {page.errors}"
    finally:
        context.close()
