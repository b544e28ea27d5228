"""Sign up, sign in, sign out, sessions and CSRF, through the real forms."""

from __future__ import annotations

import hashlib

import psycopg
from fastapi.testclient import TestClient

from halton_api import csrf
from halton_api.app import create_app
from halton_api.deps import SESSION_COOKIE
from halton_api.testing.factories import PASSWORD, Browser, csrf_from, make_user, make_workspace


def _sign_up(client: TestClient, **fields: str):
    page = client.get("/signup")
    assert page.status_code == 200
    form = {"email": "ada@example.com", "password": PASSWORD, "name": "Ada", "workspace_name": "Acme Co"}
    form.update(fields)
    return client.post("/signup", data={**form, "csrf_token": csrf_from(page.text)})


def test_sign_up_creates_a_workspace_and_signs_in(client: TestClient, postgres_url: str) -> None:
    response = _sign_up(client)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/acme-co/overview"
    cookie = response.headers["set-cookie"]
    assert (
        f"{SESSION_COOKIE}=" in cookie
        and "HttpOnly" in cookie
        and "SameSite=lax" in cookie.replace("Lax", "lax")
    )

    overview = client.get("/acme-co/overview")
    assert overview.status_code == 200
    assert "Acme Co" in overview.text and "ada@example.com" in overview.text

    token = client.cookies.get(SESSION_COOKIE)
    with psycopg.connect(postgres_url) as conn:
        role = conn.execute(
            "SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'ada@example.com'"
        ).fetchone()
        stored = [bytes(r[0]) for r in conn.execute("SELECT token_hash FROM sessions").fetchall()]
        password_hash = conn.execute("SELECT password_hash FROM users").fetchone()[0]
        events = conn.execute("SELECT event FROM audit_events").fetchall()
    assert role == ("owner",)
    assert stored == [hashlib.sha256(token.encode()).digest()]  # only a hash of the session token
    assert password_hash.startswith("$argon2id$")
    assert events == [("workspace.created",)]


def test_sign_up_refuses_a_taken_email_and_a_short_password(client: TestClient) -> None:
    assert _sign_up(client).status_code == 303
    other = TestClient(client.app, follow_redirects=False)
    other.portal = client.portal
    taken = _sign_up(other)
    assert taken.status_code == 409 and "already exists" in taken.text
    short = _sign_up(other, email="bob@example.com", password="short")
    assert short.status_code == 400 and "at least 10 characters" in short.text


def test_sign_in_and_out(client: TestClient, postgres_url: str) -> None:
    user = make_user(postgres_url, email="grace@example.com")
    workspace = make_workspace(postgres_url, owner=user, name="Navy")
    page = client.get("/signin?next=/navy/audit")
    wrong = client.post(
        "/signin",
        data={"email": "grace@example.com", "password": "not it at all", "csrf_token": csrf_from(page.text)},
    )
    assert wrong.status_code == 400 and "wrong email or password" in wrong.text
    right = client.post(
        "/signin",
        data={
            "email": "GRACE@example.com",
            "password": PASSWORD,
            "next": "/navy/audit",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert right.status_code == 303 and right.headers["location"] == "/navy/audit"
    assert client.get(f"/{workspace.slug}/overview").status_code == 200

    # The pre-sign-in form token does not work with the new session: tokens are tied to the session.
    assert client.post("/signout", data={"csrf_token": csrf_from(page.text)}).status_code == 403
    fresh = csrf_from(client.get(f"/{workspace.slug}/overview").text)
    assert client.post("/signout", data={"csrf_token": fresh}).status_code == 303
    assert client.get(f"/{workspace.slug}/overview").headers["location"].startswith("/signin")


def test_an_open_redirect_is_not_followed_after_sign_in(client: TestClient, postgres_url: str) -> None:
    user = make_user(postgres_url, email="eve@example.com")
    make_workspace(postgres_url, owner=user, name="Eve")
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={
            "email": "eve@example.com",
            "password": PASSWORD,
            "next": "//evil.example/",
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.headers["location"] == "/eve/overview"


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/anything/settings/devices")
    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=/anything/settings/devices"


def test_csrf_missing_or_wrong_is_refused(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    browser = Browser(client, postgres_url, owner)
    path = f"/{workspace.slug}/settings/cost-centers"
    missing = browser.post(path, {"name": "R&D"}, with_csrf=False)
    assert missing.status_code == 403 and "CSRF" in missing.text
    wrong = browser.post(path, {"name": "R&D", "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    # A token minted for another browser's cookie does not verify with this one.
    other = Browser(client, postgres_url, owner)
    assert browser.post(path, {"name": "R&D", "csrf_token": other.csrf_token()}).status_code == 403
    # Header form works too (for scripts driving forms); and the right token passes.
    assert (
        browser.client.post(
            path, data={"name": "Ops"}, headers={csrf.HEADER: browser.csrf_token()}
        ).status_code
        == 303
    )
    assert browser.post(path, {"name": "R&D"}).status_code == 303


def test_anonymous_forms_are_protected_too(client: TestClient) -> None:
    client.get("/signin")  # sets the CSRF cookie
    response = client.post("/signin", data={"email": "a@example.com", "password": PASSWORD})
    assert response.status_code == 403


def test_repeated_failed_sign_ins_are_rate_limited(settings, postgres_url: str) -> None:
    from halton_api.app import create_app

    strict = settings.model_copy(update={"bad_auth_burst": 2, "bad_auth_per_minute": 1})
    with TestClient(create_app(strict), follow_redirects=False) as client:
        make_user(postgres_url, email="kim@example.com")
        token = csrf_from(client.get("/signin").text)
        statuses = [
            client.post(
                "/signin",
                data={"email": "kim@example.com", "password": "nope nope nope", "csrf_token": token},
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [400, 400, 429]
        limited = client.post(
            "/signin", data={"email": "kim@example.com", "password": PASSWORD, "csrf_token": token}
        )
        assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_an_invited_person_signs_up_straight_into_the_workspace(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner, name="Inviters")
    admin = Browser(client, postgres_url, owner)
    page = admin.post(
        f"/{workspace.slug}/settings/members/invite", {"email": "new@example.com", "role": "viewer"}
    )
    link = page.text.split('aria-label="Invitation link"')[0].rsplit('value="', 1)[1].split('"')[0]
    path = link.removeprefix("http://testserver")
    invite = client.get(path)
    assert invite.status_code == 200 and "new@example.com" in invite.text
    token = path.rsplit("/", 1)[1]
    signup = client.get(f"/signup?invite={token}")
    response = client.post(
        "/signup",
        data={
            "email": "new@example.com",
            "password": PASSWORD,
            "invite": token,
            "csrf_token": csrf_from(signup.text),
        },
    )
    assert response.status_code == 303 and response.headers["location"] == f"/{workspace.slug}/overview"
    with psycopg.connect(postgres_url) as conn:
        memberships = conn.execute(
            "SELECT w.slug, m.role FROM memberships m JOIN users u ON u.id = m.user_id"
            " JOIN workspaces w ON w.id = m.workspace_id WHERE u.email = 'new@example.com'"
        ).fetchall()
    assert memberships == [(workspace.slug, "viewer")]


def _set_cookies(response) -> dict[str, str]:
    return {value.split("=", 1)[0]: value for value in response.headers.get_list("set-cookie")}


def test_cookies_are_secure_when_the_public_url_is_https(settings) -> None:
    """The session and CSRF cookies, set and cleared, carry Secure behind https (and SameSite=Lax, HttpOnly
    always); on a plain-http laptop they cannot, or the browser would drop them."""
    for public_url, secure in (("https://halton.example", True), ("http://127.0.0.1:8000", False)):
        app = create_app(settings.model_copy(update={"public_url": public_url}))
        with TestClient(app, base_url=public_url.replace("127.0.0.1:8000", "testserver"),
                        follow_redirects=False) as client:  # fmt: skip
            page = client.get("/signup")
            form = {"email": f"ada-{int(secure)}@example.com", "password": PASSWORD, "name": "Ada",
                    "workspace_name": f"Acme {int(secure)}", "csrf_token": csrf_from(page.text)}  # fmt: skip
            signed_up = client.post("/signup", data=form)
            assert signed_up.status_code == 303, signed_up.text
            home = client.get(signed_up.headers["location"])
            signed_out = client.post("/signout", data={"csrf_token": csrf_from(home.text)})
            assert signed_out.status_code == 303, signed_out.text
            cookies = [
                _set_cookies(page)[csrf.COOKIE],
                _set_cookies(signed_up)[SESSION_COOKIE],
                _set_cookies(signed_out)[SESSION_COOKIE],
            ]
            for cookie in cookies:
                attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
                assert ("secure" in attributes) is secure, (public_url, cookie)
                assert {"httponly", "samesite", "path"} <= attributes and "samesite=lax" in cookie.lower()
