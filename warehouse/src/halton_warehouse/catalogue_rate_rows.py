"""The price catalogue as rows of `raw.rate_rows`: the meter's own rate rows, for dbt to re-price with.

The meter prices every call from `halton_meter.catalogue.rate_rows` (through `halton_meter.pricing`);
the warehouse stores the very same rows, one per (model, mode, day a price starts), and `int_requests_priced`
applies pricing.py's rules to them in SQL. Nothing is re-derived here: a row is written as the meter holds
it, with two changes the warehouse needs, each refused loudly when it cannot be made exactly:

- amounts become Decimal(18, 9); a rate with more places or digits is an error naming the model, never a
  rounded price;
- a regex clause is run by ClickHouse's `match` (RE2), which has no lookaround. The one form the catalogue
  uses, a whole-pattern negative lookahead `^(?!P)` ("the name does not start with P"), is written as the
  clause `not_regex` `^(?:P)`, which matches exactly the same names; any other lookaround or back-reference
  is an error naming the model.
"""

from __future__ import annotations

from decimal import Decimal

from halton_meter.catalogue import Catalogue
from halton_meter.catalogue.rate_rows import RateRow, rate_rows
from halton_meter.catalogue.regex import NotPortable, portable_clause

# The columns of `raw.rate_rows` in insert order (pulled_at, set by the writer, comes last).
RATE_ROW_COLUMNS: tuple[str, ...] = (
    "catalogue", "provider", "model", "mode", "valid_from", "match_priority", "match_rules", "priced",
    "tier_aboves", "input", "output", "cache_read", "cache_write_5m", "cache_write_1h", "web_search_per_1k",
    "region_names", "region_multipliers", "rules", "source",
)  # fmt: skip

_MAX_AMOUNT = Decimal(10) ** 9  # Decimal(18, 9): 9 digits before the point
_NANO = Decimal("0.000000001")


class PriceCardError(ValueError):
    """A catalogue rate row cannot be stored in `raw.rate_rows` exactly as the meter prices with it."""


def card_rows(catalogue: Catalogue) -> list[RateRow]:
    """Every rate row of `catalogue`, in catalogue order (the meter's rows, unchanged)."""
    return rate_rows(catalogue)


def row_values(row: RateRow) -> tuple[object, ...]:
    """`row` as the values of `RATE_ROW_COLUMNS` (raises PriceCardError when it cannot be stored exactly)."""
    where = f"{row.provider}/{row.model} ({row.mode} from {row.valid_from.isoformat()})"
    return (
        row.catalogue,
        row.provider,
        row.model,
        row.mode,
        row.valid_from,
        row.match_priority,
        [[_sql_clause(kind, value, where) for kind, value in conjunction] for conjunction in row.match_rules],
        row.priced,
        list(row.tier_aboves),
        [_amount(v, where) for v in row.input],
        [None if v is None else _amount(v, where) for v in row.output],
        [_amount(v, where) for v in row.cache_read],
        [_amount(v, where) for v in row.cache_write_5m],
        [_amount(v, where) for v in row.cache_write_1h],
        None if row.web_search_per_1k is None else _amount(row.web_search_per_1k, where),
        [name for name, _ in row.regions],
        [_amount(multiplier, where) for _, multiplier in row.regions],
        list(row.rules),
        row.source,
    )


def _amount(value: Decimal, where: str) -> Decimal:
    if not value.is_finite() or abs(value) >= _MAX_AMOUNT or value.quantize(_NANO) != value:
        raise PriceCardError(
            f"{where}: {value} does not fit Decimal(18, 9) exactly; the warehouse would price it differently "
            "from the meter. Fix the catalogue entry."
        )
    return value.quantize(_NANO)


def _sql_clause(kind: str, value: str, where: str) -> tuple[str, str]:
    try:
        return portable_clause(kind, value)
    except NotPortable as error:
        raise PriceCardError(f"{where}: {error}. Rewrite the match clause.") from error
