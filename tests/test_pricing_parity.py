"""One cost model: the warehouse re-prices every call exactly as the meter prices it (issue 17).

Hypothesis generates calls across every rule of `halton_meter.pricing` — every catalogue model of every
provider (names through their aliases, dated ids, regex clauses and mixed case, then names no model has),
cache reads, 5-minute and 1-hour writes, prompts exactly at and one above every tier threshold, batch, flex
and priority (Anthropic's priority is standard), regions with and without a multiplier, web-search fees,
days on both sides of every dated price change, provider errors, calls without usage — and requires the
meter's cost (`PriceBook.price_facts`) and dbt's (`int_requests_priced`, compiled and run on the real
embedded ClickHouse over the catalogue's rows in `raw.rate_rows`) to be equal to the nano-dollar, and
unpriced together, on at least 10,000 calls.

Each example is a batch of calls run through the model's SQL at once: one query prices the batch.
"""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from halton_meter.catalogue import load_catalogue
from halton_meter.catalogue.rate_rows import RateRow, rate_rows
from halton_meter.pricing import CallFacts, PriceBook, call_mode
from halton_pipelines import dbt_cli
from halton_warehouse import Databases, WarehouseSettings, connect
from halton_warehouse.migrate import migrate
from halton_warehouse.raw_writes import write_rate_rows

CALLS_PER_EXAMPLE = 100
EXAMPLES = 100
REQUIRED_CALLS = 10_000
CATALOGUE = load_catalogue()
ROWS = rate_rows(CATALOGUE)
BOOK = PriceBook(catalogue=CATALOGUE)
PROVIDERS = ("anthropic", "openai", "gemini", "xai")
ASCII_NAME = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-.@/_")
SUFFIXES = ("", "-20250929", "-2025-08-07", "@20251001", "-latest", "-preview", "-tts", "-preview-TTS-1", "x")
PREFIXES = ("", "models/", "x-ai/", "openai/", "us.anthropic.")


def _leaves(row: RateRow) -> list[tuple[str, str]]:
    return [leaf for conjunction in row.match_rules for leaf in conjunction]


MODEL_LEAVES: dict[str, list[list[tuple[str, str]]]] = {provider: [] for provider in PROVIDERS}
for _row in ROWS:
    if _row.mode == "standard" and _row.valid_from.year == 1970:
        MODEL_LEAVES[_row.provider].append(_leaves(_row))
# Every threshold a prompt can cross, and the days prices change on.
THRESHOLDS = sorted({above for row in ROWS for above in row.tier_aboves if above >= 0})
CHANGE_DAYS = sorted({row.valid_from for row in ROWS if row.valid_from.year > 1970})
REGIONS = (None, "", "us", "US", "eu", "global", "apac")
TIERS = (None, "", "standard", "default", "auto", "batch", "flex", "Flex", "priority", "PRIORITY", "scale")


@st.composite
def model_names(draw: st.DrawFn, provider: str) -> str:
    """A name some catalogue model of `provider` matches (mostly), in any case, or a name none does."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(ASCII_NAME, min_size=1, max_size=24))
    leaves = draw(st.sampled_from(MODEL_LEAVES[provider]))
    kind, value = draw(st.sampled_from(leaves))
    # A regex clause: a name it matches, in ASCII (Python's \d also matches other scripts' digits; RE2's does not).
    name = draw(st.from_regex(value, fullmatch=True, alphabet=ASCII_NAME)) if kind == "regex" else value
    if kind in ("starts_with", "contains", "regex"):
        name += draw(st.sampled_from(SUFFIXES))
    if kind in ("ends_with", "contains"):
        name = draw(st.sampled_from(PREFIXES)) + name
    if draw(st.integers(0, 4)) == 0:  # the meter and the warehouse compare names lower-cased
        name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    return name


@st.composite
def prompt_sizes(draw: st.DrawFn) -> int:
    """Exactly at, one above or one below a tier threshold, or anything."""
    if draw(st.booleans()):
        return max(draw(st.sampled_from(THRESHOLDS)) + draw(st.sampled_from((0, 1, -1))), 0)
    return draw(st.integers(0, 2_000_000))


@st.composite
def start_times(draw: st.DrawFn) -> datetime:
    """A moment the day before, on, or after a price change (its first and last milliseconds), or any day."""
    if draw(st.booleans()):
        day = draw(st.sampled_from(CHANGE_DAYS)) + timedelta(days=draw(st.sampled_from((-1, 0, 1))))
        at = draw(st.sampled_from((time(0, 0), time(23, 59, 59, 999_000), time(12, 0, 0, 1000))))
    else:
        day = date(2023, 1, 1) + timedelta(days=draw(st.integers(0, 365 * 5)))
        at = time(draw(st.integers(0, 23)), draw(st.integers(0, 59)), 0, draw(st.integers(0, 999)) * 1000)
    return datetime.combine(day, at, UTC)


# The marks the meter's price card carries for each rule a cost used.
RULES_SEEN = {
    "provider error": "provider-error:", "batch": "+batch", "flex": "+flex", "priority": "+priority",
    "size tier": "+long-context>", "region": "+region:", "web search": "+web-search",
    "1h writes at 2x input": "+1h-writes@2x-input", "batch at 50%": "+batch@50%-published",
    "flex at batch rates": "+flex@batch-rates",
}  # fmt: skip


@dataclass(frozen=True)
class Call:
    uid: uuid.UUID
    provider: str
    model_served: str | None
    model_requested: str | None
    started_at: datetime
    service_tier: str | None
    batch: bool
    status_code: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cache_write_1h_tokens: int | None
    region: str | None
    web_search_requests: int | None

    def facts(self) -> CallFacts:
        return CallFacts(
            provider=self.provider,
            models=tuple(m for m in dict.fromkeys((self.model_served, self.model_requested)) if m),
            started_at=self.started_at,
            mode=call_mode(self.provider, self.service_tier, self.batch),
            region=self.region,
            status_code=self.status_code,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            cache_write_1h_tokens=self.cache_write_1h_tokens,
            web_search_requests=self.web_search_requests or 0,
        )


@st.composite
def calls(draw: st.DrawFn) -> Call:
    provider = draw(st.sampled_from(PROVIDERS))
    served = draw(st.sampled_from((None, None, "")) | model_names(provider))
    requested = None if draw(st.integers(0, 9)) == 0 else draw(model_names(provider))
    errored = draw(st.integers(0, 9)) == 0
    status = draw(st.sampled_from((400, 429, 500, 529))) if errored else draw(st.sampled_from((None, 200)))
    usage_sent = not errored or draw(st.booleans())
    prompt = None if not usage_sent or draw(st.integers(0, 19)) == 0 else draw(prompt_sizes())
    cache: list[int | None] = []
    room = prompt or 0
    for _ in range(3):  # reads, 5-minute writes, 1-hour writes: mostly within the prompt, sometimes beyond
        if draw(st.integers(0, 2)) == 0:
            cache.append(None)
            continue
        share = draw(st.integers(0, room + (5 if draw(st.integers(0, 29)) == 0 else 0)))
        cache.append(share)
        room = max(room - share, 0)
    output = (
        None
        if not usage_sent or draw(st.integers(0, 19)) == 0
        else draw(st.sampled_from((0, 1, 17, 4096, 123_457)))
    )
    return Call(
        uid=uuid.UUID(int=draw(st.integers(1, 2**120))),
        provider=provider,
        model_served=served,
        model_requested=requested,
        started_at=draw(start_times()),
        service_tier=draw(st.sampled_from(TIERS)),
        batch=draw(st.integers(0, 5)) == 0,
        status_code=status,
        input_tokens=prompt,
        output_tokens=output,
        cache_read_tokens=cache[0],
        cache_write_tokens=cache[1],
        cache_write_1h_tokens=cache[2],
        region=draw(st.sampled_from(REGIONS)),
        web_search_requests=draw(st.sampled_from((None, 0, 1, 3, 999, 1001))),
    )


@dataclass(frozen=True)
class Warehouse:
    url: str
    databases: Databases
    dbt: Callable[..., Any]
    priced_sql: str

    def reprice_from_raw(self) -> None:
        """Rebuild the windowed rate rows from raw.rate_rows, as every dbt build does."""
        self.dbt("run", "--select", "int_model_prices_windowed")


COLUMNS = (
    "request_uid", "provider", "model_served", "model_requested", "started_at", "ended_at", "service_tier",
    "batch", "status_code", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "cache_write_1h_tokens", "region", "web_search_requests", "endpoint", "project", "attribution_tier",
)  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(warehouse_server: str) -> Iterator[Warehouse]:
    """The catalogue's rate rows in a migrated warehouse, and the compiled SQL of `int_requests_priced`."""
    from dbt.cli.main import dbtRunner

    prefix = f"t{secrets.token_hex(4)}_"
    databases = Databases.with_prefix(prefix)
    client = connect(warehouse_server)
    migrate(client, databases)
    write_rate_rows(client, databases, ROWS)
    settings = WarehouseSettings(clickhouse_url=warehouse_server, clickhouse_database_prefix=prefix)
    with tempfile.TemporaryDirectory(prefix="halton-parity-dbt-") as work:
        profiles = dbt_cli.write_profiles(settings, Path(work) / "profiles", threads=1)
        common = [
            "--project-dir", str(dbt_cli.project_dir()), "--profiles-dir", str(profiles),
            "--target-path", str(Path(work) / "target"), "--log-path", str(Path(work) / "logs"),
        ]  # fmt: skip

        def dbt(*args: str) -> Any:
            result = dbtRunner().invoke(dbt_cli.with_vars([*args, *common], dbt_cli.dbt_vars(settings)))
            assert result.success, f"dbt {' '.join(args)} failed: {result.exception}"
            return result

        dbt(
            "run",
            "--select",
            "+int_model_prices_windowed",
            "stg_meter__requests",
            "stg_meter__request_arrivals",
        )
        compiled = dbt("compile", "--select", "int_requests_priced").result.results[0].node.compiled_code
        try:
            yield Warehouse(warehouse_server, databases, dbt, compiled)
        finally:
            for name in (databases.raw, f"{prefix}staging", databases.marts, databases.meta):
                client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


def warehouse_costs(warehouse: Warehouse, batch: list[Call]) -> dict[uuid.UUID, Decimal | None]:
    client = connect(warehouse.url)
    client.command(f"TRUNCATE TABLE {warehouse.databases.raw}.requests")
    rows = [
        [
            c.uid, c.provider, c.model_served, c.model_requested, c.started_at, c.started_at, c.service_tier,
            c.batch, c.status_code, c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens,
            c.cache_write_1h_tokens, c.region, c.web_search_requests, "/v1", "parity", "header",
        ]
        for c in batch
    ]  # fmt: skip
    client.insert(f"{warehouse.databases.raw}.requests", rows, column_names=list(COLUMNS))
    priced = client.query(
        f"SELECT request_uid, repriced_cost_usd FROM ({warehouse.priced_sql})",
        settings=dbt_cli.SESSION_SETTINGS,
    ).result_rows
    return dict(priced)


def test_the_warehouse_prices_every_call_as_the_meter_does(warehouse: Warehouse) -> None:
    checked: list[int] = []
    outcomes = dict.fromkeys(RULES_SEEN, 0) | {"priced": 0, "unpriced": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=(
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ),
    )
    @given(
        st.lists(calls(), min_size=CALLS_PER_EXAMPLE, max_size=CALLS_PER_EXAMPLE, unique_by=lambda c: c.uid)
    )
    def same_costs(batch: list[Call]) -> None:
        sql = warehouse_costs(warehouse, batch)
        assert set(sql) == {c.uid for c in batch}
        for call in batch:
            price = BOOK.price_facts(call.facts())
            assert sql[call.uid] == price.cost_usd, (call, price, sql[call.uid])
            outcomes["unpriced" if price.cost_usd is None else "priced"] += 1
            for rule, mark in RULES_SEEN.items():
                outcomes[rule] += mark in (price.price_card or "")
        checked.append(len(batch))

    same_costs()
    assert sum(checked) >= REQUIRED_CALLS
    # The calls cover every rule in earnest (the meter's price card names the rules a cost used): at least
    # 40 calls each (priority has a price at few models outside Anthropic, so it is the rarest).
    assert min(outcomes.values()) >= 40, outcomes


def test_a_model_the_newest_catalogue_drops_stops_pricing(warehouse: Warehouse) -> None:
    """Only the catalogue written last prices: its predecessor's rows stay in raw but price nothing."""
    provider, model = "xai", "grok-4-0709"
    newer = replace(
        CATALOGUE,
        version=f"{CATALOGUE.version}-without-{model}",
        models=tuple(m for m in CATALOGUE.models if (m.provider, m.id) != (provider, model)),
    )
    assert CATALOGUE.find(provider, model) is not None and newer.find(provider, model) is None
    call = Call(
        uid=uuid.uuid4(), provider=provider, model_served=model, model_requested=None,
        started_at=datetime(2026, 11, 2, 9, tzinfo=UTC), service_tier=None, batch=False, status_code=200,
        input_tokens=1_000, output_tokens=100, cache_read_tokens=None, cache_write_tokens=None,
        cache_write_1h_tokens=None, region=None, web_search_requests=None,
    )  # fmt: skip
    client = connect(warehouse.url)
    priced = warehouse_costs(warehouse, [call])[call.uid]
    assert priced is not None and priced == BOOK.price_facts(call.facts()).cost_usd
    try:
        write_rate_rows(client, warehouse.databases, rate_rows(newer))
        warehouse.reprice_from_raw()
        assert warehouse_costs(warehouse, [call]) == {call.uid: None}
    finally:
        write_rate_rows(client, warehouse.databases, ROWS)  # the packaged catalogue in force again
        warehouse.reprice_from_raw()
    assert warehouse_costs(warehouse, [call]) == {call.uid: priced}
