"""What a dashboard needs from the control plane, read once per request: projects, cost centers, devices and
budgets. With them the rail's filters become a `Scope`, device ids get names, and budgets get compared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from halton_api.cloud_settings import CloudSettings
from halton_api.dashboards.budgets import BudgetChoice, choose_budget
from halton_api.dashboards.filters import PROVIDERS, UNASSIGNED, Filters, Scope
from halton_api.dashboards.model_names import base_model
from halton_api.dashboards.page_models import DeviceSync, RailOption, SyncStatus
from halton_api.models import BudgetPublic, CostCenterPublic, DevicePublic, ProjectPublic
from halton_api.store import Connection, devices, projects


@dataclass(frozen=True)
class WorkspaceFacts:
    workspace_id: UUID
    projects: list[ProjectPublic]
    cost_centers: list[CostCenterPublic]
    devices: list[DevicePublic]
    budgets: list[BudgetPublic]

    @classmethod
    async def load(cls, conn: Connection, workspace_id: UUID) -> WorkspaceFacts:
        return cls(
            workspace_id=workspace_id,
            projects=await projects.list_projects(conn, workspace_id=workspace_id),
            cost_centers=await projects.list_cost_centers(conn, workspace_id=workspace_id),
            devices=await devices.list_devices(conn, workspace_id=workspace_id),
            budgets=await projects.list_budgets(conn, workspace_id=workspace_id),
        )

    def scope(self, filters: Filters, now: datetime) -> Scope:
        chosen = set(filters.cost_centers)
        assigned = tuple(sorted(p.slug for p in self.projects if p.cost_center_id is not None))
        cc_projects = None
        if chosen:
            cc_projects = tuple(
                sorted(p.slug for p in self.projects if p.cost_center_id and str(p.cost_center_id) in chosen)
            )
        return Scope(
            workspace_id=self.workspace_id,
            filters=filters,
            period=filters.period(now),
            now=now,
            cost_center_projects=cc_projects,
            assigned_projects=assigned if UNASSIGNED in chosen else (),
        )

    def project(self, slug: str) -> ProjectPublic | None:
        return next((p for p in self.projects if p.slug == slug), None)

    def project_name(self, slug: str) -> str:
        found = self.project(slug)
        return found.name if found else slug

    def device_name(self, device_id: UUID | str) -> str:
        key = str(device_id)
        found = next((d for d in self.devices if str(d.id) == key), None)
        return found.display_name if found else key[:8]

    def device_member(self, device_id: UUID | str) -> str | None:
        key = str(device_id)
        found = next((d for d in self.devices if str(d.id) == key), None)
        return found.paired_by_email if found else None

    def cost_center_name(self, value: str) -> str:
        if value == UNASSIGNED:
            return "Unassigned"
        return next((c.name for c in self.cost_centers if str(c.id) == value), value)

    def monthly_budget(self, project_slug: str | None = None) -> Decimal | None:
        """The workspace's monthly budget, or one project's."""
        if project_slug is None:
            return next(
                (b.monthly_amount for b in self.budgets if b.project_id is None and b.cost_center_id is None),
                None,
            )
        return next((b.monthly_amount for b in self.budgets if b.project_slug == project_slug), None)

    def budget_for(self, filters: Filters) -> BudgetChoice:
        """The monthly budget a view's spend is compared with (see `budgets.choose_budget`)."""
        by_project = {b.project_slug: b.monthly_amount for b in self.budgets if b.project_id is not None}
        by_cost_center = {b.cost_center_id: b.monthly_amount for b in self.budgets if b.cost_center_id}
        centers = {str(c.id): (c.name, by_cost_center.get(c.id)) for c in self.cost_centers}
        return choose_budget(filters, self.monthly_budget(), by_project, centers)  # type: ignore[arg-type]

    def rail_options(self, models: list[tuple[str, str]]) -> dict[str, list[RailOption]]:
        """Choices for the rail's multi-selects (`models` as (provider, model) pairs seen in the marts)."""
        centers = [RailOption(value=str(c.id), label=c.name) for c in self.cost_centers]
        if centers:
            centers.append(RailOption(value=UNASSIGNED, label="Unassigned"))
        return {
            "providers": [RailOption(value=k, label=v) for k, v in PROVIDERS.items()],
            "models": _folded_models(models),
            "projects": [
                RailOption(value=p.slug, label=p.name) for p in sorted(self.projects, key=lambda p: p.slug)
            ],
            "devices": [
                RailOption(value=str(d.id), label=d.display_name, group=d.paired_by_email or "")
                for d in self.devices
                if d.status != "revoked" or d.last_sync_at is not None
            ],
            "cost_centers": centers,
        }

    def sync_status(self, settings: CloudSettings, now: datetime) -> SyncStatus:
        """The overview's banner (spec: cloud-dashboards.txt): red when any device is PAUSED, amber when one is
        DEGRADED (or NOT-REPORTING), green when every one is ACTIVE. See `device_sync` for each device."""
        silent_after = timedelta(seconds=settings.device_silent_after_seconds)
        states = [s for d in self.devices if (s := device_sync(d, now, silent_after)) is not None]
        if not states:
            return SyncStatus(
                status="none", summary="No paired devices yet: pair a meter to start syncing.", devices=[]
            )
        counts = {s: sum(1 for d in states if d.state == s) for s in _BANNER_ORDER}
        total = len(states)
        if counts["PAUSED"]:
            status = "red"
        elif counts["DEGRADED"] or counts["NOT-REPORTING"]:
            status = "amber"
        else:
            summary = "The one device is ACTIVE." if total == 1 else f"All {total} devices ACTIVE."
            return SyncStatus(status="green", summary=summary, devices=states)
        devices = "device" if total == 1 else "devices"
        parts = [f"{counts[s]} of {total} {devices} {s}: {_MEANING[s]}" for s in _BANNER_ORDER if counts[s]]
        return SyncStatus(status=status, summary=" ".join(parts), devices=states)


_BANNER_ORDER = ("PAUSED", "DEGRADED", "NOT-REPORTING", "ACTIVE")
_MEANING = {
    "PAUSED": "sync stopped until someone acts (see each device's reason).",
    "DEGRADED": "rows pile up faster than they upload; sync catches up on its own.",
    "NOT-REPORTING": "no word from the meter lately (off, asleep or offline).",
    "ACTIVE": "syncing.",
}
_REASON_BY_STATUS = {"removed": "paused_forbidden", "revoked": "paused_unauthorised"}


def device_sync(device: DevicePublic, now: datetime, silent_after: timedelta) -> DeviceSync | None:
    """One device's line in the banner, or None when it is no longer part of the workspace's sync.

    * removed / revoked by an admin while its meter was reporting: PAUSED (`paused_forbidden` /
      `paused_unauthorised`), from our own records, since such a meter cannot authenticate to say so itself
      (until it is reinstated or paired again); a meter that disconnected itself (its last report says
      NOT-CONFIGURED) or was silent when the admin acted is left out;
    * active: the state its meter last reported (ACTIVE, DEGRADED, PAUSED with its reason); silent for longer
      than `silent_after` it is NOT-REPORTING, except that a meter whose last word was PAUSED stays PAUSED
      (falling silent does not unpause it). A report from before the device's last pairing is ignored, and a
      device that has not reported since pairing counts as ACTIVE until it has been silent too long.
    """
    line = {
        "device_id": device.id,
        "name": device.display_name,
        "hostname": device.hostname,
        "member": device.paired_by_email,
        "last_sync_at": device.last_sync_at,
    }
    current = device.reported_at is not None and device.reported_at >= device.paired_at
    if current:
        line |= {
            "unsynced_rows": device.reported_unsynced_rows,
            "reported_at": device.reported_at,
            "meter_version": device.reported_meter_version,
        }
    if device.status != "active":
        # Only a meter that was reporting when the admin acted is out there, paused, with rows piling up; one
        # that disconnected itself, or had long gone quiet (a lost laptop, a departed colleague's), is retired.
        was_running = (
            current
            and device.reported_state != "NOT-CONFIGURED"
            and device.status_changed_at - device.reported_at <= silent_after
        )
        if not was_running:
            return None
        return DeviceSync(
            **line, state="PAUSED", paused_reason=_REASON_BY_STATUS[device.status], source="control_plane"
        )
    if not current or device.reported_state == "NOT-CONFIGURED":
        heard = max(device.last_sync_at or device.paired_at, device.paired_at)
        return DeviceSync(**line, state="ACTIVE" if now - heard <= silent_after else "NOT-REPORTING")
    assert device.reported_at is not None and device.reported_state is not None
    if device.reported_state == "PAUSED":
        return DeviceSync(**line, state="PAUSED", paused_reason=device.reported_paused_reason)
    if now - device.reported_at > silent_after:
        return DeviceSync(**line, state="NOT-REPORTING")
    return DeviceSync(**line, state=device.reported_state)


def _folded_models(models: list[tuple[str, str]]) -> list[RailOption]:
    """One choice per model per provider, its dated snapshots folded under it (a model filter matches them)."""
    snapshots: dict[tuple[str, str], list[str]] = {}
    for provider, model in models:
        snapshots.setdefault((provider, base_model(model)), []).append(model)
    return [
        RailOption(
            value=base,
            label=base,
            group=PROVIDERS.get(provider, provider),
            provider=provider,
            includes=[m for m in ids if m != base],
        )
        for (provider, base), ids in sorted(snapshots.items())
    ]
