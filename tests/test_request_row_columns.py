"""The request row is declared once (`halton_meter.protocol.RequestRow`): every place that spells its columns
again (the warehouse's raw.requests, the dbt staging model and its yml, the meter's SQLite table) must hold
the same ones, and a failure names the place that differs."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import yaml

from halton_meter.protocol import INGESTED_REQUEST_COLUMNS, REQUEST_ROW_FIELDS
from halton_meter.store import LOCAL_COLUMNS, open_store, request_columns

ROOT = Path(__file__).resolve().parent.parent
STAGING = ROOT / "dbt" / "models" / "staging" / "meter"
STAGING_SQL = STAGING / "stg_meter__requests.sql"
STAGING_YML = STAGING / "_meter__models.yml"
# Columns raw.requests has beyond what the API writes: the table's own clock.
TABLE_DEFAULTS = {"ingested_at"}
# What the staging model derives rather than renames (it is "rename/cast only" but for these two).
DERIVED = {"day", "model"}


def _differ(place: str, expected: set[str], found: set[str]) -> str:
    missing, extra = sorted(expected - found), sorted(found - expected)
    return f"{place} differs from RequestRow: lacks {missing or 'nothing'}, has extra {extra or 'nothing'}"


def staging_select() -> dict[str, str]:
    """The staging model's select list: output name -> the raw column (or expression) it comes from."""
    text = STAGING_SQL.read_text()
    body = text[text.index("select") + len("select") : text.index("\nfrom ")]
    selected = {}
    for item in re.split(r",\n", body):
        item = " ".join(item.split())
        expression, _, alias = item.rpartition(" as ")
        selected[alias or item] = expression or item
    return selected


def test_raw_requests_holds_the_row_and_the_envelope(warehouse) -> None:
    columns = {
        name
        for name, *_ in warehouse.client()
        .query(f"DESCRIBE TABLE {warehouse.databases.raw}.requests")
        .result_rows
    }
    assert columns == set(INGESTED_REQUEST_COLUMNS) | TABLE_DEFAULTS, _differ(
        "raw.requests (warehouse/src/halton_warehouse/migrations)",
        set(INGESTED_REQUEST_COLUMNS) | TABLE_DEFAULTS,
        columns,
    )


def test_the_staging_model_reads_every_raw_column_once() -> None:
    sources = set(staging_select().values()) - {e for e in staging_select().values() if "(" in e}
    expected = set(INGESTED_REQUEST_COLUMNS) | TABLE_DEFAULTS
    assert sources == expected, _differ(str(STAGING_SQL.relative_to(ROOT)), expected, sources)


def test_the_staging_yml_documents_every_column_the_model_selects() -> None:
    (model,) = [m for m in yaml.safe_load(STAGING_YML.read_text())["models"] if m["name"] == STAGING_SQL.stem]
    documented = [column["name"] for column in model["columns"]]
    selected = list(staging_select())
    assert set(selected) - DERIVED == {
        alias
        for alias, source in staging_select().items()
        if source in set(INGESTED_REQUEST_COLUMNS) | TABLE_DEFAULTS
    }
    assert documented == selected, _differ(
        f"{STAGING_YML.relative_to(ROOT)} (model {STAGING_SQL.stem}, in the model's order)",
        set(selected),
        set(documented),
    ) + (" (same names, another order)" if set(documented) == set(selected) else "")


def test_the_meters_table_has_a_column_for_every_field(tmp_path: Path) -> None:
    open_store(tmp_path / "db.sqlite").close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        table = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    assert set(request_columns()) <= table, _differ(
        "the meter's SQLite requests table (halton_meter.store migrations)",
        set(request_columns()),
        table & set(request_columns()),
    )
    assert len(request_columns()) == len(REQUEST_ROW_FIELDS) + len(LOCAL_COLUMNS)  # each field once


def test_the_demos_raw_load_fills_only_raw_requests_columns() -> None:
    """The demo loads raw.requests straight from Arrow (benchmarks, tests): each column it fills is one the
    row (or the table's clock) declares; the row's others are NULL, as from a meter that did not say."""
    from halton_warehouse.demo.demo_data import Demo, DemoConfig

    demo = Demo(DemoConfig(seed=1, requests=20, days=14))
    chunk = next(demo.chunks())
    filled = set(chunk.to_arrow(demo).column_names)
    expected = set(INGESTED_REQUEST_COLUMNS) | TABLE_DEFAULTS
    assert filled <= expected, _differ(
        "the demo's Arrow load (halton_warehouse.demo.demo_data.RequestChunk.to_arrow)", expected, filled
    )
