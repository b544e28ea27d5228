"""The workspace logo on the advanced settings page: admins upload and remove it (audited), everyone else
is refused, and a file that is not a small PNG or JPEG gets a 422 that says what is wrong with it."""

from __future__ import annotations

import io
import re

import psycopg
from fastapi.testclient import TestClient
from PIL import Image

from halton_api.testing.factories import Browser, add_member, make_user, make_workspace


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (240, 80), (200, 30, 120)).save(buffer, "PNG")
    return buffer.getvalue()


def upload(browser: Browser, slug: str, name: str, data: bytes, content_type: str = "image/png"):
    return browser.client.post(
        f"/{slug}/settings/advanced/logo",
        data={"csrf_token": browser.csrf_token()},
        files={"logo": (name, data, content_type)},
    )


def events(postgres_url: str) -> list[tuple[str, str, dict]]:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute(
            "SELECT event, actor_label, details FROM audit_events WHERE event LIKE 'workspace.logo%' ORDER BY created_at"
        ).fetchall()


def test_an_admin_uploads_replaces_and_removes_the_logo(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    assert "No logo yet" in admin.get(f"/{workspace.slug}/settings/advanced").text

    response = upload(admin, workspace.slug, "acme.png", png())
    assert response.status_code == 303, response.text
    page = admin.get(f"/{workspace.slug}/settings/advanced").text
    assert "data-logo" in page and "image/png" in page and "Remove logo" in page
    served = admin.get(f"/{workspace.slug}/settings/advanced/logo")
    assert served.content == png() and served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"

    assert admin.post(f"/{workspace.slug}/settings/advanced/logo/remove").status_code == 303
    assert admin.get(f"/{workspace.slug}/settings/advanced/logo").status_code == 404
    logged = events(postgres_url)
    assert [(e, actor) for e, actor, _ in logged] == [
        ("workspace.logo_updated", owner.email),
        ("workspace.logo_removed", owner.email),
    ]
    assert logged[0][2]["content_type"] == "image/png" and logged[0][2]["bytes"] == len(png())


def test_members_and_viewers_cannot_change_it(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    for role in ("viewer", "member"):
        someone = make_user(postgres_url)
        add_member(postgres_url, workspace=workspace, user=someone, role=role)
        browser = Browser(client, postgres_url, someone)
        response = upload(browser, workspace.slug, "acme.png", png())
        assert response.status_code == 403, response.text
        assert "manage config" in response.text
        assert browser.post(f"/{workspace.slug}/settings/advanced/logo/remove").status_code == 403
        assert (
            "Only workspace admins can change the logo"
            in browser.get(f"/{workspace.slug}/settings/advanced").text
        )
    assert events(postgres_url) == []


def test_a_bad_file_gets_a_422_naming_the_problem(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    admin = Browser(client, postgres_url, owner)
    renamed_text = upload(admin, workspace.slug, "logo.png", b"Q3 board numbers, not an image\n" * 10)
    assert renamed_text.status_code == 422
    assert "logo.png is not a PNG or JPEG image" in renamed_text.text
    oversized = upload(admin, workspace.slug, "huge.png", png() + bytes(600 * 1024))
    assert oversized.status_code == 422
    assert re.search(r"huge.png is 60\d KB; a logo may be at most 512 KB", oversized.text)
    svg = upload(
        admin, workspace.slug, "logo.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"
    )
    assert svg.status_code == 422 and "SVG logos are not accepted" in svg.text
    missing = admin.client.post(
        f"/{workspace.slug}/settings/advanced/logo", data={"csrf_token": admin.csrf_token()}
    )
    assert missing.status_code == 422 and "logo" in missing.text
    json = admin.client.post(
        f"/{workspace.slug}/settings/advanced/logo",
        data={"csrf_token": admin.csrf_token()},
        files={"logo": ("logo.png", b"plain text", "image/png")},
        headers={"accept": "application/json"},
    ).json()
    assert json["detail"].startswith("logo: logo.png is not a PNG or JPEG image")
    assert events(postgres_url) == []
