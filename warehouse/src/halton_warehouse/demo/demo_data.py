"""Deterministic demo data: a small team's metered LLM calls, and what the providers billed for them.

One `Demo` is a workspace with paired developers' devices, projects in cost centers, budgets, the price card
the meter priced with, the requests themselves, and the providers' side of the story (daily billed lines and
one pasted monthly statement per month for Gemini, which has no billing API we pull). Everything follows from
`DemoConfig` alone: the same config gives the same rows, byte for byte, however it is consumed.

The requests are generated in chunks of columns (numpy), so 10M rows stream in bounded memory; a chunk turns
into `RequestRow`s for the API path (`halton-cloud demo` sends them through `POST /v1/requests/batch`) or into
an Arrow table for a direct warehouse load (tests, benchmarks).

What the data holds, on purpose:
- four providers and eleven models with per-project token mixes, streaming shares and cache use (Anthropic
  reads and 5-minute/1-hour writes, OpenAI/Gemini/xAI automatic caching), reasoning tokens, some calls over
  Gemini's 200k-token tier, errors (429/5xx/400) and a few interrupted streams with unknown output;
- repeated prompts (the same `prompt_hash` across days) and a few loops (one prompt fired dozens of times
  within seconds by one device);
- a price change mid-period: xAI cuts grok-4 prices by 20% on `price_change_day` (a dated entry in the demo's
  price catalogue), the meter picks the cut up `PRICE_CARD_LAG_DAYS` later, so for those days the meter logged
  the old price while xAI billed the new one. That month's xAI reconciliation diverges by more than 2% (red), and re-pricing with the
  current card shows the requests behind it. Every other month and provider differs by a few cents: billed
  lines are rounded to hundredths of a cent, a few carry a cent of jitter, and interrupted streams (billed,
  but logged without a cost) add a little.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np

from halton_meter.catalogue import Catalogue, packaged_text, parse_catalogue
from halton_meter.catalogue.rate_rows import RateRow, model_rows
from halton_meter.protocol import RequestRow

DEMO_NAMESPACE = uuid.UUID("5d3f6a52-7c1e-4f0b-9d8e-6b1a2c3d4e5f")
PRICE_CARD_LAG_DAYS = 9
PRICE_CUT = Decimal("0.8")
NANO = 10**9
# Costs are exact integers in 1e-15 USD (tokens x nano-USD per million tokens) until rounded, half up, to
# nano-USD: the same arithmetic as the warehouse's re-pricing (`price_tokens` in dbt), so the two agree.
FEMTO_PER_NANO = 10**6


@dataclass(frozen=True)
class DemoConfig:
    """What decides the demo data: the same config always gives the same rows."""

    seed: int = 7
    requests: int = 200_000
    days: int = 90
    # The period ends here (exclusive); defaults to the start of the current UTC hour.
    until: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    )
    chunk_size: int = 50_000
    # Benchmarks at 10-100M rows: the warehouse holds the generated requests this many times over, each copy
    # with its own request uids and prompts (`demo_warehouse.replicate_requests`), and the providers bill
    # every copy. Generating 100M rows in Python would take hours; copying them inside the warehouse, minutes.
    copies: int = 1

    def __post_init__(self) -> None:
        if self.requests < 1 or self.days < 14 or self.chunk_size < 1:
            raise ValueError("a demo needs at least 1 request, 14 days and a chunk size of at least 1")
        if self.copies < 1:
            raise ValueError(f"DemoConfig.copies must be at least 1, not {self.copies}")
        if self.until.tzinfo is None:
            raise ValueError("DemoConfig.until must carry a timezone (UTC)")

    @property
    def since(self) -> datetime:
        return self.until - timedelta(days=self.days)


# --- the catalogue ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoModel:
    key: str
    provider: str
    served: str
    endpoint: str
    stream_endpoint: str
    reasoning_share: float  # share of calls that reason
    tokens_per_second: float


MODELS: tuple[DemoModel, ...] = (
    DemoModel(
        "claude-sonnet-4-5",
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "/v1/messages",
        "/v1/messages",
        0.2,
        70,
    ),
    DemoModel(
        "claude-haiku-4-5", "anthropic", "claude-haiku-4-5-20251001", "/v1/messages", "/v1/messages", 0.0, 150
    ),
    DemoModel(
        "claude-opus-4-1", "anthropic", "claude-opus-4-1-20250805", "/v1/messages", "/v1/messages", 0.5, 40
    ),
    DemoModel("gpt-5", "openai", "gpt-5-2025-08-07", "/v1/responses", "/v1/responses", 1.0, 60),
    DemoModel(
        "gpt-5-mini",
        "openai",
        "gpt-5-mini-2025-08-07",
        "/v1/chat/completions",
        "/v1/chat/completions",
        1.0,
        120,
    ),
    DemoModel(
        "gpt-4.1", "openai", "gpt-4.1-2025-04-14", "/v1/chat/completions", "/v1/chat/completions", 0.0, 90
    ),
    DemoModel(
        "gpt-4o-mini",
        "openai",
        "gpt-4o-mini-2024-07-18",
        "/v1/chat/completions",
        "/v1/chat/completions",
        0.0,
        140,
    ),
    DemoModel(
        "gemini-2.5-pro",
        "gemini",
        "gemini-2.5-pro",
        "/v1beta/models/gemini-2.5-pro:generateContent",
        "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
        0.9,
        80,
    ),
    DemoModel(
        "gemini-2.5-flash",
        "gemini",
        "gemini-2.5-flash",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        0.4,
        200,
    ),
    DemoModel("grok-4", "xai", "grok-4-0709", "/v1/chat/completions", "/v1/chat/completions", 1.0, 50),
    DemoModel(
        "grok-code-fast-1",
        "xai",
        "grok-code-fast-1",
        "/v1/chat/completions",
        "/v1/chat/completions",
        0.6,
        160,
    ),
)
MODEL_INDEX = {m.key: i for i, m in enumerate(MODELS)}
PROVIDERS: tuple[str, ...] = ("anthropic", "openai", "gemini", "xai")
PRICE_CHANGE_MODEL = "grok-4"


@dataclass(frozen=True)
class ProjectProfile:
    """How one project calls models: which ones, how big its prompts and answers are, how it caches."""

    models: dict[str, float]
    stream_share: float
    input_median: float
    input_sigma: float
    output_median: float
    output_sigma: float
    cache_hit_share: float
    cache_write_share: float = 0.0
    write_1h: bool = False
    repeated_share: float = 0.12
    input_cap: int = 400_000


@dataclass(frozen=True)
class ProjectSpec:
    slug: str
    name: str
    cost_center: str | None
    hourly_rate: Decimal | None
    profile: ProjectProfile


COST_CENTERS: tuple[str, ...] = ("Client Work", "R&D", "Internal Tools")

PROJECTS: tuple[ProjectSpec, ...] = (
    ProjectSpec(
        "acme-batch-summariser",
        "Acme batch summariser",
        "Client Work",
        Decimal("145.00"),
        ProjectProfile(
            {"claude-sonnet-4-5": 0.85, "claude-haiku-4-5": 0.15}, 0.05, 4000, 0.5, 360, 0.45, 0.55, 0.12
        ),
    ),
    ProjectSpec(
        "client-portal-chat",
        "Client portal chat",
        "Client Work",
        Decimal("145.00"),
        ProjectProfile(
            {"gpt-5-mini": 0.6, "gpt-4o-mini": 0.25, "gpt-5": 0.15}, 0.85, 2600, 0.7, 380, 0.6, 0.5
        ),
    ),
    ProjectSpec(
        "support-triage",
        "Support triage",
        "Client Work",
        Decimal("120.00"),
        ProjectProfile({"gemini-2.5-flash": 0.7, "gpt-4.1": 0.3}, 0.3, 1800, 0.6, 160, 0.5, 0.3),
    ),
    ProjectSpec(
        "research-agents",
        "Research agents",
        "R&D",
        None,
        ProjectProfile(
            {"gemini-2.5-pro": 0.4, "claude-sonnet-4-5": 0.36, "claude-opus-4-1": 0.04, "gpt-5": 0.2},
            0.6,
            22000,
            0.9,
            1100,
            0.7,
            0.6,
            0.2,
            write_1h=True,
            repeated_share=0.05,
        ),
    ),
    ProjectSpec(
        "eval-harness",
        "Eval harness",
        "R&D",
        None,
        ProjectProfile(
            {"gpt-5-mini": 0.4, "claude-haiku-4-5": 0.3, "grok-4": 0.3},
            0.0,
            3000,
            0.4,
            600,
            0.5,
            0.2,
            repeated_share=0.3,
        ),
    ),
    ProjectSpec(
        "code-review-bot",
        "Code review bot",
        "Internal Tools",
        None,
        ProjectProfile(
            {"grok-4": 0.55, "grok-code-fast-1": 0.25, "claude-sonnet-4-5": 0.2},
            0.7,
            14000,
            0.6,
            900,
            0.5,
            0.5,
            0.1,
        ),
    ),
    ProjectSpec(
        "docs-search",
        "Docs search",
        "Internal Tools",
        None,
        ProjectProfile({"gpt-4o-mini": 0.5, "gemini-2.5-flash": 0.5}, 0.5, 3500, 0.5, 250, 0.5, 0.4),
    ),
    ProjectSpec(
        "default",
        "Unattributed",
        None,
        None,
        ProjectProfile(
            {"gpt-4o-mini": 0.4, "claude-haiku-4-5": 0.3, "gpt-5-mini": 0.3}, 0.5, 1200, 0.8, 300, 0.7, 0.2
        ),
    ),
)
PROJECT_INDEX = {p.slug: i for i, p in enumerate(PROJECTS)}


@dataclass(frozen=True)
class MemberSpec:
    name: str
    email: str
    role: str


MEMBERS: tuple[MemberSpec, ...] = (
    MemberSpec("Ada Okafor", "ada@acme.example", "owner"),
    MemberSpec("Bram de Vries", "bram@acme.example", "admin"),
    MemberSpec("Chen Wei", "chen@acme.example", "member"),
    MemberSpec("Dana Ruiz", "dana@acme.example", "member"),
    MemberSpec("Emeka Obi", "emeka@acme.example", "member"),
    MemberSpec("Farah Haddad", "farah@acme.example", "member"),
    MemberSpec("Gus Lindqvist", "gus@acme.example", "member"),
    MemberSpec("Hana Sato", "hana@acme.example", "viewer"),
)


@dataclass(frozen=True)
class DeviceSpec:
    machine: str
    hostname: str
    name: str
    owner: int  # index into MEMBERS of who paired it
    activity: float
    projects: dict[str, float]
    status: str = "active"


DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        "m-ada-mbp", "ada-mbp.local", "Ada's MacBook Pro", 0, 0.6, {"client-portal-chat": 0.5, "default": 0.5}
    ),
    DeviceSpec(
        "m-bram-mbp",
        "bram-mbp.local",
        "Bram's MacBook Pro",
        1,
        0.8,
        {"acme-batch-summariser": 0.5, "docs-search": 0.3, "default": 0.2},
    ),
    DeviceSpec(
        "m-ci-runner-1",
        "ci-runner-1",
        "CI runner 1",
        1,
        1.6,
        {"acme-batch-summariser": 0.6, "eval-harness": 0.4},
    ),
    DeviceSpec(
        "m-chen-mbp",
        "chen-mbp.local",
        "Chen's MacBook Pro",
        2,
        1.2,
        {"research-agents": 0.7, "eval-harness": 0.3},
    ),
    DeviceSpec("m-chen-ws", "chen-ws", "Chen's GPU workstation", 2, 0.7, {"research-agents": 1.0}),
    DeviceSpec(
        "m-dana-mbp",
        "dana-mbp.local",
        "Dana's MacBook Pro",
        3,
        1.0,
        {"client-portal-chat": 0.6, "support-triage": 0.4},
    ),
    DeviceSpec("m-emeka-xps", "emeka-xps", "Emeka's XPS", 4, 1.0, {"code-review-bot": 0.7, "default": 0.3}),
    DeviceSpec(
        "m-farah-mbp",
        "farah-mbp.local",
        "Farah's MacBook Pro",
        5,
        0.9,
        {"support-triage": 0.5, "docs-search": 0.5},
    ),
    DeviceSpec(
        "m-gus-mba", "gus-mba.local", "Gus's MacBook Air", 6, 0.5, {"code-review-bot": 0.4, "default": 0.6}
    ),
    DeviceSpec("m-old-laptop", "old-laptop", "Retired laptop", 3, 0.1, {"default": 1.0}, status="removed"),
)


# --- the entities --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    workspace_id: uuid.UUID
    slug: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    email: str
    name: str
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class Device:
    device_id: uuid.UUID
    machine_id: str
    hostname: str
    name: str
    paired_by: uuid.UUID
    paired_at: datetime
    status: str


@dataclass(frozen=True)
class CostCenter:
    cost_center_id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Project:
    project_id: uuid.UUID
    slug: str
    name: str
    archived: bool
    hourly_rate: Decimal | None
    cost_center_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class Budget:
    budget_id: uuid.UUID
    project_id: uuid.UUID | None
    monthly_amount: Decimal
    currency: str
    updated_at: datetime


@dataclass(frozen=True)
class BilledLine:
    """One provider billing line: what `provider` billed for `model` on `day` (USD)."""

    provider: str
    day: date
    model: str
    amount: Decimal
    source: str = "demo"


@dataclass(frozen=True)
class Statement:
    """A monthly statement total a person pasted in the dashboard."""

    provider: str
    period: date
    amount: Decimal
    note: str
    entered_at: datetime


@dataclass(frozen=True)
class DemoRequest:
    """One request as a paired device sends it: the device that sends it, and the row."""

    device_id: uuid.UUID
    row: RequestRow


# --- prices -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Price:
    """One price period in nano-USD per million tokens (exact integers)."""

    valid_from_ms: int
    input: int
    output: int
    cache_read: int
    cache_write: int
    cache_write_1h: int
    threshold: int  # 0: no tier
    input_above: int
    output_above: int
    cache_read_above: int
    cache_write_above: int
    cache_write_1h_above: int


def _nano(value: Decimal) -> int:
    amount = value * NANO
    if amount != amount.to_integral_value():
        raise ValueError(f"price {value} has more than 9 decimal places")
    return int(amount)


def _price(row: RateRow, valid_from_ms: int | None = None) -> _Price:
    """A standard rate row (at most one size tier) as exact nano-USD integers."""
    if len(row.tier_aboves) > 2:
        raise ValueError(
            f"{row.provider}/{row.model} has {len(row.tier_aboves) - 1} size tiers; the demo prices one"
        )
    top = len(row.tier_aboves) - 1
    output = [value if value is not None else Decimal(0) for value in row.output]
    return _Price(
        valid_from_ms=valid_from_ms
        if valid_from_ms is not None
        else int(datetime.combine(row.valid_from, datetime.min.time(), UTC).timestamp() * 1000),
        input=_nano(row.input[0]),
        output=_nano(output[0]),
        cache_read=_nano(row.cache_read[0]),
        cache_write=_nano(row.cache_write_5m[0]),
        cache_write_1h=_nano(row.cache_write_1h[0]),
        threshold=row.tier_aboves[top] if top else 0,
        input_above=_nano(row.input[top]),
        output_above=_nano(output[top]),
        cache_read_above=_nano(row.cache_read[top]),
        cache_write_above=_nano(row.cache_write_5m[top]),
        cache_write_1h_above=_nano(row.cache_write_1h[top]),
    )


def _standard_rows(catalogue: Catalogue, provider: str, served: str) -> list[RateRow]:
    """The standard rate rows of the catalogue model that prices `served` (as the meter resolves it)."""
    entry = catalogue.find(provider, served)
    if entry is None:
        raise ValueError(f"a demo model has no price in the catalogue: {provider}/{served}")
    return [row for row in model_rows(entry, 0, catalogue.version) if row.mode == "standard"]


# --- the demo -----------------------------------------------------------------------------------------


class Demo:
    """The demo workspace and everything in it, for one `DemoConfig`."""

    def __init__(self, config: DemoConfig | None = None) -> None:
        self.config = config or DemoConfig()

    def _id(self, kind: str, key: str) -> uuid.UUID:
        return uuid.uuid5(DEMO_NAMESPACE, f"{self.config.seed}/{kind}/{key}")

    # entities

    @cached_property
    def workspace(self) -> Workspace:
        return Workspace(
            self._id("workspace", "acme"),
            "acme-demo",
            "Acme Analytics (demo)",
            self.config.since - timedelta(days=30),
        )

    @cached_property
    def members(self) -> list[Member]:
        start = self.workspace.created_at
        return [
            Member(self._id("user", m.email), m.email, m.name, m.role, start + timedelta(days=i))
            for i, m in enumerate(MEMBERS)
        ]

    @cached_property
    def devices(self) -> list[Device]:
        start = self.workspace.created_at
        return [
            Device(
                self._id("device", d.machine),
                d.machine,
                d.hostname,
                d.name,
                self.members[d.owner].user_id,
                start + timedelta(days=2 + i),
                d.status,
            )
            for i, d in enumerate(DEVICES)
        ]

    @cached_property
    def cost_centers(self) -> list[CostCenter]:
        return [CostCenter(self._id("cost_center", n), n, self.workspace.created_at) for n in COST_CENTERS]

    @cached_property
    def projects(self) -> list[Project]:
        centers = {c.name: c.cost_center_id for c in self.cost_centers}
        return [
            Project(
                self._id("project", p.slug),
                p.slug,
                p.name,
                False,
                p.hourly_rate,
                centers[p.cost_center] if p.cost_center else None,
                self.workspace.created_at + timedelta(days=1),
            )
            for p in PROJECTS
        ]

    @cached_property
    def budgets(self) -> list[Budget]:
        # Sized from the request count: about 2.7 cents a request on average in this mix. Research agents
        # run a little over their budget in the later, busier months.
        monthly = Decimal(self.config.requests) / self.config.days * 30 * Decimal("0.027")
        workspace_budget = (monthly * Decimal("1.1")).quantize(Decimal(100)) or Decimal(100)
        research = next(p for p in self.projects if p.slug == "research-agents")
        research_budget = (monthly * Decimal("0.55")).quantize(Decimal(10)) or Decimal(10)
        at = self.workspace.created_at + timedelta(days=3)
        return [
            Budget(self._id("budget", "workspace"), None, workspace_budget, "USD", at),
            Budget(self._id("budget", research.slug), research.project_id, research_budget, "USD", at),
        ]

    # prices

    @cached_property
    def price_change_day(self) -> date:
        """The day xAI cut grok-4 prices: the 10th of the month around the middle of the period."""
        middle = (self.config.since + timedelta(days=self.config.days / 2)).date()
        day = middle.replace(day=10)
        if day <= self.config.since.date() + timedelta(days=1):
            day = middle
        return day

    @cached_property
    def price_card_pickup_day(self) -> date:
        return self.price_change_day + timedelta(days=PRICE_CARD_LAG_DAYS)

    @cached_property
    def packaged_catalogue_document(self) -> dict[str, Any]:
        """The catalogue packaged with the meter, as the demo's meter priced with it before the cut."""
        return json.loads(packaged_text())

    @cached_property
    def catalogue_document(self) -> dict[str, Any]:
        """The demo's catalogue: the packaged one plus xAI's grok-4 price cut from `price_change_day`."""
        document = copy.deepcopy(self.packaged_catalogue_document)
        grok = MODELS[MODEL_INDEX[PRICE_CHANGE_MODEL]]
        entry = parse_catalogue(document).find(grok.provider, grok.served)
        if entry is None:
            raise ValueError(f"the catalogue has no {grok.provider}/{grok.served} for the demo's price cut")
        model = next(m for m in document["models"] if (m["provider"], m["id"]) == (entry.provider, entry.id))
        model["prices"].append(_cut(model["prices"][-1], self.price_change_day))
        day = self.price_change_day.isoformat()
        document["version"] = f"{document['version']}+demo-{grok.provider}-cut-{day}"
        return document

    @cached_property
    def catalogue(self) -> Catalogue:
        return parse_catalogue(self.catalogue_document)

    @cached_property
    def card_labels(self) -> tuple[str, str]:
        """The meter's price card before and after it picked up the cut (the catalogue it priced with)."""
        return (
            f"catalogue {self.packaged_catalogue_document['version']}",
            f"catalogue {self.catalogue.version}",
        )

    @cached_property
    def _price_tables(self) -> tuple[list[list[_Price]], list[list[_Price]]]:
        """Per demo model, the price periods the provider bills with, and the ones the meter priced with:
        the catalogue's standard rate rows (``halton_meter.catalogue.rate_rows``, what the meter and the
        warehouse price with) as exact integers for the vectorised arithmetic of `_cost`."""
        provider: list[list[_Price]] = []
        meter: list[list[_Price]] = []
        pickup_ms = int(
            datetime.combine(self.price_card_pickup_day, datetime.min.time(), UTC).timestamp() * 1000
        )
        for m in MODELS:
            rows = _standard_rows(self.catalogue, m.provider, m.served)
            periods = [_price(row) for row in rows]
            provider.append(periods)
            if m.key == PRICE_CHANGE_MODEL:
                # The meter learnt of the cut only at pickup: until then it priced with the old period.
                old, new = periods[-2], periods[-1]
                meter.append([*periods[:-1], _Price(**{**new.__dict__, "valid_from_ms": pickup_ms})])
                assert old.valid_from_ms < pickup_ms
            else:
                meter.append(periods)
        return provider, meter

    # requests

    @cached_property
    def _timeline(self) -> np.ndarray:
        """Cumulative request intensity per minute of the period: busier on weekdays and working hours,
        growing by half over the period."""
        minutes = self.config.days * 24 * 60
        start = self.config.since
        t = np.arange(minutes)
        weekday = (start.weekday() + (t // 1440)) % 7
        hour = (start.hour + t // 60) % 24
        day_factor = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.25, 0.2))
        hour_factor = 0.08 + np.exp(-0.5 * ((hour - 13.0) / 3.2) ** 2)
        trend = 0.8 + 0.4 * t / minutes
        intensity = day_factor * hour_factor * trend
        return np.cumsum(intensity)

    @cached_property
    def _loops(self) -> list[dict[str, Any]]:
        """A few loop incidents: one device firing one prompt dozens of times within seconds."""
        rng = np.random.default_rng([self.config.seed, 991])
        count = min(6 + self.config.requests // 2_000_000, max(1, self.config.requests // 2_000))
        incidents = []
        looping = [
            ("m-ci-runner-1", "eval-harness", "gpt-5-mini"),
            ("m-chen-mbp", "research-agents", "claude-sonnet-4-5"),
            ("m-emeka-xps", "code-review-bot", "grok-code-fast-1"),
            ("m-dana-mbp", "client-portal-chat", "gpt-4o-mini"),
        ]
        for i in range(count):
            machine, project, model = looping[i % len(looping)]
            size = int(rng.integers(25, 121))
            size = min(size, max(2, self.config.requests // (count * 4)))
            start = int(rng.uniform(0.05, 0.95) * (self.config.requests - size))
            incidents.append(
                {
                    "start": start,
                    "size": size,
                    "gap_ms": int(rng.integers(800, 4000)),
                    "anchor_ms": self._time_of(start),
                    "device": next(j for j, d in enumerate(DEVICES) if d.machine == machine),
                    "project": PROJECT_INDEX[project],
                    "model": MODEL_INDEX[model],
                    "hash": hashlib.sha256(f"{self.config.seed}/loop/{i}".encode()).hexdigest(),
                }
            )
        return incidents

    def _time_of(self, index: int) -> int:
        """Epoch milliseconds of request `index` without jitter: where loops anchor, whatever the chunking."""
        timeline = self._timeline
        minute = int(np.searchsorted(timeline, (index + 0.5) / self.config.requests * timeline[-1]))
        return int(self.config.since.timestamp() * 1000) + minute * 60_000

    def chunks(self) -> Iterator[RequestChunk]:
        """Every request, in chunks of `config.chunk_size` columns, in time order."""
        n, size = self.config.requests, self.config.chunk_size
        for index, start in enumerate(range(0, n, size)):
            yield self._chunk(index, start, min(size, n - start))

    def requests(self, *, validate: bool = True) -> Iterator[DemoRequest]:
        """Every request as the device that sends it would: a `RequestRow` and its device id."""
        for chunk in self.chunks():
            yield from chunk.requests(self, validate=validate)

    def _chunk(self, index: int, start: int, n: int) -> RequestChunk:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index, 17])
        idx = np.arange(start, start + n, dtype=np.int64)

        # When: the inverse of the cumulative intensity at evenly spaced quantiles, jittered within a slot.
        timeline = self._timeline
        target = (idx + rng.random(n)) / cfg.requests * timeline[-1]
        minute = np.searchsorted(timeline, target)
        previous = np.where(minute > 0, timeline[np.maximum(minute - 1, 0)], 0.0)
        within = (target - previous) / np.maximum(timeline[minute] - previous, 1e-12)
        since_ms = int(cfg.since.timestamp() * 1000)
        started = since_ms + (minute * 60_000 + np.clip(within, 0, 0.999) * 60_000).astype(np.int64)

        # Who and what: a device by activity, a project by the device's habits, a model by the project's mix.
        activity = np.array([d.activity for d in DEVICES])
        device = _pick(rng, activity / activity.sum(), n)
        device_projects = np.array([[d.projects.get(p.slug, 0.0) for p in PROJECTS] for d in DEVICES])
        device_projects /= device_projects.sum(axis=1, keepdims=True)
        project = _pick_rows(rng, device_projects[device])
        project_models = np.array([[p.profile.models.get(m.key, 0.0) for m in MODELS] for p in PROJECTS])
        project_models /= project_models.sum(axis=1, keepdims=True)
        model = _pick_rows(rng, project_models[project])

        # The retired laptop stops sending after the first third of the period.
        retired = DEVICES.index(next(d for d in DEVICES if d.status == "removed"))
        cutoff = since_ms + int(cfg.days * 86_400_000 / 3)
        late = (device == retired) & (started > cutoff)
        device = np.where(late, DEVICES.index(DEVICES[0]), device)

        # Loops override a few consecutive requests: same device, project, model and prompt, seconds apart.
        loop_hash = np.full(n, "", dtype=object)
        for incident in self._loops:
            lo, hi = max(incident["start"], start), min(incident["start"] + incident["size"], start + n)
            if lo >= hi:
                continue
            sel = slice(lo - start, hi - start)
            device[sel] = incident["device"]
            project[sel] = incident["project"]
            model[sel] = incident["model"]
            started[sel] = (
                incident["anchor_ms"] + (np.arange(lo, hi) - incident["start"]) * incident["gap_ms"]
            )
            loop_hash[sel] = incident["hash"]
        looped = loop_hash != ""

        def per_project(name: str) -> np.ndarray:
            return np.array([getattr(p.profile, name) for p in PROJECTS])[project]

        streamed = rng.random(n) < per_project("stream_share")
        streamed &= ~looped

        # Tokens: log-normal prompts and answers per project; reasoning is part of output.
        input_tokens = np.exp(
            np.log(per_project("input_median")) + per_project("input_sigma") * rng.standard_normal(n)
        )
        input_tokens = np.clip(input_tokens, 40, per_project("input_cap")).astype(np.int64)
        visible = np.exp(
            np.log(per_project("output_median")) + per_project("output_sigma") * rng.standard_normal(n)
        )
        visible = np.clip(visible, 1, 16_000).astype(np.int64)
        reasoning_share = np.array([m.reasoning_share for m in MODELS])[model]
        reasons = rng.random(n) < reasoning_share
        reasoning = np.where(reasons, (visible * rng.uniform(0.4, 2.5, n)).astype(np.int64), 0)
        output_tokens = visible + reasoning

        # Caching, per provider's rules.
        provider_of = np.array([PROVIDERS.index(m.provider) for m in MODELS])[model]
        hit = rng.random(n) < per_project("cache_hit_share")
        read_fraction = rng.uniform(0.45, 0.95, n)
        cache_read = np.zeros(n, dtype=np.int64)
        cache_write = np.zeros(n, dtype=np.int64)
        cache_write_1h = np.zeros(n, dtype=np.int64)
        anthropic = provider_of == PROVIDERS.index("anthropic")
        openai_like = (provider_of == PROVIDERS.index("openai")) | (provider_of == PROVIDERS.index("xai"))
        gemini = provider_of == PROVIDERS.index("gemini")
        cache_read = np.where(anthropic & hit, (input_tokens * read_fraction).astype(np.int64), cache_read)
        # OpenAI and xAI cache whole 128-token blocks of prompts of 1024 tokens and more.
        blocks = ((input_tokens * read_fraction).astype(np.int64) // 128) * 128
        cache_read = np.where(openai_like & hit & (input_tokens >= 1024), blocks, cache_read)
        cache_read = np.where(
            gemini & hit & (input_tokens >= 2048),
            (input_tokens * read_fraction * 0.8).astype(np.int64),
            cache_read,
        )
        writes = anthropic & (rng.random(n) < per_project("cache_write_share"))
        written = ((input_tokens - cache_read) * rng.uniform(0.3, 0.9, n)).astype(np.int64)
        one_hour = per_project("write_1h").astype(bool)
        cache_write = np.where(writes & ~one_hour, written, 0)
        cache_write_1h = np.where(writes & one_hour, written, 0)

        # Outcome: most calls succeed; errors carry no usage; a few streams are cut off before usage arrives.
        roll = rng.random(n)
        status = np.full(n, 200, dtype=np.int64)
        status = np.where(roll < 0.008, 429, status)
        status = np.where((roll >= 0.008) & (roll < 0.010), 500, status)
        status = np.where((roll >= 0.010) & (roll < 0.012) & anthropic, 529, status)
        status = np.where((roll >= 0.012) & (roll < 0.013), 400, status)
        status = np.where(looped, 200, status)
        ok = status == 200
        interrupted = ok & streamed & (rng.random(n) < 0.0002)

        # Prompt identity: mostly unique, some from each project's pool of recurring prompts, loops fixed.
        hex_block = rng.bytes(n * 32).hex()
        hashes = np.array([hex_block[i * 64 : (i + 1) * 64] for i in range(n)], dtype=object)
        repeated = (rng.random(n) < per_project("repeated_share")) & ~looped
        pool_rank = np.minimum((rng.pareto(1.2, n)).astype(np.int64), 149)
        pool = np.array(
            [
                hashlib.sha256(f"{cfg.seed}/pool/{p.slug}/{r}".encode()).hexdigest()
                for p in PROJECTS
                for r in range(150)
            ],
            dtype=object,
        )
        hashes = np.where(repeated, pool[project * 150 + pool_rank], hashes)
        hashes = np.where(looped, loop_hash, hashes)

        uid_bytes = np.frombuffer(rng.bytes(n * 16), dtype=np.uint8).reshape(n, 16).copy()
        uid_bytes[:, 6] = (uid_bytes[:, 6] & 0x0F) | 0x40
        uid_bytes[:, 8] = (uid_bytes[:, 8] & 0x3F) | 0x80

        # Timing: first byte after a few hundred milliseconds, then the answer at the model's speed.
        tps = np.array([m.tokens_per_second for m in MODELS])[model]
        ttfb = np.clip(rng.lognormal(np.log(650), 0.4, n), 120, 20_000).astype(np.int64)
        latency = ttfb + (output_tokens / tps * 1000).astype(np.int64)
        latency = np.where(ok, latency, ttfb)
        ttfb = np.where(streamed, ttfb, latency)

        # Costs: what the provider bills (true usage, current prices) and what the meter logged (its card,
        # known usage only).
        provider_prices, meter_prices = self._price_tables
        true_cost = _cost(
            provider_prices,
            model,
            started,
            input_tokens,
            output_tokens,
            cache_read,
            cache_write,
            cache_write_1h,
        )
        logged = _cost(
            meter_prices, model, started, input_tokens, output_tokens, cache_read, cache_write, cache_write_1h
        )
        true_cost = np.where(ok, true_cost, 0)
        logged = np.where(ok, logged, 0)
        logged = np.where(interrupted, -1, logged)
        pickup_ms = int(
            datetime.combine(self.price_card_pickup_day, datetime.min.time(), UTC).timestamp() * 1000
        )
        card = (started >= pickup_ms).astype(np.int64)

        attribution = np.where(
            project == PROJECT_INDEX["default"], 3, _pick(rng, np.array([0.72, 0.16, 0.12]), n)
        )
        return RequestChunk(
            index=idx,
            started_ms=started,
            latency_ms=latency,
            ttfb_ms=ttfb,
            device=device,
            project=project,
            model=model,
            streamed=streamed,
            status=status,
            complete=~interrupted,
            input_tokens=np.where(ok, input_tokens, -1),
            output_tokens=np.where(ok & ~interrupted, output_tokens, -1),
            cache_read=np.where(ok, cache_read, -1),
            cache_write=np.where(ok, cache_write, -1),
            cache_write_1h=np.where(ok, cache_write_1h, -1),
            reasoning=np.where(ok & ~interrupted, reasoning, -1),
            logged_nano=logged,
            true_nano=true_cost,
            card=card,
            prompt_hash=hashes,
            uid_bytes=uid_bytes,
            attribution=attribution,
        )

    # the providers' side

    def billing(self) -> Billing:
        """What the providers billed, from one pass over every request chunk."""
        billing = Billing(self)
        for chunk in self.chunks():
            billing.add(chunk)
        return billing


@dataclass
class RequestChunk:
    """A chunk of requests as columns; -1 in a token or cost column means unknown (None)."""

    index: np.ndarray
    started_ms: np.ndarray
    latency_ms: np.ndarray
    ttfb_ms: np.ndarray
    device: np.ndarray
    project: np.ndarray
    model: np.ndarray
    streamed: np.ndarray
    status: np.ndarray
    complete: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    cache_read: np.ndarray
    cache_write: np.ndarray
    cache_write_1h: np.ndarray
    reasoning: np.ndarray
    logged_nano: np.ndarray
    true_nano: np.ndarray
    card: np.ndarray
    prompt_hash: np.ndarray
    uid_bytes: np.ndarray
    attribution: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def request_uids(self) -> list[str]:
        h = self.uid_bytes.tobytes().hex()
        return [
            f"{h[o : o + 8]}-{h[o + 8 : o + 12]}-{h[o + 12 : o + 16]}-{h[o + 16 : o + 20]}-{h[o + 20 : o + 32]}"
            for o in range(0, len(h), 32)
        ]

    def requests(self, demo: Demo, *, validate: bool = True) -> Iterator[DemoRequest]:
        devices = demo.devices
        labels = demo.card_labels
        tiers = ("header", "api_key", "directory", "default")
        make = RequestRow if validate else RequestRow.model_construct
        uids = self.request_uids()
        for i in range(len(self)):
            m = MODELS[int(self.model[i])]
            started = datetime.fromtimestamp(int(self.started_ms[i]) / 1000, UTC)
            status = int(self.status[i])
            logged = int(self.logged_nano[i])
            row = make(
                request_uid=uuid.UUID(uids[i]),
                machine_id=devices[int(self.device[i])].machine_id,
                started_at=started,
                ended_at=started + timedelta(milliseconds=int(self.latency_ms[i])),
                provider=m.provider,
                model_requested=m.key,
                model_served=m.served if status == 200 else None,
                endpoint=m.stream_endpoint if self.streamed[i] else m.endpoint,
                status_code=status,
                streamed=bool(self.streamed[i]),
                complete=bool(self.complete[i]),
                input_tokens=_opt(self.input_tokens[i]),
                output_tokens=_opt(self.output_tokens[i]),
                cache_read_tokens=_opt(self.cache_read[i]),
                cache_write_tokens=_opt(self.cache_write[i]),
                cache_write_1h_tokens=_opt(self.cache_write_1h[i]),
                reasoning_tokens=_opt(self.reasoning[i]),
                cost_usd=None if logged < 0 else Decimal(logged).scaleb(-9),
                price_card=labels[int(self.card[i])],
                project=PROJECTS[int(self.project[i])].slug,
                attribution_tier=tiers[int(self.attribution[i])],
                prompt_hash=self.prompt_hash[i],
                provider_request_id=_provider_request_id(m.provider, uids[i]) if status == 200 else None,
                latency_ms=int(self.latency_ms[i]),
                ttfb_ms=int(self.ttfb_ms[i]),
            )
            yield DemoRequest(devices[int(self.device[i])].device_id, row)

    def to_arrow(self, demo: Demo, *, batch_id: uuid.UUID | None = None, arrived_now: bool = False) -> Any:
        """The chunk as an Arrow table with `raw.requests` columns.

        `ingested_at` is when the meter's sync would have delivered each row (20 s to 2 minutes after the call
        ended), so a loaded history looks as if it arrived over time; `arrived_now=True` leaves it to the
        table's default (now), as for a batch the API takes this instant."""
        import pyarrow as pa

        devices = demo.devices
        n = len(self)
        uids = self.request_uids()
        models = MODELS
        model_of = self.model
        ok = self.status == 200
        labels = demo.card_labels
        tiers = np.array(["header", "api_key", "directory", "default"], dtype=object)
        batch = str(batch_id or uuid.uuid5(DEMO_NAMESPACE, f"{demo.config.seed}/batch/{int(self.index[0])}"))
        served = np.array([m.served for m in models], dtype=object)[model_of]
        columns = {
            "workspace_id": pa.array([str(demo.workspace.workspace_id)] * n),
            "device_id": pa.array(
                np.array([str(d.device_id) for d in devices], dtype=object)[self.device].tolist()
            ),
            "request_uid": pa.array(uids),
            "machine_id": pa.array(
                np.array([d.machine_id for d in devices], dtype=object)[self.device].tolist()
            ),
            "batch_id": pa.array([batch] * n),
            "started_at": pa.array(self.started_ms, pa.timestamp("ms", tz="UTC")),
            "ended_at": pa.array(self.started_ms + self.latency_ms, pa.timestamp("ms", tz="UTC")),
            "provider": pa.array(np.array([m.provider for m in models], dtype=object)[model_of].tolist()),
            "model_requested": pa.array(np.array([m.key for m in models], dtype=object)[model_of].tolist()),
            "model_served": pa.array(np.where(ok, served, None).tolist(), pa.string()),
            "endpoint": pa.array(
                np.where(
                    self.streamed,
                    np.array([m.stream_endpoint for m in models], dtype=object)[model_of],
                    np.array([m.endpoint for m in models], dtype=object)[model_of],
                ).tolist()
            ),
            "status_code": pa.array(self.status.astype(np.uint16)),
            "streamed": pa.array(self.streamed),
            "complete": pa.array(self.complete),
            "service_tier": pa.nulls(n, pa.string()),
            "batch": pa.array(np.zeros(n, dtype=bool)),
            "input_tokens": _nullable_uint(self.input_tokens),
            "output_tokens": _nullable_uint(self.output_tokens),
            "cache_read_tokens": _nullable_uint(self.cache_read),
            "cache_write_tokens": _nullable_uint(self.cache_write),
            "cache_write_1h_tokens": _nullable_uint(self.cache_write_1h),
            "reasoning_tokens": _nullable_uint(self.reasoning),
            "cost_usd": _decimal_nanos(self.logged_nano),
            "price_card": pa.array(np.array(labels, dtype=object)[self.card].tolist()),
            "project": pa.array(np.array([p.slug for p in PROJECTS], dtype=object)[self.project].tolist()),
            "attribution_tier": pa.array(tiers[self.attribution].tolist()),
            "prompt_hash": pa.array(self.prompt_hash.tolist(), pa.string()),
            "provider_request_id": pa.array(
                [
                    (_provider_request_id(models[int(model_of[i])].provider, uids[i]) if ok[i] else None)
                    for i in range(n)
                ],
                pa.string(),
            ),
            "latency_ms": pa.array(self.latency_ms.astype(np.uint32)),
            "ttfb_ms": pa.array(self.ttfb_ms.astype(np.uint32)),
        }
        if not arrived_now:
            sync_lag_ms = 20_000 + (self.index % 101) * 1_000
            ingested = self.started_ms + self.latency_ms + sync_lag_ms
            columns["ingested_at"] = pa.array(ingested, pa.timestamp("ms", tz="UTC"))
        return pa.table(columns)


class Billing:
    """Accumulates what the providers billed, day by day and model by model, from request chunks."""

    def __init__(self, demo: Demo) -> None:
        self.demo = demo
        self._days = demo.config.days + 1
        self._nanos = np.zeros((self._days, len(MODELS)), dtype=np.int64)
        self._first_day = demo.config.since.date()

    def add(self, chunk: RequestChunk) -> None:
        since_ms = int(datetime.combine(self._first_day, datetime.min.time(), UTC).timestamp() * 1000)
        day = (chunk.started_ms - since_ms) // 86_400_000
        np.add.at(self._nanos, (day, chunk.model), chunk.true_nano * self.demo.config.copies)

    def lines(self) -> list[BilledLine]:
        """Daily billed lines for the providers whose billing API we pull (Anthropic, OpenAI, xAI).

        Each line is the true cost rounded to a hundredth of a cent; about one line in twelve is a cent
        off, as providers' own rounding and late adjustments are.
        """
        rng = np.random.default_rng([self.demo.config.seed, 4242])
        out: list[BilledLine] = []
        for d in range(self._days):
            day = self._first_day + timedelta(days=d)
            for m, model in enumerate(MODELS):
                nanos = int(self._nanos[d, m])
                jitter = int(rng.choice([-1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))
                if nanos == 0 or model.provider == "gemini":
                    continue
                amount = (Decimal(nanos).scaleb(-9)).quantize(Decimal("0.0001")) + Decimal(jitter) / 100
                out.append(BilledLine(model.provider, day, model.served, max(amount, Decimal(0))))
        return out

    def statements(self) -> list[Statement]:
        """Gemini's monthly totals, pasted by hand from the invoice (Gemini has no billing API we pull)."""
        totals: dict[date, int] = {}
        for d in range(self._days):
            day = self._first_day + timedelta(days=d)
            period = day.replace(day=1)
            for m, model in enumerate(MODELS):
                if model.provider == "gemini":
                    totals[period] = totals.get(period, 0) + int(self._nanos[d, m])
        statements = []
        for period, nanos in sorted(totals.items()):
            month_end = (period + timedelta(days=32)).replace(day=1)
            entered = datetime.combine(month_end, datetime.min.time(), UTC) + timedelta(days=5)
            if entered >= self.demo.config.until:
                continue  # the invoice for this month is not out yet
            amount = Decimal(nanos).scaleb(-9).quantize(Decimal("0.01"))
            statements.append(
                Statement("gemini", period, amount, "Google Cloud invoice, Gemini API line", entered)
            )
        return statements


def _cut(entry: dict[str, Any], day: date) -> dict[str, Any]:
    """A dated catalogue price entry: `entry`'s rates and tiers cut by PRICE_CUT from `day`."""

    def scaled(rates: dict[str, str]) -> dict[str, str]:
        return {
            k: format((Decimal(v) * PRICE_CUT).quantize(Decimal("0.000000001")).normalize(), "f")
            for k, v in rates.items()
        }

    cut = {**entry, "from": day.isoformat(), "source": f"demo: xAI cut prices by 20% on {day.isoformat()}"}
    cut["rates"] = scaled(entry["rates"])
    if entry.get("tiers"):
        cut["tiers"] = [{"above": t["above"], "rates": scaled(t["rates"])} for t in entry["tiers"]]
    return cut


def _cost(
    tables: list[list[_Price]],
    model: np.ndarray,
    started_ms: np.ndarray,
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    cache_read: np.ndarray,
    cache_write: np.ndarray,
    cache_write_1h: np.ndarray,
) -> np.ndarray:
    """Cost in nano-USD per request, priced with the period in force at its start (tiers as a cliff)."""
    cost = np.zeros(len(model), dtype=np.int64)
    uncached = input_tokens - cache_read - cache_write - cache_write_1h
    for m, periods in enumerate(tables):
        of_model = model == m
        if not of_model.any():
            continue
        for p, price in enumerate(periods):
            until = periods[p + 1].valid_from_ms if p + 1 < len(periods) else math.inf
            sel = of_model & (started_ms >= price.valid_from_ms) & (started_ms < until)
            if not sel.any():
                continue
            above = (input_tokens > price.threshold) if price.threshold else np.zeros(len(model), dtype=bool)
            femto = (
                uncached * np.where(above, price.input_above, price.input)
                + cache_read * np.where(above, price.cache_read_above, price.cache_read)
                + cache_write * np.where(above, price.cache_write_above, price.cache_write)
                + cache_write_1h * np.where(above, price.cache_write_1h_above, price.cache_write_1h)
                + output_tokens * np.where(above, price.output_above, price.output)
            )
            # Half up to nano-USD, as the warehouse rounds.
            cost = np.where(sel, (femto + FEMTO_PER_NANO // 2) // FEMTO_PER_NANO, cost)
    return cost


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    return np.searchsorted(np.cumsum(weights), rng.random(n) * weights.sum(), side="right").clip(
        0, len(weights) - 1
    )


def _pick_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random(len(weights))[:, None] * cumulative[:, -1:]
    return (cumulative <= draws).sum(axis=1).clip(0, weights.shape[1] - 1)


def _opt(value: Any) -> int | None:
    value = int(value)
    return None if value < 0 else value


def _provider_request_id(provider: str, uid: str) -> str:
    compact = uid.replace("-", "")
    return {
        "anthropic": f"msg_01{compact[:22]}",
        "openai": f"chatcmpl-{compact[:29]}",
        "gemini": compact[:22],
        "xai": uid,
    }[provider]


def _nullable_uint(values: np.ndarray) -> Any:
    import pyarrow as pa

    return pa.array(np.where(values < 0, 0, values).astype(np.uint64), pa.uint64(), mask=values < 0)


def _decimal_nanos(nanos: np.ndarray) -> Any:
    """Nano-USD integers as an Arrow decimal128(18, 9) column (negative: unknown, null)."""
    import pyarrow as pa

    n = len(nanos)
    words = np.zeros((n, 2), dtype=np.int64)
    words[:, 0] = np.where(nanos < 0, 0, nanos)
    mask = nanos < 0
    validity = pa.array(~mask).buffers()[1] if mask.any() else None
    return pa.Array.from_buffers(
        pa.decimal128(18, 9), n, [validity, pa.py_buffer(words.tobytes())], null_count=int(mask.sum())
    )
