"""Shapes the API receives (`…Create`, `…Update`) and returns (`…Public`).

What we store (hashes of tokens, password hashes) never appears here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from halton_api.roles import Role


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("cannot contain a NUL character (PostgreSQL text cannot hold one)")
    return text


# Free text a request stores in PostgreSQL: a NUL is refused as a 422 naming the field, not a 500 from the store.
StoredText = Annotated[str, AfterValidator(_no_nul)]

DeviceStatus = Literal["active", "removed", "revoked"]
# A meter's sync states as `halton-meter cloud status` names them (spec: connect-your-meter.txt).
MeterState = Literal["ACTIVE", "DEGRADED", "PAUSED", "NOT-CONFIGURED"]
PausedReason = Literal["paused_manual", "paused_unauthorised", "paused_forbidden"]
# Deliberately loose: the invitation link is the real proof of the address.
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserPublic(_Public):
    id: UUID
    email: str
    name: str


class WorkspacePublic(_Public):
    id: UUID
    slug: str
    name: str


class MembershipPublic(_Public):
    workspace: WorkspacePublic
    role: Role


class MemberPublic(_Public):
    user_id: UUID
    email: str
    name: str
    role: Role
    joined_at: datetime


class InvitationCreate(BaseModel):
    email: Email
    role: Role = "member"


class InvitationPublic(_Public):
    id: UUID
    email: str
    role: Role
    token_prefix: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None
    invited_by_email: str | None

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.accepted_at:
            return "accepted"
        if self.expires_at <= datetime.now(self.expires_at.tzinfo):
            return "expired"
        return "pending"


class InvitationCreated(InvitationPublic):
    """Returned once, when the invitation is made: the link carries the only copy of its token."""

    link: str


class DevicePublic(_Public):
    id: UUID
    workspace_id: UUID
    machine_id: str
    hostname: str
    name: str
    paired_by_email: str | None
    paired_at: datetime
    last_sync_at: datetime | None
    status: DeviceStatus
    status_changed_at: datetime
    token_prefix: str
    # The meter's last report about its sync (migration 0011); None: it never reported.
    reported_state: MeterState | None = None
    reported_paused_reason: PausedReason | None = None
    reported_unsynced_rows: int | None = None
    reported_meter_version: str | None = None
    reported_at: datetime | None = None

    @property
    def display_name(self) -> str:
        return self.name or self.hostname or self.machine_id


class DeviceCreated(BaseModel):
    """A new device and its sync token: the token is shown this once and stored only as a hash."""

    device: DevicePublic
    token: str


class ApiKeyPublic(_Public):
    id: UUID
    name: str
    key_prefix: str
    created_at: datetime
    created_by_email: str | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(BaseModel):
    api_key: ApiKeyPublic
    key: str


class CostCenterPublic(_Public):
    id: UUID
    name: str
    created_at: datetime


class ProjectUpdate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    archived: bool | None = None
    hourly_rate: Money | None = None
    cost_center_id: UUID | None = None
    # Distinguishes "leave unchanged" (omitted) from "clear" for the nullable fields.
    clear_hourly_rate: bool = False
    clear_cost_center: bool = False


class ProjectPublic(_Public):
    id: UUID
    slug: str
    name: str
    archived: bool
    hourly_rate: Decimal | None
    cost_center_id: UUID | None
    cost_center_name: str | None
    created_at: datetime


class BudgetPublic(_Public):
    """A monthly budget: the workspace's (no project, no cost center), one project's or one cost center's."""

    id: UUID
    project_id: UUID | None
    project_slug: str | None
    cost_center_id: UUID | None = None
    cost_center_name: str | None = None
    monthly_amount: Decimal
    currency: str
    updated_at: datetime
    hard_limit: bool = False  # paired meters refuse the project's calls once the budget is reached


class AuditEventPublic(_Public):
    id: int
    created_at: datetime
    actor_type: Literal["user", "device", "api_key", "system"]
    actor_id: UUID | None
    actor_label: str
    event: str
    resource_type: str
    resource_id: str
    resource_label: str
    details: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEventPublic]
    next_before: int | None = Field(
        description="Pass as `before` to get the next (older) page; null at the end."
    )


class RequestPublic(BaseModel):
    """One captured request, as stored in the warehouse (deduplicated)."""

    request_uid: UUID
    device_id: UUID
    machine_id: str
    started_at: datetime
    ended_at: datetime
    provider: str
    model_requested: str | None
    model_served: str | None
    endpoint: str
    status_code: int | None
    streamed: bool
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: Decimal | None
    price_card: str | None
    project: str
    attribution_tier: str
    provider_request_id: str | None
    latency_ms: int | None


class RequestPage(BaseModel):
    requests: list[RequestPublic]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end."
    )


class SpendLimit(BaseModel):
    """A project whose budget is a hard limit, with its month-to-date spend as the dashboards show it."""

    project: str
    budget_usd: Decimal
    month: str = Field(description="The UTC month the spend figure covers (YYYY-MM).")
    month_to_date_usd: Decimal | None = Field(
        description="The project's spend this month in the marts; null when the cloud cannot tell "
        "(marts not built yet, warehouse unreachable): a meter never blocks on an unknown figure."
    )
    spend_as_of: datetime | None = Field(
        description="The figure holds every row the cloud ingested up to this time (the newest ingestion "
        "in the marts); a meter adds its own rows synced after it, or not yet synced."
    )
    problem: str | None = Field(default=None, description="Why month_to_date_usd is null.")


class WhoAmI(BaseModel):
    workspace_id: UUID
    workspace_slug: str
    workspace_name: str
    device_id: UUID
    machine_id: str
    hostname: str
    spend_limits: list[SpendLimit] = Field(
        default_factory=list,
        description="Projects whose budget is a hard limit (empty unless an owner turned one on).",
    )


class MeterLimitEvent(BaseModel):
    """A call a meter refused at a project's budget limit, or let through on an override."""

    model_config = ConfigDict(extra="forbid")

    event_uid: UUID
    kind: Literal["blocked", "override"]
    via: Literal["header", "command"] | None = Field(default=None, description="Set exactly for an override.")
    project: StoredText = Field(min_length=1, max_length=128)
    provider: Literal["anthropic", "openai", "gemini", "xai"]
    model: StoredText | None = Field(default=None, max_length=256)
    occurred_at: datetime
    budget_usd: Decimal = Field(ge=0, lt=Decimal(10) ** 16, decimal_places=2)
    spend_usd: Decimal = Field(ge=0, lt=Decimal(10) ** 15, decimal_places=9)

    @model_validator(mode="after")
    def _via_matches_kind(self) -> MeterLimitEvent:
        if (self.kind == "override") != (self.via is not None):
            raise ValueError("via is required for an override (header or command), and only then")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset")
        return self


class MeterLimitEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[MeterLimitEvent] = Field(min_length=1, max_length=500)


class MeterReport(BaseModel):
    """What a meter says about its sync after a pass, and as a heartbeat while idle or paused."""

    state: Literal["ACTIVE", "DEGRADED", "PAUSED"]
    paused_reason: PausedReason | None = Field(default=None, description="Set exactly when PAUSED.")
    unsynced_rows: int = Field(ge=0, le=2**62, description="Rows captured on the machine, not yet synced.")
    meter_version: str = Field(default="", max_length=64)

    @model_validator(mode="after")
    def _reason_matches_state(self) -> MeterReport:
        if (self.state == "PAUSED") != (self.paused_reason is not None):
            raise ValueError("paused_reason is required when state is PAUSED, and only then")
        return self


class ReconcileDay(BaseModel):
    day: date
    rows: int
    cost_usd: Decimal = Field(description="Sum of the day's priced rows (unpriced rows count as 0).")


class ReconcileDays(BaseModel):
    """What the warehouse holds for this machine, per UTC day (days without rows are left out)."""

    from_date: date = Field(serialization_alias="from")
    to_date: date = Field(serialization_alias="to")
    days: list[ReconcileDay]


class MissingAsk(BaseModel):
    """The request_uids a meter synced for one UTC day (all of them, or one slice of a busy day)."""

    day: date
    request_uids: list[UUID] = Field(min_length=1)


class MissingAnswer(BaseModel):
    day: date
    missing: list[UUID] = Field(description="The asked uids the warehouse does not hold for this machine.")


class StoreHealth(BaseModel):
    status: Literal["ok", "down"]
    latency_ms: float | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    postgres: StoreHealth
    warehouse: StoreHealth


class Problem(BaseModel):
    """Every error answer: what was wrong and, for batches, where."""

    detail: str
    errors: list[dict[str, Any]] | None = None
