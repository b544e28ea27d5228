"""End to end on real engines: every asset materializes on seeded data, the reconciliation of a hand-checked
workspace is exactly what was computed by hand, and neither a re-run nor a re-sent batch changes a number.

The module builds the marts once through Dagster (control-plane snapshot, price card, billing pulls against
the fake providers, dbt build with tests as asset checks) and the later tests rebuild incrementally on top.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pytest

from halton_pipelines.alerts.evaluate import current_months
from halton_pipelines.defs.billing_pulls import billing_assets
from halton_pipelines.defs.dbt import INGESTED_THROUGH, MARTS_JOB, halton_dbt, marts_after_ingestion
from halton_pipelines.defs.rate_row_assets import model_prices
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import (
    BillingAPIsResource,
    ControlPlaneResource,
    HaltonDbtResource,
    ProviderKeysResource,
    WarehouseResource,
)
from halton_pipelines.testing.factories import (
    SECRET,
    HandWorkspace,
    insert_request_rows,
    seed_demo_control_plane,
)
from halton_pipelines.testing.fake_billing import FakeBilling, serve
from halton_warehouse.demo.demo_data import Demo, DemoConfig
from halton_warehouse.demo.demo_warehouse import insert_requests, load_demo

AS_OF = "2026-11-01"
DEMO = DemoConfig(
    seed=11, requests=20_000, days=60, until=datetime(2026, 11, 1, tzinfo=UTC), chunk_size=5_000
)
MARTS = (
    "daily_spend", "project_spend", "developer_spend", "cost_center_spend", "prompt_clusters", "reconciliation",
    "reconciliation_daily", "reconciliation_requests", "model_usage_30d", "budget_variance", "prompt_daily_spend",
    "prompt_period_spend",
)  # fmt: skip
# Columns that say when (and in which batch) something was built or arrived, not what it counts: left out of
# the fingerprints.
TECHNICAL = ("priced_at", "last_ingested_at", "ingested_at", "prices_pulled_at", "batch_id")


class Built:
    def __init__(self, stores, demo: Demo, hand: HandWorkspace, resources: dict, results: dict) -> None:
        self.stores = stores
        self.demo = demo
        self.hand = hand
        self.resources = resources
        self.results = results

    def query(self, sql: str) -> list[tuple]:
        return self.stores.client().query(sql).result_rows

    def dbt(self, *args: str) -> None:
        invocation = self.resources["dbt"].cli(list(args)).wait()
        assert invocation.is_successful(), f"dbt {' '.join(args)} failed"

    def fingerprints(self) -> dict[str, tuple]:
        client = self.stores.client()
        out = {}
        for schema, table in [(self.stores.databases.marts, t) for t in MARTS] + [
            (f"{self.stores.prefix}staging", "int_requests_priced")
        ]:
            columns = [
                name
                for (name,) in client.query(
                    f"SELECT name FROM system.columns WHERE database = '{schema}' AND table = '{table}' "
                    "ORDER BY position"
                ).result_rows
                if name not in TECHNICAL
            ]
            out[table] = client.query(
                f"SELECT count(), groupBitXor(cityHash64(tuple({', '.join(columns)}))) FROM {schema}.{table}"
            ).result_rows[0]
        return out


@pytest.fixture(scope="module")
def fake():
    billing = FakeBilling(page_size=1)
    for key, organisation in HandWorkspace().organisations().items():
        billing.add(key, organisation)
    with serve(billing) as running:
        yield running


@pytest.fixture(scope="module")
def built(stores, fake: FakeBilling) -> Built:
    demo = Demo(DEMO)
    client = stores.client()
    load_demo(client, stores.databases, demo, control_plane=False)
    seed_demo_control_plane(stores.control_plane_url, demo, demo.billing())
    hand = HandWorkspace()
    hand.seed_control_plane(stores.control_plane_url)
    insert_request_rows(client, stores.databases, hand.workspace_id, hand.device_id, hand.rows())

    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "control_plane": ControlPlaneResource(database_url=stores.control_plane_url),
        "provider_keys": ProviderKeysResource(database_url=stores.control_plane_url, secret_key=SECRET),
        "billing_apis": BillingAPIsResource(
            openai_base_url=fake.url, anthropic_base_url=fake.url, xai_base_url=fake.url, backoff_seconds=0.01
        ),
        "dbt": HaltonDbtResource(
            clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix, as_of=AS_OF, unit_tests=True
        ),
    }
    results = {"sources": dg.materialize([control_plane_snapshot, model_prices], resources=resources)}
    for day in ("2026-10-01", "2026-10-02"):
        results[day] = dg.materialize(billing_assets, partition_key=day, resources=resources)
    results["dbt"] = dg.materialize([halton_dbt], resources=resources)
    return Built(stores, demo, hand, resources, results)


def test_every_asset_materializes_and_every_check_passes(built: Built) -> None:
    assert all(result.success for result in built.results.values())
    materialized = {m.asset_key for m in built.results["dbt"].get_asset_materialization_events()}
    assert materialized == set(halton_dbt.keys)
    checks = built.results["dbt"].get_asset_check_evaluations()
    assert len(checks) > 50
    failed = [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed]
    assert failed == []
    for key in control_plane_snapshot.keys:
        assert key in {m.asset_key for m in built.results["sources"].get_asset_materialization_events()}


def test_reconciliation_of_the_hand_checked_workspace(built: Built) -> None:
    marts = built.stores.databases.marts
    ws = built.hand.workspace_id
    monthly = built.query(
        f"SELECT provider, period_label, logged_usd, billed_usd, billed_source, variance_usd, variance_pct, status "
        f"FROM {marts}.reconciliation WHERE workspace_id = '{ws}' ORDER BY provider, period"
    )
    assert monthly == [
        ("anthropic", "2026-10", Decimal("0.5"), Decimal("0.49"), "billing_api", Decimal("0.01"), Decimal("2.0408"), "red"),
        ("gemini", "2026-09", Decimal("4.99"), Decimal("5"), "statement", Decimal("-0.01"), Decimal("-0.2"), "sage"),
        ("openai", "2026-10", Decimal("13.5"), Decimal("13.48"), "billing_api", Decimal("0.02"), Decimal("0.1484"), "sage"),
        ("xai", "2026-10", Decimal("1"), Decimal("1"), "billing_api", Decimal("0"), Decimal("0"), "sage"),
    ]  # fmt: skip
    daily = built.query(
        f"SELECT provider, toString(day), logged_usd, billed_usd, variance_pct, status, logged_input_tokens, "
        f"provider_input_tokens FROM {marts}.reconciliation_daily WHERE workspace_id = '{ws}' ORDER BY provider, day"
    )
    assert daily == [
        ("anthropic", "2026-10-01", Decimal("0.5"), Decimal("0.49"), Decimal("2.0408"), "red", 2000, 2000),
        # A day pulled with nothing billed and nothing logged is a zero line: reconciled, sage.
        ("anthropic", "2026-10-02", Decimal("0"), Decimal("0"), None, "sage", 0, None),
        ("gemini", "2026-09-30", Decimal("4.99"), None, None, "unbilled", 1000, None),
        ("openai", "2026-10-01", Decimal("3.5"), Decimal("3.48"), Decimal("0.5747"), "amber", 3000, 3000),
        ("openai", "2026-10-02", Decimal("10"), Decimal("10"), Decimal("0"), "sage", 1000, None),
        ("xai", "2026-10-01", Decimal("1"), Decimal("1"), Decimal("0"), "sage", 1000, None),
        ("xai", "2026-10-02", Decimal("0"), Decimal("0"), None, "sage", 0, None),
    ]
    behind = built.query(
        f"SELECT provider, count(), sum(logged_cost_usd) FROM {marts}.reconciliation_requests "
        f"WHERE workspace_id = '{ws}' GROUP BY provider ORDER BY provider"
    )
    assert behind == [("anthropic", 2, Decimal("0.5")), ("openai", 3, Decimal("3.5"))]


def test_the_demo_tells_its_story(built: Built) -> None:
    marts = built.stores.databases.marts
    ws = built.demo.workspace.workspace_id
    statuses = built.query(
        f"SELECT provider, period_label, status, variance_pct FROM {marts}.reconciliation "
        f"WHERE workspace_id = '{ws}' ORDER BY provider, period"
    )
    change_month = built.demo.price_change_day.strftime("%Y-%m")
    red = [(p, m) for p, m, s, _ in statuses if s == "red"]
    assert red == [("xai", change_month)]  # the grok-4 price cut the meter picked up late
    others = {s for p, m, s, _ in statuses if (p, m) != ("xai", change_month)}
    assert others <= {"sage", "unbilled"}
    assert all(abs(pct) < Decimal("0.5") for p, m, s, pct in statuses if s == "sage" and pct is not None)
    stale = built.query(
        f"SELECT DISTINCT card_model, toString(day) FROM {marts}.reconciliation_requests "
        f"WHERE workspace_id = '{ws}' AND repricing_differs ORDER BY 2"
    )
    assert stale and {model for model, _ in stale} == {"grok-4-0709"}
    days = {date.fromisoformat(day) for _, day in stale}
    assert min(days) >= built.demo.price_change_day and max(days) < built.demo.price_card_pickup_day
    loops = built.query(
        f"SELECT count() FROM {marts}.prompt_clusters WHERE workspace_id = '{ws}' AND is_loop"
    )
    assert loops[0][0] >= 1
    centers = {
        row[0] for row in built.query(f"SELECT DISTINCT cost_center_name FROM {marts}.cost_center_spend")
    }
    assert {"Client Work", "R&D", "Internal Tools", "Unassigned"} <= centers
    developers = built.query(
        f"SELECT count(DISTINCT member_email) FROM {marts}.developer_spend WHERE workspace_id = '{ws}'"
    )
    assert developers[0][0] >= 6
    budgets = {
        row[0]
        for row in built.query(f"SELECT status FROM {marts}.budget_variance WHERE workspace_id = '{ws}'")
    }
    assert "over" in budgets
    profile = built.query(
        f"SELECT count(), sum(requests) FROM {marts}.model_usage_30d WHERE workspace_id = '{ws}'"
    )
    assert profile[0][0] >= 10 and profile[0][1] > 0


def test_rerunning_everything_changes_no_number(built: Built) -> None:
    before = built.fingerprints()
    built.dbt("run")  # the first build ran the tests already
    assert built.fingerprints() == before


def test_a_resent_batch_changes_no_number(built: Built) -> None:
    before = built.fingerprints()
    client = built.stores.client()
    first = next(built.demo.chunks())
    insert_requests(
        client, built.stores.databases, built.demo, first, batch_id=uuid.uuid4(), arrived_now=True
    )
    insert_request_rows(
        client, built.stores.databases, built.hand.workspace_id, built.hand.device_id, built.hand.rows()
    )
    raw = built.query(f"SELECT count() FROM {built.stores.databases.raw}.requests")[0][0]
    assert raw == DEMO.requests + len(first) + 2 * len(built.hand.rows())
    built.dbt("run")
    assert built.fingerprints() == before


def test_a_late_row_updates_its_day_and_matches_a_full_rebuild(built: Built) -> None:
    hand = built.hand
    late = hand.row(
        "openai", "gpt-5-mini-2025-08-07", datetime(2026, 10, 2, 18, tzinfo=UTC), Decimal("0.75"), 9
    )
    insert_request_rows(
        built.stores.client(), built.stores.databases, hand.workspace_id, hand.device_id, [late]
    )
    built.dbt("run")
    marts = built.stores.databases.marts
    day = built.query(
        f"SELECT logged_usd, status FROM {marts}.reconciliation_daily WHERE workspace_id = '{hand.workspace_id}' "
        "AND provider = 'openai' AND day = '2026-10-02'"
    )
    assert day == [(Decimal("10.75"), "red")]
    incremental = built.fingerprints()
    built.dbt("run", "--full-refresh")
    assert built.fingerprints() == incremental


def test_a_prompt_repeated_late_brings_its_first_call_into_the_prompt_days(built: Built) -> None:
    """prompt_daily_spend holds repeated prompts only: a call repeating a prompt seen once, weeks earlier, makes
    the earlier day's call a repeat too, and the incremental run rebuilds that day as a full rebuild would."""
    hand = built.hand
    marts = built.stores.databases.marts
    (prompt, first_day), *_ = built.query(
        f"SELECT prompt_hash, any(day) FROM {marts}.requests WHERE workspace_id = '{hand.workspace_id}'"
        " AND prompt_hash IS NOT NULL GROUP BY prompt_hash HAVING count() = 1 ORDER BY any(day) LIMIT 1"
    )
    repeat = hand.row(
        "openai", "gpt-5-mini-2025-08-07", datetime(2026, 10, 20, 9, tzinfo=UTC), Decimal("0.5"), 41
    ).model_copy(update={"prompt_hash": prompt})
    insert_request_rows(
        built.stores.client(), built.stores.databases, hand.workspace_id, hand.device_id, [repeat]
    )
    built.dbt("run")
    days = built.query(
        f"SELECT day, sum(requests) FROM {marts}.prompt_daily_spend WHERE prompt_hash = '{prompt}'"
        " GROUP BY day ORDER BY day"
    )
    assert days == [(first_day, 1), (date(2026, 10, 20), 1)]
    incremental = built.fingerprints()
    built.dbt("run", "--full-refresh")
    assert built.fingerprints() == incremental


def test_the_sensor_asks_for_marts_after_ingestion(built: Built) -> None:
    warehouse = built.resources["warehouse"]
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
        request = marts_after_ingestion(context)
        assert isinstance(request, dg.RunRequest)
        newest = context.cursor
        again = dg.build_sensor_context(instance=instance, cursor=newest, resources={"warehouse": warehouse})
        assert isinstance(marts_after_ingestion(again), dg.SkipReason)
        # No cursor yet, but a marts run covered these rows (`up --demo`'s first build, before the daemon).
        first = dg.DagsterRun(
            job_name=MARTS_JOB,
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.SUCCESS,
            tags={INGESTED_THROUGH: newest},
        )
        instance.add_run(first)
        fresh = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse})
        skipped = marts_after_ingestion(fresh)
        assert isinstance(skipped, dg.SkipReason) and "nothing ingested since" in skipped.skip_message
        instance.delete_run(first.run_id)
        late = built.hand.row(
            "xai", "grok-code-fast-1", datetime(2026, 10, 3, 9, tzinfo=UTC), Decimal("0.1"), 7
        )
        insert_request_rows(
            built.stores.client(),
            built.stores.databases,
            built.hand.workspace_id,
            built.hand.device_id,
            [late],
        )
        busy = dg.DagsterRun(
            job_name="halton_marts", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
        instance.add_run(busy)
        waiting = dg.build_sensor_context(
            instance=instance, cursor=newest, resources={"warehouse": warehouse}
        )
        assert isinstance(marts_after_ingestion(waiting), dg.SkipReason)  # a marts run is in flight
        instance.delete_run(busy.run_id)
        # Once the batches pause (QUIET_SECONDS), the rows that arrived meanwhile get one run.
        deadline = time.monotonic() + 120
        while True:
            moved = dg.build_sensor_context(
                instance=instance, cursor=newest, resources={"warehouse": warehouse}
            )
            answer = marts_after_ingestion(moved)
            if isinstance(answer, dg.RunRequest):
                break
            assert "still arriving" in answer.skip_message and time.monotonic() < deadline, answer
            time.sleep(1)


def test_budget_forecasts_read_each_scopes_earlier_months(built: Built) -> None:
    # The alerts' forecast follows the shape of the months before the current one: for each budget, its
    # scope's spend per day of those months, which add up to what budget_variance says each month spent.
    marts = built.stores.databases.marts
    months = current_months(built.stores.client(), marts)
    assert months and {m.period for m in months} == {date(2026, 11, 1)}
    assert any(m.earlier for m in months)
    for month in months:
        before = built.query(
            f"SELECT spend_usd FROM {marts}.budget_variance WHERE budget_id = '{month.budget_id}'"
            " AND period BETWEEN '2026-08-01' AND '2026-10-01' AND spend_usd > 0 ORDER BY period"
        )
        assert [m.total for m in month.earlier] == [spend for (spend,) in before], month.scope_label
