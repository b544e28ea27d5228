"""The optimisation checks on real engines: seeded scenarios where each check fires and quotes an exact
figure (computed by hand below from the test card's rates), near misses where it must not, the same numbers
and ids on every run, and a recommendation gone once its pattern is.

One workspace holds every scenario, one project each; the module builds the marts once with dbt (as_of
2026-11-01: the window is 2026-10-02 to 2026-11-01) and runs the checks on them.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import dagster as dg
import pytest

from halton_pipelines.defs.recommendation_assets import recommendations as recommendations_asset
from halton_pipelines.recommendations import checks
from halton_pipelines.recommendations.recommendation import (
    BATCH_API,
    DUPLICATE_REQUESTS,
    FAILED_CALLS,
    LONG_CONTEXT,
    PROMPT_CACHING,
    RIGHT_SIZING,
    recommendation_id,
)
from halton_pipelines.recommendations.recommendation_sets import RUN_MARKERS, read_current
from halton_pipelines.recommendations.run import compute, run_recommendations
from halton_pipelines.recommendations.window_usage import Window, staging_database
from halton_pipelines.resources import HaltonDbtResource, WarehouseResource
from halton_pipelines.testing.factories import (
    catalogue_model,
    catalogue_of,
    insert_request_rows,
    metered_call,
)
from halton_warehouse.catalogue_rate_rows import card_rows
from halton_warehouse.raw_writes import write_rate_rows

AS_OF = "2026-11-01"
WINDOW = Window(date(2026, 10, 2), date(2026, 11, 1))
WORKSPACE = uuid.UUID("00000000-0000-4000-8000-00000000c0de")
QUIET_WORKSPACE = uuid.UUID("00000000-0000-4000-8000-00000000c0df")
DEVICE = uuid.UUID("00000000-0000-4000-8000-00000000d0de")
START = datetime(2026, 10, 10, tzinfo=UTC)
M = Decimal(1_000_000)

# The test card: Sonnet-like and Haiku-like rates (USD per million tokens), a 200k-token tier on the large one.
# (Anthropic's batch API is half price: the catalogue's batch fallback.)
CARD = catalogue_of(
    catalogue_model(
        "anthropic", "claude-sonnet-4-5", {"input": "3", "output": "15", "cache_read": "0.3", "cache_write_5m": "3.75"},
        tiers=[{"above": 200_000, "rates": {"input": "6", "output": "22.5", "cache_read": "0.6", "cache_write_5m": "7.5"}}],
    ),
    catalogue_model(
        "anthropic", "claude-haiku-4-5", {"input": "1", "output": "5", "cache_read": "0.1", "cache_write_5m": "1.25"}
    ),
)  # fmt: skip


def sonnet(uncached: int, output: int, *, cache_read: int = 0) -> Decimal:
    """A call's cost on the test card below the tier, by hand."""
    return (uncached * Decimal(3) + cache_read * Decimal("0.3") + output * Decimal(15)) / M


def haiku(uncached: int, output: int) -> Decimal:
    return (uncached * Decimal(1) + output * Decimal(5)) / M


def every(project: str, n: int, gap: timedelta, start: datetime = START, **call) -> list:
    return [metered_call(f"{project}/{i}", project, start + i * gap, **call) for i in range(n)]


def scenarios() -> list:
    minute, second = timedelta(minutes=1), timedelta(seconds=1)
    rows = []
    # Right-sizing fires: 400 short calls and 100 exactly at the thresholds (p90 input 8,000, output 1,000).
    rows += [
        metered_call(
            f"rs-fire/{i}", "rs-fire", START + i * 10 * minute,
            input_tokens=8_000 if i % 5 == 0 else 2_000, output_tokens=1_000 if i % 5 == 0 else 300,
        )
        for i in range(500)
    ]  # fmt: skip
    # Near misses: one token over the output threshold, or over the input threshold, for 20% of the calls.
    rows += [
        metered_call(
            f"rs-long-answers/{i}", "rs-long-answers", START + i * 10 * minute,
            input_tokens=2_000, output_tokens=1_001 if i % 5 == 0 else 300,
        )
        for i in range(500)
    ]  # fmt: skip
    rows += [
        metered_call(
            f"rs-long-prompts/{i}", "rs-long-prompts", START + i * 10 * minute,
            input_tokens=8_001 if i % 5 == 0 else 2_000, output_tokens=300,
        )
        for i in range(500)
    ]  # fmt: skip
    # Caching fires: two prompts of 10,000 tokens, each sent every 2 minutes, never read from a cache.
    for project, gap, cached in (("cache-fire", 2, 0), ("cache-hit", 2, 9_000), ("cache-slow", 6, 0)):
        rows += [
            metered_call(
                f"{project}/{i}", project, START + i * minute * gap / 2,
                input_tokens=10_000, output_tokens=100, prompt_hash=f"{project}-prompt-{i % 2}",
                cache_read_tokens=cached if i >= 2 else 0,
            )
            for i in range(200)
        ]  # fmt: skip
    # Batch fires: 200 non-streamed calls 5 s apart; and, with low confidence, 10 minutes apart. Near miss:
    # 22 of 200 calls streamed (11%: interactive).
    big = {"input_tokens": 20_000, "output_tokens": 500}
    rows += every("batch-fire", 200, 5 * second, streamed=False, **big)
    rows += every("batch-spread", 200, 10 * minute, streamed=False, **big)
    rows += [
        metered_call(f"batch-streamed/{i}", "batch-streamed", START + i * 5 * second, streamed=i < 22, **big)
        for i in range(200)
    ]
    # A loop: one prompt 30 times, 2 s apart. Near miss: the same prompt 30 times, 10 minutes apart.
    loop = {"input_tokens": 30_000, "output_tokens": 200}
    rows += every("loop-fire", 30, 2 * second, prompt_hash="loop-prompt", **loop)
    rows += every("dup-spaced", 30, 10 * minute, prompt_hash="spaced-prompt", **loop)
    # Double sends: 10 prompts each sent twice, 20 s apart.
    rows += [
        metered_call(
            f"dup-fire/{i}", "dup-fire", START + (i // 2) * timedelta(hours=1) + (i % 2) * 20 * second,
            input_tokens=50_000, output_tokens=200, prompt_hash=f"dup-prompt-{i // 2}",
        )
        for i in range(20)
    ]  # fmt: skip
    # Long context fires: 10 calls just above the 200k tier. Near miss: 10 calls exactly at it.
    rows += every("long-fire", 10, timedelta(hours=1), input_tokens=210_000, output_tokens=1_000)
    rows += every("long-edge", 10, timedelta(hours=1), input_tokens=200_000, output_tokens=1_000)
    # Billed failures, each retried 10 s later. Near miss: failures with no usage (nothing billed).
    for project, usage in (("fail-fire", (50_000, 100)), ("fail-unbilled", (None, None))):
        for i in range(20):
            at = START + i * timedelta(hours=1)
            rows.append(
                metered_call(
                    f"{project}/{i}/failed", project, at, input_tokens=usage[0], output_tokens=usage[1],
                    status_code=500 if usage[0] else 429, prompt_hash=f"{project}-{i}",
                )
            )  # fmt: skip
            rows.append(
                metered_call(
                    f"{project}/{i}/retry", project, at + 10 * second, input_tokens=50_000, output_tokens=100,
                    prompt_hash=f"{project}-{i}",
                )
            )  # fmt: skip
    return rows


def quiet_scenario() -> list:
    """A second workspace with one loop, and no usage after the first window."""
    return every("quiet-loop", 30, timedelta(seconds=2), prompt_hash="quiet-prompt", input_tokens=30_000,
                 output_tokens=200)  # fmt: skip


class Marts:
    def __init__(self, stores) -> None:
        self.stores = stores
        self.marts = stores.databases.marts
        self.staging = staging_database(stores.prefix)
        self.warehouse = WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix)

    def client(self):
        return self.stores.client()

    def dbt_run(self, as_of: str) -> None:
        dbt = HaltonDbtResource(
            clickhouse_url=self.stores.warehouse_url, database_prefix=self.stores.prefix, as_of=as_of
        )
        assert dbt.cli(["run"]).wait().is_successful()

    def compute(self, window: Window | None = None):
        return compute(self.client(), self.marts, self.staging, window)


@pytest.fixture(scope="module")
def marts(stores) -> Marts:
    built = Marts(stores)
    client = built.client()
    write_rate_rows(client, stores.databases, card_rows(CARD))
    insert_request_rows(client, stores.databases, WORKSPACE, DEVICE, scenarios())
    insert_request_rows(client, stores.databases, QUIET_WORKSPACE, DEVICE, quiet_scenario())
    built.dbt_run(AS_OF)
    return built


@pytest.fixture(scope="module")
def found(marts: Marts) -> dict[tuple[str, str], object]:
    window, recommendations = marts.compute()
    assert window == WINDOW
    return {(r.project, r.kind): r for r in recommendations if r.workspace_id == WORKSPACE}


def test_each_check_fires_on_its_scenario_and_no_near_miss_does(found) -> None:
    assert set(found) == {
        ("rs-fire", RIGHT_SIZING),
        ("cache-fire", PROMPT_CACHING),
        ("batch-fire", BATCH_API),
        ("batch-spread", BATCH_API),
        ("loop-fire", DUPLICATE_REQUESTS),
        ("dup-fire", DUPLICATE_REQUESTS),
        ("long-fire", LONG_CONTEXT),
        ("fail-fire", FAILED_CALLS),
    }


def test_right_sizing_quotes_the_sibling_price_difference(found) -> None:
    r = found[("rs-fire", RIGHT_SIZING)]
    now = 400 * sonnet(2_000, 300) + 100 * sonnet(8_000, 1_000)
    after = 400 * haiku(2_000, 300) + 100 * haiku(8_000, 1_000)
    assert (now, after) == (Decimal("8.1"), Decimal("2.7"))
    assert r.monthly_saving_usd == now - after == Decimal("5.4")  # a 30-day window is the month
    assert r.title == "Swap claude-sonnet-4-5 → claude-haiku-4-5"
    assert (r.model, r.target_model, r.provider) == ("claude-sonnet-4-5", "claude-haiku-4-5", "anthropic")
    assert r.confidence == "medium"  # 500 calls: fewer than the 1,000 that make it high
    assert r.evidence["input_tokens_p90"] == 8_000 and r.evidence["output_tokens_p90"] == 1_000
    assert r.evidence["input_tokens_p50"] == 2_000 and r.evidence["requests"] == 500
    assert r.affected_requests == 500
    # The samples are the most expensive calls (the 8,000-token ones), then by request id.
    expected = sorted(metered_call(f"rs-fire/{i}", "rs-fire", START, input_tokens=1, output_tokens=1).request_uid
                      for i in range(0, 500, 5))[:5]  # fmt: skip
    assert [s.request_uid for s in r.samples] == expected
    assert all(s.provider_request_id == f"msg_{s.request_uid.hex[:24]}" for s in r.samples)
    assert "Based on 500 requests in the last 30 days." in r.explanation


def test_prompt_caching_quotes_reads_minus_the_cache_writes(found) -> None:
    r = found[("cache-fire", PROMPT_CACHING)]
    reads = 198 * 10_000 * (Decimal(3) - Decimal("0.3")) / M  # every call but each prompt's first
    writes = 2 * 10_000 * (Decimal("3.75") - Decimal(3)) / M  # each prompt's first call writes the cache
    assert r.monthly_saving_usd == reads - writes == Decimal("5.331")
    assert r.confidence == "high"  # nothing of the workload reads a cache, 198 repeats
    assert r.evidence["repeated_prompts"] == 2 and r.affected_requests == 198


def test_batch_api_quotes_the_card_multiplier(found) -> None:
    r = found[("batch-fire", BATCH_API)]
    assert r.monthly_saving_usd == 200 * sonnet(20_000, 500) * Decimal("0.5") == Decimal("6.75")
    assert r.evidence["batch_multiplier"] == Decimal("0.5")
    assert r.evidence["batchable_in_bursts"] == 199  # the first call has no previous one
    assert r.confidence == "medium"  # bursty, fewer than 1,000 calls
    spread = found[("batch-spread", BATCH_API)]
    assert spread.monthly_saving_usd == Decimal("6.75") and spread.evidence["batchable_in_bursts"] == 0
    assert spread.confidence == "low"  # nobody can tell from the data whether someone waits on these


def test_loops_and_double_sends_quote_what_the_repeats_cost(found) -> None:
    loop = found[("loop-fire", DUPLICATE_REQUESTS)]
    assert loop.monthly_saving_usd == 29 * sonnet(30_000, 200) == Decimal("2.697")
    assert (loop.confidence, loop.evidence["loop_repeats"], loop.evidence["loop_clusters"]) == ("high", 29, 1)
    doubles = found[("dup-fire", DUPLICATE_REQUESTS)]
    assert doubles.monthly_saving_usd == 10 * sonnet(50_000, 200) == Decimal("1.53")
    assert (doubles.confidence, doubles.evidence["double_sends"]) == ("medium", 10)


def test_long_context_quotes_the_tier_premium(found) -> None:
    r = found[("long-fire", LONG_CONTEXT)]
    premium = 10 * (210_000 * (Decimal(6) - Decimal(3)) + 1_000 * (Decimal("22.5") - Decimal(15))) / M
    assert r.monthly_saving_usd == premium == Decimal("6.375")
    assert r.confidence == "high"  # 210,000 is within 25% of the 200,000 tier
    assert r.evidence["above_tier_requests"] == 10 and r.evidence["tier_threshold_tokens"] == 200_000


def test_failed_calls_quote_the_billed_failures(found) -> None:
    r = found[("fail-fire", FAILED_CALLS)]
    assert r.monthly_saving_usd == 20 * sonnet(50_000, 100) == Decimal("3.03")
    assert r.confidence == "high" and r.evidence["retried_failures"] == 20
    assert r.evidence["failure_statuses"] == {"500": 20}
    assert {s.request_uid for s in r.samples} <= {
        metered_call(f"fail-fire/{i}/failed", "x", START, input_tokens=1, output_tokens=1).request_uid
        for i in range(20)
    }


def test_baseline_holds_what_realised_savings_need(found) -> None:
    r = found[("rs-fire", RIGHT_SIZING)]
    b = r.baseline
    assert (b.start, b.end, b.days, b.requests) == (WINDOW.start, WINDOW.end, 30, 500)
    assert b.spend_usd == Decimal("8.1") and b.cost_per_request_usd == Decimal("0.0162")
    assert b.spend_per_day_usd == Decimal("0.27")
    assert b.input_tokens == 400 * 2_000 + 100 * 8_000 and b.output_tokens == 400 * 300 + 100 * 1_000
    assert r.expected_saving_per_request_usd == Decimal("0.0108")
    assert r.scope_models == ("claude-sonnet-4-5-20250929",) and r.realised_method == "per_request"
    assert found[("loop-fire", DUPLICATE_REQUESTS)].realised_method == "per_day"


def test_the_same_marts_give_the_same_ids_and_numbers(marts: Marts, found) -> None:
    _, again = marts.compute()
    again_by_key = {(r.project, r.kind): r for r in again if r.workspace_id == WORKSPACE}
    assert again_by_key == found
    r = found[("rs-fire", RIGHT_SIZING)]
    assert r.id == recommendation_id(WORKSPACE, "rs-fire", "anthropic", RIGHT_SIZING, "claude-sonnet-4-5")


def test_runs_write_the_full_set_and_reads_take_the_newest_run(marts: Marts, found) -> None:
    client = marts.client()
    first = run_recommendations(client, marts.marts, marts.staging)
    second = run_recommendations(client, marts.marts, marts.staging)
    assert first.per_workspace == second.per_workspace == {WORKSPACE: 8, QUIET_WORKSPACE: 1}
    current = read_current(client, marts.marts, WORKSPACE)
    assert {row["run_id"] for row in current} == {second.run_id}
    # Biggest saving first, ties by id.
    assert [(row["project"], row["kind"]) for row in current][2:4] == [
        ("long-fire", LONG_CONTEXT), ("rs-fire", RIGHT_SIZING)
    ]  # fmt: skip
    assert [row["monthly_saving_usd"] for row in current][:2] == [Decimal("6.75")] * 2
    stored = {(row["project"], row["kind"]): row for row in current}
    assert set(stored) == set(found)
    rs = stored[("rs-fire", RIGHT_SIZING)]
    assert rs["recommendation_id"] == found[("rs-fire", RIGHT_SIZING)].id
    assert rs["monthly_saving_usd"] == Decimal("5.4")
    assert rs["baseline_cost_per_request_usd"] == Decimal("0.0162")
    assert json.loads(rs["evidence"])["input_tokens_p90"] == 8_000
    assert rs["sample_request_uids"] == [s.request_uid for s in found[("rs-fire", RIGHT_SIZING)].samples]
    # The rows of both runs are the same but for the run that wrote them.
    older = client.query(
        f"SELECT * FROM {marts.marts}.recommendations WHERE run_id = '{first.run_id}' "
        f"AND workspace_id = '{WORKSPACE}'"
    ).named_results()
    assert _without_run(older) == _without_run(current)
    # A row written twice (a retried insert) still reads once; the view agrees with the query.
    client.insert(
        f"{marts.marts}.recommendations",
        [list(client.query(
            f"SELECT * FROM {marts.marts}.recommendations WHERE run_id = '{second.run_id}' LIMIT 1"
        ).result_rows[0])],
    )  # fmt: skip
    assert len(read_current(client, marts.marts, WORKSPACE)) == 8
    view = client.query(
        f"SELECT recommendation_id FROM {marts.marts}.recommendations_current WHERE workspace_id = '{WORKSPACE}'"
    ).result_rows
    assert sorted(v for (v,) in view) == sorted(row["recommendation_id"] for row in current)


def _without_run(rows) -> list[dict]:
    """Rows without the columns that say which run wrote them, in id order."""
    stripped = [{k: v for k, v in row.items() if k not in RUN_MARKERS} for row in rows]
    return sorted(stripped, key=lambda row: str(row["recommendation_id"]))


def test_the_asset_materializes(marts: Marts) -> None:
    result = dg.materialize([recommendations_asset], resources={"warehouse": marts.warehouse})
    assert result.success
    metadata = result.asset_materializations_for_node("recommendations")[0].metadata
    assert metadata["recommendations"].value == 9 and metadata["workspaces"].value == 2
    assert len(read_current(marts.client(), marts.marts, WORKSPACE)) == 8


def test_a_pattern_gone_takes_its_recommendation_with_it(marts: Marts, found) -> None:
    """A month later: rs-fire's answers grew long and the loop came back; the quiet workspace sent nothing."""
    client = marts.client()
    december = datetime(2026, 12, 1, tzinfo=UTC)
    later = every("rs-fire", 500, timedelta(minutes=10), december, input_tokens=2_000, output_tokens=1_200)
    later += every("loop-fire", 30, timedelta(seconds=2), december, prompt_hash="loop-prompt", input_tokens=30_000,
                   output_tokens=200)  # fmt: skip
    later = [row.model_copy(update={"request_uid": uuid.uuid5(row.request_uid, "december")}) for row in later]
    insert_request_rows(client, marts.stores.databases, WORKSPACE, DEVICE, later)
    marts.dbt_run("2026-12-20")  # dbt owns the marts it builds and leaves the recommendations tables alone
    summary = run_recommendations(client, marts.marts, marts.staging)
    assert summary.window == Window(date(2026, 11, 20), date(2026, 12, 20))
    current = read_current(client, marts.marts, WORKSPACE)
    assert [(row["project"], row["kind"]) for row in current] == [("loop-fire", DUPLICATE_REQUESTS)]
    # The same pattern keeps its id in a later window.
    assert current[0]["recommendation_id"] == found[("loop-fire", DUPLICATE_REQUESTS)].id
    assert current[0]["monthly_saving_usd"] == Decimal("2.697")
    assert read_current(client, marts.marts, QUIET_WORKSPACE) == []
    runs = client.query(
        f"SELECT count() FROM {marts.marts}.recommendation_runs WHERE workspace_id = '{QUIET_WORKSPACE}'"
    ).result_rows[0][0]
    assert runs >= 4  # two explicit runs, the asset's, and this one


def test_a_window_shorter_than_a_month_scales_to_a_month() -> None:
    assert checks.monthly(Decimal("1"), WINDOW) == Decimal("1.000000000")
    assert checks.monthly(Decimal("1"), Window(date(2026, 10, 17), date(2026, 11, 1))) == Decimal("2")
