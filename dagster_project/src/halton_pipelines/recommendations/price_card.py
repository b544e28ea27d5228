"""The shared price card as the recommendations read it, and what a set of tokens costs on it.

Savings are quoted at the catalogue's standard prices in force at the end of the window (what the next month
will cost), read from dbt's windowed rate rows (`int_model_prices_windowed`, the rows `int_requests_priced`
re-prices with): the base rates, the first size tier above them (the whole call at the `*_above` rates), and
the batch rates as a multiplier. Region multipliers and per-call fees are left out of savings estimates.
Token sums price exactly like the calls they sum, because the price is linear in every count within a tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext

from clickhouse_connect.driver.client import Client

MILLION = Decimal(1_000_000)
NANO = Decimal("0.000000001")


@dataclass(frozen=True)
class TokenSums:
    """Token counts of a set of calls, split as the card prices them (input here excludes cache reads/writes)."""

    requests: int = 0
    uncached_input: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cache_write_1h: int = 0
    output: int = 0

    def __add__(self, other: TokenSums) -> TokenSums:
        return TokenSums(
            self.requests + other.requests,
            self.uncached_input + other.uncached_input,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.cache_write_1h + other.cache_write_1h,
            self.output + other.output,
        )


@dataclass(frozen=True)
class CardPrice:
    """One card model's prices in force at the end of the window (USD per million tokens)."""

    provider: str
    card_model: str
    input_mtok: Decimal
    output_mtok: Decimal
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    cache_write_1h_mtok: Decimal | None = None
    tier_threshold_tokens: int | None = None
    input_mtok_above: Decimal | None = None
    cache_read_mtok_above: Decimal | None = None
    cache_write_mtok_above: Decimal | None = None
    cache_write_1h_mtok_above: Decimal | None = None
    output_mtok_above: Decimal | None = None
    requests_kusd: Decimal | None = None
    batch_multiplier: Decimal | None = None
    card: str = ""

    def rates(self, *, above_tier: bool = False) -> dict[str, Decimal]:
        """The rate of each token kind, with the card's fallbacks (as `int_requests_priced` applies them)."""
        if above_tier:
            above_input = _first(self.input_mtok_above, self.input_mtok)
            return {
                "uncached_input": above_input,
                "cache_read": _first(self.cache_read_mtok_above, self.input_mtok_above, self.input_mtok),
                "cache_write": _first(self.cache_write_mtok_above, self.input_mtok_above, self.input_mtok),
                "cache_write_1h": _first(
                    self.cache_write_1h_mtok_above,
                    self.cache_write_mtok_above,
                    self.input_mtok_above,
                    self.input_mtok,
                ),
                "output": _first(self.output_mtok_above, self.output_mtok),
            }
        return {
            "uncached_input": self.input_mtok,
            "cache_read": _first(self.cache_read_mtok, self.input_mtok),
            "cache_write": _first(self.cache_write_mtok, self.input_mtok),
            "cache_write_1h": _first(self.cache_write_1h_mtok, self.cache_write_mtok, self.input_mtok),
            "output": self.output_mtok,
        }

    def cost(self, tokens: TokenSums, *, above_tier: bool = False) -> Decimal:
        """What `tokens` cost at standard (not batch) rates, exactly (not rounded)."""
        rates = self.rates(above_tier=above_tier)
        with localcontext() as context:
            context.prec = 50
            total = (
                sum((Decimal(getattr(tokens, kind)) * rate for kind, rate in rates.items()), Decimal(0))
                / MILLION
            )
            if self.requests_kusd is not None:
                total += Decimal(tokens.requests) * self.requests_kusd / 1000
            return total

    @property
    def has_tier(self) -> bool:
        return self.tier_threshold_tokens is not None


def _first(*values: Decimal | None) -> Decimal:
    for value in values:
        if value is not None:
            return value
    raise ValueError("a price with no fallback: the card row has no input price")


def money(amount: Decimal) -> Decimal:
    """An amount as money: rounded half away from zero to the nano-dollar, as the warehouse rounds."""
    return amount.quantize(NANO, rounding="ROUND_HALF_UP")


def load_card_prices(client: Client, staging: str, at: date) -> dict[tuple[str, str], CardPrice]:
    """The standard price of every (provider, catalogue model) in force at the start of day `at` (the window's
    end), its first size tier above the base rates, and its batch rates as a multiplier of the standard ones."""
    moment = f"toDateTime64('{at.isoformat()}', 3, 'UTC')"
    in_force = (
        f"SELECT * FROM {staging}.int_model_prices_windowed WHERE mode = '{{mode}}' AND priced "
        f"AND valid_from <= {moment} AND (valid_until IS NULL OR valid_until > {moment})"
    )
    rows = client.query(
        f"""
        SELECT
            s.provider AS provider, s.card_model AS card_model,
            s.input_mtok[1] AS input_mtok, ifNull(s.output_mtok[1], toDecimal64(0, 9)) AS output_mtok,
            s.cache_read_mtok[1] AS cache_read_mtok, s.cache_write_5m_mtok[1] AS cache_write_mtok,
            s.cache_write_1h_mtok[1] AS cache_write_1h_mtok,
            if(length(s.tier_aboves) > 1, s.tier_aboves[2], NULL) AS tier_threshold_tokens,
            if(length(s.tier_aboves) > 1, s.input_mtok[2], NULL) AS input_mtok_above,
            if(length(s.tier_aboves) > 1, s.cache_read_mtok[2], NULL) AS cache_read_mtok_above,
            if(length(s.tier_aboves) > 1, s.cache_write_5m_mtok[2], NULL) AS cache_write_mtok_above,
            if(length(s.tier_aboves) > 1, s.cache_write_1h_mtok[2], NULL) AS cache_write_1h_mtok_above,
            if(length(s.tier_aboves) > 1, s.output_mtok[2], NULL) AS output_mtok_above,
            if(
                b.card_model = '' OR s.input_mtok[1] = 0, NULL,
                toDecimal64(divideDecimal(b.input_mtok[1], s.input_mtok[1], 9), 9)
            ) AS batch_multiplier,
            concat('catalogue ', s.catalogue) AS card
        FROM ({in_force.format(mode="standard")}) AS s
        LEFT JOIN ({in_force.format(mode="batch")}) AS b
            ON s.provider = b.provider AND s.card_model = b.card_model
        """,
        settings={"join_use_nulls": 0},
    ).named_results()
    prices = {}
    for row in rows:
        threshold = row["tier_threshold_tokens"]
        row["tier_threshold_tokens"] = int(threshold) if threshold is not None else None
        prices[(row["provider"], row["card_model"])] = CardPrice(**row)
    return prices
