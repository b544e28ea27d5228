"""What every billing client answers with, and how it fails: the lines a provider says it billed (and
the usage behind them), the credentials a client is called with, and the client protocol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol


class BillingAPIError(RuntimeError):
    """A billing API refused or failed a request in a way retrying does not fix."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BilledLine:
    """One line of what a provider billed for one day (USD)."""

    day: date
    line_item: str
    amount: Decimal
    model: str = ""
    provider_project: str = ""
    currency: str = "USD"


@dataclass(frozen=True)
class UsageLine:
    """Tokens a provider counted for one model on one day (input includes cached tokens)."""

    day: date
    model: str
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    requests: int | None = None
    provider_project: str = ""


@dataclass(frozen=True)
class Credentials:
    """A provider admin (or management) key, and the xAI team it belongs to."""

    admin_key: str
    team_id: str | None = None


class BillingClient(Protocol):
    provider: str
    source: str

    def costs(self, credentials: Credentials, day: date) -> list[BilledLine]: ...

    def usage(self, credentials: Credentials, day: date) -> list[UsageLine]: ...
