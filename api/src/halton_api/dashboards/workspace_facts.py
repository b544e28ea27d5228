"""What a dashboard needs from the control plane, read once per request: projects, cost centers, devices and
budgets. With them the rail's filters become a `Scope`, device ids get names, and budgets get compared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from halton_api.dashboards.filters import PROVIDERS, UNASSIGNED, Filters, Scope
from halton_api.dashboards.models import DeviceSync, RailOption, SyncStatus
from halton_api.models import BudgetPublic, CostCenterPublic, DevicePublic, ProjectPublic
from halton_api.settings import CloudSettings
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
            return next((b.monthly_amount for b in self.budgets if b.project_id is None), None)
        return next((b.monthly_amount for b in self.budgets if b.project_slug == project_slug), None)

    def budget_for(self, filters: Filters) -> tuple[Decimal | None, str]:
        """The monthly budget a view's spend is compared with, and its scope: the one filtered project's own,
        else the workspace's — but only when nothing is filtered (a workspace budget against filtered spend
        would read as a false "under")."""
        only = filters.projects[0] if len(filters.projects) == 1 else None
        own = self.monthly_budget(only) if only else None
        if own is not None:
            return own, "project"
        return (None if filters.narrowed else self.monthly_budget()), "workspace"

    def rail_options(self, models: list[tuple[str, str]]) -> dict[str, list[RailOption]]:
        """Choices for the rail's multi-selects (`models` as (provider, model) pairs seen in the marts)."""
        centers = [RailOption(value=str(c.id), label=c.name) for c in self.cost_centers]
        if centers:
            centers.append(RailOption(value=UNASSIGNED, label="Unassigned"))
        return {
            "providers": [RailOption(value=k, label=v) for k, v in PROVIDERS.items()],
            "models": [RailOption(value=m, label=m, group=PROVIDERS.get(p, p)) for p, m in models],
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
        """The overview's banner: each active device read from its last batch (see the settings' comments)."""
        degraded_after = timedelta(minutes=settings.sync_degraded_after_minutes)
        paused_after = timedelta(hours=settings.sync_paused_after_hours)
        states = []
        for device in self.devices:
            if device.status != "active":
                continue
            quiet = now - (device.last_sync_at or device.paired_at)
            state = "ACTIVE" if quiet <= degraded_after else "DEGRADED" if quiet <= paused_after else "PAUSED"
            states.append(
                DeviceSync(
                    device_id=device.id,
                    name=device.display_name,
                    hostname=device.hostname,
                    member=device.paired_by_email,
                    last_sync_at=device.last_sync_at,
                    state=state,
                )
            )
        counts = {s: sum(1 for d in states if d.state == s) for s in ("ACTIVE", "DEGRADED", "PAUSED")}
        if not states:
            return SyncStatus(
                status="none", summary="No paired devices yet: pair a meter to start syncing.", devices=[]
            )
        if counts["PAUSED"]:
            status, summary = (
                "red",
                f"{counts['PAUSED']} of {len(states)} devices PAUSED: no sync for over {settings.sync_paused_after_hours} h.",
            )
        elif counts["DEGRADED"]:
            status, summary = (
                "amber",
                f"{counts['DEGRADED']} of {len(states)} devices DEGRADED: last sync over {settings.sync_degraded_after_minutes} min ago.",
            )
        else:
            status, summary = "green", f"All {len(states)} devices ACTIVE."
        return SyncStatus(status=status, summary=summary, devices=states)
