"""The price catalogue as the recommendations read it, and what a set of tokens costs on it.

Savings are quoted at the prices in force at the end of the window (what the next month will cost): the
catalogue's rate rows as the warehouse holds them (``int_model_prices_windowed``, the rows
``int_requests_priced`` re-prices with), priced by the meter's one cost model (``halton_meter.pricing
.card_lines``). Token sums price exactly like the calls they sum, because the
price is linear in every count within a tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from halton_meter.catalogue.rate_rows import RateRow
from halton_meter.pricing import Buckets, card_lines, lines_usd

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

    def buckets(self) -> Buckets:
        return Buckets(
            self.uncached_input, self.cache_read, self.cache_write, self.cache_write_1h, self.output
        )


_BUCKET_NAMES = {
    "input": "uncached_input",
    "cache_read": "cache_read",
    "cache_write_5m": "cache_write",
    "cache_write_1h": "cache_write_1h",
    "output": "output",
}


@dataclass(frozen=True)
class CardPrice:
    """One catalogue model's rates in force at the end of the window: standard, and batch when published.

    ``above_tier`` means the model's highest size tier (the catalogue's models have at most one).
    """

    provider: str
    card_model: str
    standard: RateRow
    batch: RateRow | None
    card: str

    @property
    def tier_threshold_tokens(self) -> int | None:
        aboves = self.standard.tier_aboves
        return aboves[-1] if len(aboves) > 1 else None

    def rates(self, *, above_tier: bool = False) -> dict[str, Decimal]:
        """The standard rate of each token kind (USD per million tokens), fallbacks applied."""
        lines = card_lines(self.standard, self._tier(self.standard, above_tier), Buckets())
        assert lines is not None  # no output tokens: always priced
        return {_BUCKET_NAMES[line.bucket]: line.rate for line in lines}

    def cost(self, tokens: TokenSums, *, above_tier: bool = False) -> Decimal:
        """What `tokens` cost at standard rates, exactly (not rounded)."""
        return _cost(self.standard, self._tier(self.standard, above_tier), tokens)

    def batch_cost(self, tokens: TokenSums, *, above_tier: bool = False) -> Decimal | None:
        """What `tokens` cost through the batch API, exactly; None when the model has no batch price."""
        if self.batch is None:
            return None
        return _cost(self.batch, self._tier(self.batch, above_tier), tokens)

    @staticmethod
    def _tier(row: RateRow, above_tier: bool) -> int:
        return len(row.tier_aboves) - 1 if above_tier else 0


def _cost(row: RateRow, tier: int, tokens: TokenSums) -> Decimal:
    lines = card_lines(row, tier, tokens.buckets())
    if lines is None:
        raise ValueError(f"{row.provider}/{row.model} has no output price but the tokens have output")
    return lines_usd(lines)


def money(amount: Decimal) -> Decimal:
    """An amount as money: rounded half away from zero to the nano-dollar, as the warehouse rounds."""
    return amount.quantize(NANO, rounding="ROUND_HALF_UP")


def load_card_prices(client: Client, staging: str, at: date) -> dict[tuple[str, str], CardPrice]:
    """The rates of every (provider, catalogue model) in force at the start of day `at` (the window's end):
    the very rate rows `int_requests_priced` re-prices with (`int_model_prices_windowed`), standard and batch."""
    moment = f"toDateTime64('{at.isoformat()}', 3, 'UTC')"
    rows = client.query(
        f"SELECT {', '.join(_ROW_COLUMNS)} FROM {staging}.int_model_prices_windowed "
        f"WHERE mode IN ('standard', 'batch') AND priced "
        f"AND valid_from <= {moment} AND (valid_until IS NULL OR valid_until > {moment})"
    ).named_results()
    in_force = {(r["provider"], r["card_model"], r["mode"]): _rate_row(r) for r in rows}
    return {
        (provider, model): CardPrice(
            provider, model, row, in_force.get((provider, model, "batch")), f"catalogue {row.catalogue}"
        )
        for (provider, model, mode), row in in_force.items()
        if mode == "standard"
    }


_ROW_COLUMNS = (
    "provider", "card_model", "mode", "valid_from", "tier_aboves", "input_mtok", "output_mtok", "cache_read_mtok",
    "cache_write_5m_mtok", "cache_write_1h_mtok", "source", "catalogue",
)  # fmt: skip


def _rate_row(row: dict) -> RateRow:
    return RateRow(
        provider=row["provider"],
        model=row["card_model"],
        mode=row["mode"],
        valid_from=row["valid_from"].date() if hasattr(row["valid_from"], "date") else row["valid_from"],
        match_priority=0,
        match_rules=(),
        priced=True,
        tier_aboves=tuple(int(v) for v in row["tier_aboves"]),
        input=tuple(row["input_mtok"]),
        output=tuple(row["output_mtok"]),
        cache_read=tuple(row["cache_read_mtok"]),
        cache_write_5m=tuple(row["cache_write_5m_mtok"]),
        cache_write_1h=tuple(row["cache_write_1h_mtok"]),
        source=row["source"],
        catalogue=row["catalogue"],
    )
