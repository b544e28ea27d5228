"""Members and invitations: invite (the link is shown), accept, revoke, change roles, remove."""

from __future__ import annotations

import re

import psycopg
from fastapi.testclient import TestClient

from halton_api.testing.factories import Browser, add_member, bearer, make_api_key, make_user, make_workspace


def _link(html: str) -> str:
    match = re.search(r'value="(http://testserver/invitations/hm_inv_[A-Za-z0-9]+)"', html)
    assert match, "no invitation link on the page"
    return match.group(1).removeprefix("http://testserver")


def test_invite_accept_change_role_and_remove(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url, email="owner@example.com")
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    base = f"/{workspace.slug}/settings/members"

    page = admin.post(f"{base}/invite", {"email": "lin@example.com", "role": "admin"})
    assert page.status_code == 200 and "shown only now" in page.text
    link = _link(page.text)
    assert link not in admin.get(base).text  # shown once

    lin = make_user(postgres_url, email="Lin@Example.com")
    wrong = Browser(client, postgres_url, make_user(postgres_url, email="mallory@example.com"))
    refused = wrong.post(f"{link}/accept")
    assert refused.status_code == 403 and "lin@example.com" in refused.text

    invitee = Browser(client, postgres_url, lin)
    assert "Accept and join" in invitee.get(link).text
    accepted = invitee.post(f"{link}/accept")
    assert accepted.status_code == 303 and accepted.headers["location"].startswith(
        f"/{workspace.slug}/overview"
    )
    assert invitee.post(f"{link}/accept").status_code == 409  # single use
    assert invitee.get(f"/{workspace.slug}/settings/members").status_code == 200

    assert admin.post(f"{base}/{lin.id}/role", {"role": "viewer"}).status_code == 303
    key = make_api_key(postgres_url, workspace=workspace).key
    members = client.get(f"/v1/{workspace.slug}/members", headers=bearer(key)).json()
    assert {(m["email"], m["role"]) for m in members} == {
        ("owner@example.com", "owner"),
        ("Lin@Example.com", "viewer"),
    }

    assert admin.post(f"{base}/{lin.id}/remove").status_code == 303
    assert invitee.get(f"/{workspace.slug}/overview").status_code == 404

    with psycopg.connect(postgres_url) as conn:
        events = [
            r[0]
            for r in conn.execute(
                "SELECT event FROM audit_events WHERE event NOT LIKE 'api_key.%' ORDER BY id"
            )
        ]
    assert events == [
        "workspace.created",
        "invitation.sent",
        "invitation.accepted",
        "member.added",
        "member.role_changed",
        "member.removed",
    ]


def test_a_revoked_invitation_cannot_be_accepted(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    link = _link(admin.post(f"/{workspace.slug}/settings/members/invite", {"email": "kai@example.com"}).text)
    page = admin.get(f"/{workspace.slug}/settings/members").text
    invitation_id = re.search(r"/settings/members/invitations/([0-9a-f-]+)/revoke", page).group(1)
    assert (
        admin.post(f"/{workspace.slug}/settings/members/invitations/{invitation_id}/revoke").status_code
        == 303
    )
    kai = Browser(client, postgres_url, make_user(postgres_url, email="kai@example.com"))
    assert "revoked" in kai.get(link).text
    assert kai.post(f"{link}/accept").status_code == 409
    assert client.get("/invitations/hm_inv_not-a-real-one").status_code == 404


def test_members_can_read_but_not_manage(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    viewer = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=viewer, role="viewer")
    page = Browser(client, postgres_url, viewer).get(f"/{workspace.slug}/settings/members")
    assert page.status_code == 200
    assert "Create invitation link" not in page.text and owner.email in page.text
