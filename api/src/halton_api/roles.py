"""Workspace roles and what each may do: the one table every route checks against."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("owner", "admin", "member", "viewer")
_RANK: dict[str, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}


class Permission(StrEnum):
    VIEW = "view"  # dashboards, lists, the audit log, the JSON API
    PAIR_DEVICE = "pair_device"  # approve a pairing code for one's own machine
    MANAGE_DEVICES = "manage_devices"  # rename, revoke, remove, reinstate any device
    MANAGE_MEMBERS = "manage_members"  # invite, revoke invitations, change roles below owner, remove
    MANAGE_OWNERS = "manage_owners"  # grant or take away the owner role
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_CONFIG = "manage_config"  # projects, cost centers, budgets
    MANAGE_BILLING = "manage_billing"  # provider billing connections (admin keys) and their project mapping
    MANAGE_LIMITS = "manage_limits"  # mark a project's budget as a hard limit that paired meters enforce


MINIMUM_ROLE: dict[Permission, Role] = {
    Permission.VIEW: "viewer",
    Permission.PAIR_DEVICE: "member",
    Permission.MANAGE_DEVICES: "admin",
    Permission.MANAGE_MEMBERS: "admin",
    Permission.MANAGE_OWNERS: "owner",
    Permission.MANAGE_API_KEYS: "admin",
    Permission.MANAGE_CONFIG: "admin",
    Permission.MANAGE_BILLING: "owner",
    Permission.MANAGE_LIMITS: "owner",
}


def allows(role: str, permission: Permission) -> bool:
    return _RANK[role] >= _RANK[MINIMUM_ROLE[permission]]


def at_least(role: str, other: str) -> bool:
    return _RANK[role] >= _RANK[other]
