"""Sign up, sign in, sign out, sessions and CSRF, through the real forms."""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from fastapi.testclient import TestClient

from halton_api import csrf
from halton_api.app import create_app
from halton_api.cloud_settings import CloudSettings
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


# --- limits: the account lock and sign-ups per address --------------------------------------------


class _Clock:
    """Wall time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _try(client, email: str, password: str, headers: dict[str, str] | None = None):
    token = csrf_from(client.get("/signin").text)
    return client.post(
        "/signin", data={"email": email, "password": password, "csrf_token": token}, headers=headers
    )


def _account_only(settings: CloudSettings) -> CloudSettings:
    """Per-address buckets out of the way: these tests are about the account."""
    return settings.model_copy(update={"bad_auth_burst": 1000})


def test_failed_sign_ins_lock_the_account_with_a_growing_wait(settings, postgres_url: str) -> None:
    clock = _Clock()
    with TestClient(create_app(_account_only(settings), clock=clock), follow_redirects=False) as client:
        make_user(postgres_url, email="lin@example.com")
        first = [_try(client, "lin@example.com", f"wrong guess {i}") for i in range(5)]
        assert [r.status_code for r in first] == [400] * 5
        assert "can be tried again in 30s" in first[-1].text

        # During the lock even the right password is refused (else guessing would go on), with its wait.
        locked = _try(client, "LIN@example.com ", PASSWORD)
        assert locked.status_code == 429 and locked.headers["Retry-After"] == "30"
        assert "paused for 30s" in locked.text and "5 in a row" in locked.text
        clock.advance(29)
        assert _try(client, "lin@example.com", PASSWORD).headers["Retry-After"] == "1"

        # Each failure after a lock doubles the next one, up to 15 minutes; refused tries add nothing.
        waits = []
        for _ in range(6):
            clock.advance(int(_try(client, "lin@example.com", PASSWORD).headers["Retry-After"]))
            assert _try(client, "lin@example.com", "still guessing").status_code == 400
            waits.append(int(_try(client, "lin@example.com", PASSWORD).headers["Retry-After"]))
        assert waits == [60, 120, 240, 480, 900, 900]

        # Never permanent: once the wait is over the right password signs in and clears the count.
        clock.advance(900)
        assert _try(client, "lin@example.com", PASSWORD).status_code == 303
        again = [_try(client, "lin@example.com", "one more slip").status_code for _ in range(4)]
        assert again == [400] * 4
        assert _try(client, "lin@example.com", PASSWORD).status_code == 303


def test_failures_are_forgotten_after_a_quiet_day(settings, postgres_url: str) -> None:
    clock = _Clock()
    with TestClient(create_app(_account_only(settings), clock=clock), follow_redirects=False) as client:
        make_user(postgres_url, email="mo@example.com")
        assert [_try(client, "mo@example.com", "typo typo typo").status_code for _ in range(4)] == [400] * 4
        clock.advance(24 * 3600 + 1)
        assert [_try(client, "mo@example.com", "typo typo typo").status_code for _ in range(4)] == [400] * 4
        assert _try(client, "mo@example.com", PASSWORD).status_code == 303
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM sign_in_failures").fetchone() == (0,)


def test_an_address_without_an_account_locks_the_same_way(settings, postgres_url: str) -> None:
    """The lock must not tell a guesser which addresses have accounts."""
    clock = _Clock()
    with TestClient(create_app(_account_only(settings), clock=clock), follow_redirects=False) as client:
        make_user(postgres_url, email="real@example.com")

        def story(email: str) -> list[tuple[int, str | None, str]]:
            answers = [_try(client, email, "not the password") for _ in range(7)]
            return [
                (a.status_code, a.headers.get("Retry-After"), a.text.replace(email, "EMAIL")) for a in answers
            ]

        assert story("real@example.com") == story("ghost@example.com")


def test_concurrent_guesses_earn_no_more_tries(settings, serve, postgres_url: str) -> None:
    """Twenty guesses at once, each from another address (a trusted proxy forwards them): five are tried."""
    behind_proxy = _account_only(settings).model_copy(update={"forwarded_allow_ips": ["127.0.0.1"]})
    url = serve(behind_proxy, clock=_Clock())
    with httpx.Client(base_url=url, timeout=60) as http:
        make_user(postgres_url, email="ana@example.com")
        token = csrf_from(http.get("/signin").text)

        def guess(i: int) -> int:
            return http.post(
                "/signin",
                data={"email": "ana@example.com", "password": f"guess {i} guess", "csrf_token": token},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            ).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = Counter(pool.map(guess, range(20)))
    assert statuses == {400: 5, 429: 15}


def test_sign_ups_are_limited_per_address(settings, postgres_url: str) -> None:
    """Sign-up says when an address is taken (no email to hide it behind): asking is slowed instead."""
    strict = settings.model_copy(update={"signup_burst": 3})
    with TestClient(create_app(strict), follow_redirects=False) as client:
        assert _sign_up(client).status_code == 303
        visitor = TestClient(client.app, follow_redirects=False)
        visitor.portal = client.portal
        assert [_sign_up(visitor).status_code for _ in range(2)] == [409, 409]
        limited = _sign_up(visitor, email="new-person@example.com")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "too many sign-ups from this address" in limited.text
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (1,)


def test_a_nul_character_in_the_forms_is_a_clear_400(client: TestClient) -> None:
    """PostgreSQL text cannot hold a NUL: the forms refuse it instead of failing in the store."""
    signin = _try(client, "a\x00b@example.com", PASSWORD)
    assert signin.status_code == 400 and "enter a valid email address" in signin.text
    assert _sign_up(client, email="a\x00b@example.com").status_code == 400
    named = _sign_up(client, name="Ada\x00")
    assert named.status_code == 400 and "NUL" in named.text
