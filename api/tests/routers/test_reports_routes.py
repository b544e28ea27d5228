"""Starting a PDF report: only a POST with the page's CSRF token starts one; a GET (a link, which another site
can show too, and which carries the SameSite=Lax session cookie) shows the form. The renders themselves are
checked on the demo workspace (tests/test_reports_pdf.py)."""

from __future__ import annotations

import html
import re

from fastapi.testclient import TestClient

from halton_api.testing.factories import Browser, add_member, make_user, make_workspace

FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*data-pdf="(\w+)"')


def test_a_get_never_starts_a_report_and_a_post_needs_the_csrf_token(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    ws = workspace.slug
    browser = Browser(client, postgres_url, owner)

    # The executive view's button is a form (POST), not a link.
    (action, kind) = FORM.search(browser.get(f"/{ws}/executive?range=last_month").text).groups()
    assert (html.unescape(action), kind) == (f"/{ws}/reports/new?range=last_month", "executive")

    # The direct .pdf URL with only a session cookie: sent to the form, nothing rendered.
    direct = browser.get(f"/{ws}/executive.pdf?range=last_month")
    assert direct.status_code == 303
    assert direct.headers["location"] == f"/{ws}/reports/new?range=last_month&kind=executive"
    page = browser.get(direct.headers["location"])
    assert page.status_code == 200 and "Generate a PDF" in page.text
    assert FORM.search(page.text).group(2) == "executive" and 'name="csrf_token"' in page.text

    # A forged post (another site's form: no token, or a token of another browser) starts nothing.
    form = {"kind": "executive"}
    assert browser.post(f"/{ws}/reports/new?range=last_month", form, with_csrf=False).status_code == 403
    stranger = Browser(client, postgres_url, owner)
    forged = browser.post(
        f"/{ws}/reports/new", {**form, "csrf_token": stranger.csrf_token()}, with_csrf=False
    )
    assert forged.status_code == 403
    # Bad input says what is wrong.
    assert browser.post(f"/{ws}/reports/new", {"kind": "invoice"}).status_code == 422
    missing = browser.post(f"/{ws}/reports/new", {"kind": "project"})
    assert missing.status_code == 422 and "slug" in missing.text
    assert browser.get(f"/{ws}/reports/new?kind=project").status_code == 422

    # The page's own form starts the job and goes to its progress page.
    started = browser.post(f"/{ws}/reports/new?range=last_month", form)
    assert started.status_code == 303, started.text
    job_page = started.headers["location"]
    assert re.fullmatch(rf"/{ws}/reports/[A-Za-z0-9_-]+", job_page)
    progress = browser.get(job_page)
    assert progress.status_code == 200 and "data-report-job" in progress.text


def test_starting_a_report_needs_a_member(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    viewer = make_user(postgres_url)
    add_member(postgres_url, workspace=workspace, user=viewer, role="viewer")
    started = Browser(client, postgres_url, viewer).post(
        f"/{workspace.slug}/reports/new", {"kind": "executive"}
    )
    assert started.status_code == 303 and "/reports/" in started.headers["location"]  # reading is enough
    anonymous = client.get(f"/{workspace.slug}/reports/new?kind=executive")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")
    outsider = Browser(client, postgres_url, make_user(postgres_url))
    assert outsider.get(f"/{workspace.slug}/reports/new?kind=executive").status_code == 404
    assert outsider.post(f"/{workspace.slug}/reports/new", {"kind": "executive"}).status_code == 404
