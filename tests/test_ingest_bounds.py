"""What a device can send cannot break the cloud: far-off times and numbers past their columns are refused
(4xx, never 5xx), and every row the API does accept, at the very edges, builds the marts with dbt and
passes every dbt test, for its workspace and everyone else's (issue 16).

The API is the real process (`cloud`), the marts are built as the scheduled jobs build them (Dagster assets:
control-plane snapshot, price card, dbt build with its tests as checks, then the recommendations). A real
meter's uploader, against the same API, shows what a laptop with a wrong clock does with the refusals.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import dagster as dg
import httpx
import pytest

from cloud_support import build_marts
from halton_api.dashboards.page_models import StatementCreate
from halton_api.store import billing_inputs, projects
from halton_api.store.audit import Actor
from halton_api.testing.factories import bearer, make_device, make_user, make_workspace, row, run
from halton_meter.cloud.client import CloudClient
from halton_meter.cloud.sync import Uploader
from halton_meter.home import init_home
from halton_meter.paths import MeterPaths
from halton_meter.protocol import MAX_DURATION_MS, MAX_TOKENS, RequestRow
from halton_meter.store import open_store, rejected_rows
from halton_meter.testing.fake_cloud import store_rows

MAX_COST = "999999999.999999999"
_INTEGER = re.compile(r"^(?:Nullable\()?(U?)Int(\d+)\)?$")
_DECIMAL = re.compile(r"^(?:Nullable\()?Decimal\((\d+), (\d+)\)\)?$")


def test_the_protocols_number_bounds_fit_the_warehouse_columns(warehouse) -> None:
    """Every integer and decimal RequestRow carries is bounded inside the raw.requests column it lands in, as
    the warehouse describes it: a row the protocol accepts can never fail the INSERT (a latency past UInt32
    once answered 500)."""
    columns = dict(
        warehouse.client()
        .query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = 'requests'",
            parameters={"db": warehouse.databases.raw},
        )
        .result_rows
    )
    schema = RequestRow.model_json_schema()["properties"]
    checked = []
    for name, column_type in columns.items():
        if name not in schema:
            continue  # filled by the API (workspace, device, batch) or the warehouse (ingested_at)
        if integer := _INTEGER.match(column_type):
            unsigned, bits = integer.group(1) == "U", int(integer.group(2))
            low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            options = [schema[name], *schema[name].get("anyOf", [])]
            bounded = [o for o in options if "maximum" in o]
            assert bounded, f"{name} ({column_type}) has no maximum in RequestRow"
            assert low <= bounded[0]["minimum"] and bounded[0]["maximum"] <= high, (name, column_type)
            checked.append(name)
        elif decimal := _DECIMAL.match(column_type):
            precision, scale = int(decimal.group(1)), int(decimal.group(2))
            largest = "9" * (precision - scale) + "." + "9" * scale
            base = row("m", started_at=datetime.now(UTC))
            assert RequestRow.model_validate({**base, name: largest})
            for past in (str(10 ** (precision - scale)), "0." + "0" * scale + "1"):
                with pytest.raises(ValueError):
                    RequestRow.model_validate({**base, name: past})
            checked.append(name)
    assert sorted(checked) == sorted(
        ["status_code", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
         "cache_write_1h_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "ttfb_ms", "web_search_requests"]
    )  # fmt: skip


def _batch(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schema_version": 1, "batch_id": str(uuid.uuid4()), "rows": rows}


def _at(moment: datetime, machine_id: str, **fields: Any) -> dict[str, Any]:
    return row(machine_id, started_at=moment, **fields)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_far_off_and_oversized_rows_are_refused_and_every_accepted_edge_builds_the_marts(
    cloud, postgres_url: str, warehouse
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    device = make_device(postgres_url, workspace=workspace, paired_by=owner)
    machine = device.device.machine_id
    now = datetime.now(UTC)
    http = httpx.Client(base_url=cloud.url, headers=bearer(device.token), timeout=120)

    def send(rows: list[dict[str, Any]]) -> httpx.Response:
        return http.post("/v1/requests/batch", json=_batch(rows))

    # Refused, each with a 422 naming the row and field, none stored.
    far_off = [
        ("1899-12-31T23:59:59+00:00", "started_at"),
        ("1950-06-01T00:00:00+00:00", "started_at"),
        ("2019-12-31T23:59:59.999+00:00", "started_at"),
        ("0001-01-01T00:00:00+01:00", "started_at"),
        (_iso(now + timedelta(hours=25)), "started_at"),
        ("2200-01-01T00:00:00+00:00", "started_at"),
        ("9999-12-31T23:59:59-05:00", "started_at"),
    ]
    oversized = [("latency_ms", MAX_DURATION_MS + 1), ("ttfb_ms", 2**64), ("output_tokens", MAX_TOKENS + 1)]
    refusals = []
    for started, field in far_off:
        bad = {**_at(now - timedelta(minutes=5), machine), "started_at": started, "ended_at": started}
        refusals.append((send([_at(now - timedelta(minutes=5), machine), bad]), field))
    for field, value in oversized:
        refusals.append(
            (send([_at(now - timedelta(minutes=5), machine), row(machine, **{field: value})]), field)
        )
    for response, field in refusals:
        assert response.status_code == 422, response.text
        assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(1, field)]
    assert int(warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests")) == 0

    # Accepted: the window's edges, and every number at the top of its column, enough of them that any sum
    # of money or tokens a mart keeps in a narrower type would overflow.
    yesterday = now - timedelta(days=1)
    largest = {
        "status_code": 999,
        "input_tokens": MAX_TOKENS,
        "cache_read_tokens": MAX_TOKENS // 2,
        "cache_write_tokens": MAX_TOKENS // 4,
        "cache_write_1h_tokens": MAX_TOKENS // 4,
        "output_tokens": MAX_TOKENS,
        "reasoning_tokens": MAX_TOKENS,
        "latency_ms": MAX_DURATION_MS,
        "ttfb_ms": MAX_DURATION_MS,
        "prompt_hash": "f" * 64,  # one prompt, so the rows also make one (very expensive) prompt cluster
        "project": "acme/max",
    }
    edges = [
        _at(datetime(2020, 1, 1, tzinfo=UTC), machine),
        _at(now + timedelta(hours=23, minutes=50), machine),  # ended 2 s later: inside the day ahead
    ]
    logged = [
        _at(yesterday + timedelta(seconds=i), machine, cost_usd=MAX_COST, **largest) for i in range(100)
    ]
    repriced = [  # no logged cost: dbt re-prices max tokens at the card's dearest model
        _at(
            yesterday + timedelta(minutes=30, seconds=i),
            machine,
            provider="openai",
            model_requested="o1-pro",
            model_served="o1-pro",
            endpoint="/v1/responses",
            cost_usd=None,
            **largest,
        )
        for i in range(100)
    ]
    for rows in (edges, logged[:50], logged[50:], repriced):
        response = send(rows)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(rows)

    # A budget and a pasted statement of one cent against all of that: percentages in the millions of millions.
    month = yesterday.date().replace(day=1)
    max_project = run(
        postgres_url,
        lambda c: projects.known_slugs(c, workspace_id=workspace.id, slugs=["acme/max"]),
    )
    assert max_project == {"acme/max"}
    actor = Actor.system()
    run(
        postgres_url,
        lambda c: projects.set_budget(
            c, workspace_id=workspace.id, project_id=None, monthly_amount=Decimal("0.01"), actor=actor
        ),
    )
    for provider in ("anthropic", "openai"):
        statement = StatementCreate(provider=provider, period=month, amount_usd=Decimal("0.01"))
        run(
            postgres_url,
            lambda c, s=statement: billing_inputs.save_statement(
                c, workspace_id=workspace.id, statement=s, actor=actor
            ),
        )

    checked = _build_marts(warehouse, postgres_url, as_of=now.date())
    # The recommendations about these workloads quote amounts past their table's Decimal(18, 9): left out
    # (and counted), so the run still writes every other workspace's.
    assert checked["left_out_too_large"] >= 1 and checked["workspaces"] == 1

    marts = warehouse.databases.marts
    client = warehouse.client()
    days = client.query(
        f"SELECT day, sum(requests) FROM {marts}.daily_spend WHERE workspace_id = '{workspace.id}' "
        "GROUP BY day ORDER BY day"
    ).result_rows
    assert days[0] == (date(2020, 1, 1), 1)
    assert days[-1][0] == (now + timedelta(hours=23, minutes=50)).date()
    assert sum(n for _, n in days) == 202
    spend = client.command(
        f"SELECT toString(sum(spend_usd)) FROM {marts}.daily_spend WHERE workspace_id = '{workspace.id}' "
        "AND project = 'acme/max' AND provider = 'anthropic'"
    )
    assert Decimal(spend) == 100 * Decimal(MAX_COST)
    hours = client.query(
        f"SELECT min(hour), max(hour) FROM {marts}.hourly_spend WHERE workspace_id = '{workspace.id}'"
    ).result_rows[0]
    assert hours[0] == datetime(2020, 1, 1)


def _build_marts(warehouse, postgres_url: str, *, as_of: date) -> dict[str, Any]:
    """The scheduled jobs' order: sources, the dbt build (its data tests as asset checks), recommendations;
    returns the recommendations' metadata."""
    from halton_pipelines.defs.recommendation_assets import recommendations

    resources = build_marts(warehouse, postgres_url, as_of=as_of)
    checked = dg.materialize([recommendations], resources=resources, raise_on_error=False)
    assert checked.success
    [materialization] = checked.asset_materializations_for_node("recommendations")
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.fixture
def meter_home(tmp_path) -> MeterPaths:
    paths = MeterPaths.resolve(tmp_path / "meter")
    init_home(paths)
    return paths


def test_a_meter_whose_clock_was_wrong_sets_those_rows_aside_and_syncs_the_rest(
    cloud, postgres_url: str, warehouse, meter_home: MeterPaths
) -> None:
    owner = make_user(postgres_url)
    device = make_device(postgres_url, workspace=make_workspace(postgres_url, owner=owner), paired_by=owner)
    machine = device.device.machine_id
    in_2019 = datetime(2019, 6, 1, tzinfo=UTC)
    ahead = datetime.now(UTC) + timedelta(days=3)
    wrong = store_rows(meter_home, 30, machine_id=machine, started_at=in_2019, ended_at=in_2019)
    wrong += store_rows(meter_home, 5, machine_id=machine, started_at=ahead, ended_at=ahead)
    right = store_rows(meter_home, 40, machine_id=machine)

    conn = open_store(meter_home.db)
    client = CloudClient(cloud.url)
    try:
        uploader = Uploader(conn, client, device.token, batch_rows=100, batch_bytes=4 * 1024 * 1024)
        result = uploader.run_pass()
        assert result.stopped is None and result.remaining == 0
        assert result.synced == len(right)
        assert sorted(uid for uid, _ in result.set_aside) == sorted(wrong)
        total, newest = rejected_rows(conn, limit=100)
        assert total == len(wrong)
        reasons = dict(newest)
        assert all("clock" in reasons[uid] for uid in wrong)
        assert "before 2020-01-01" in reasons[wrong[0]] and "ahead of the cloud's clock" in reasons[wrong[-1]]
        # Nothing is sent again: the set-aside rows no longer block the queue, and are not retried forever.
        again = uploader.run_pass()
        assert again.posts == [] and again.set_aside == []
    finally:
        client.close()
        conn.close()
    stored = warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests_dedup")
    assert int(stored) == len(right)


def test_region_and_web_searches_travel_from_the_meter_to_the_warehouse(
    cloud, postgres_url: str, warehouse, meter_home: MeterPaths
) -> None:
    """The facts the warehouse needs to price like the meter (issue 17) go through sync unchanged, and a
    row without them stays NULL."""
    owner = make_user(postgres_url)
    device = make_device(postgres_url, workspace=make_workspace(postgres_url, owner=owner), paired_by=owner)
    machine = device.device.machine_id
    anthropic = {"provider": "anthropic", "model_requested": "claude-sonnet-4-5", "endpoint": "/v1/messages"}
    us = store_rows(meter_home, 3, machine_id=machine, region="us", web_search_requests=2, **anthropic)
    unknown = store_rows(meter_home, 2, machine_id=machine)
    conn = open_store(meter_home.db)
    client = CloudClient(cloud.url)
    try:
        result = Uploader(conn, client, device.token, batch_rows=100, batch_bytes=1 << 20).run_pass()
        assert result.synced == 5 and result.remaining == 0
    finally:
        client.close()
        conn.close()
    stored = {
        str(uid): (region, searches)
        for uid, region, searches in warehouse.client()
        .query(
            f"SELECT request_uid, region, web_search_requests FROM {warehouse.databases.raw}.requests_dedup"
        )
        .result_rows
    }
    assert {stored[uid] for uid in us} == {("us", 2)}
    assert {stored[uid] for uid in unknown} == {(None, None)}
