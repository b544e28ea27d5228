"""The PDF reports on the demo workspace, end to end: the real API renders them with WeasyPrint and signs them
with pyHanko; poppler reads them back (text, pages as PNG, fonts, signature panel).

What a report says is what the marts hold for the same period and filters; every table row sits whole on one
page; fonts are embedded; the signature validates with the workspace's certificate and breaks on any change;
`report.signed` carries the SHA-256 of the bytes served; the progress flow works in a browser; a logo uploaded
in settings is drawn in the report's header.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography import x509
from PIL import Image

from cloud_support import Person
from dashboard_clients import csrf, signed_in
from halton_api.charts import money, unit_money
from halton_api.dashboards.filters import month_start, previous_month
from halton_api.pdf.signing import verify_pdf
from halton_api.store.signing_keys import list_certificates
from halton_api.testing.factories import run
from halton_api.testing.pdf import page_count, pdf_fonts, pdf_pages_png, pdf_pages_text, pdf_signatures

PROJECT = "acme-batch-summariser"
LOGO_MAGENTA = (0xD0, 0x1C, 0x8B)


def today() -> date:
    return datetime.now(UTC).date()


def periods() -> dict[str, tuple[str, date, date]]:
    """Rail query, first and last day of each period the reports are checked on."""
    t = today()
    last_month = previous_month(t)
    return {
        "this-month": ("range=this_month", month_start(t), t),
        "last-month": ("range=last_month", last_month, month_start(t) - timedelta(days=1)),
        "custom": (f"range=custom&from={t - timedelta(days=39)}&to={t - timedelta(days=10)}",
                   t - timedelta(days=39), t - timedelta(days=10)),
    }  # fmt: skip


@pytest.fixture(scope="module")
def owner(demo_cloud, built_demo):
    client = signed_in(demo_cloud.url, built_demo.owner_email)
    yield client
    client.close()


def fetch_pdf(client, path: str) -> bytes:
    """A script's way (an API key): the .pdf URL answers with the PDF."""
    response = client.get(path, timeout=120)
    assert response.status_code == 200, response.text[:2000]
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return response.content


START_FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*data-pdf="\w+">(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def generate_pdf(client, path: str) -> bytes:
    """A signed-in browser's way: the .pdf URL leads to the page whose form (a POST with its CSRF token)
    starts a report job; the job is polled, then its PDF downloaded."""
    sent = client.get(path)
    assert sent.status_code == 303 and "/reports/new?" in sent.headers["location"], sent.text[:2000]
    page = client.get(sent.headers["location"])
    assert page.status_code == 200, page.text[:2000]
    action, inputs = START_FORM.search(page.text).groups()
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(inputs)}
    started = client.post(html.unescape(action), data=fields)
    assert started.status_code == 303, started.text[:2000]
    workspace, _, job_id = started.headers["location"].strip("/").split("/")
    deadline = time.monotonic() + 120
    while (job := client.get(f"/v1/{workspace}/reports/{job_id}").json())["state"] == "running":
        assert time.monotonic() < deadline, "the report job did not finish"
        time.sleep(0.1)
    assert job["state"] == "done", job
    return fetch_pdf(client, job["download_url"])


def lines_with(pages: list[str], *parts: str) -> list[tuple[int, str]]:
    """(page index, line) of every line that holds all `parts`."""
    return [
        (i, line)
        for i, text in enumerate(pages)
        for line in text.splitlines()
        if all(p in line for p in parts)
    ]


def row_on_one_page(pages: list[str], pattern: str) -> tuple[int, str]:
    """The one line matching `pattern`: a row is whole on one line of one page, never cut at a page break."""
    found = [
        (i, line) for i, text in enumerate(pages) for line in text.splitlines() if re.search(pattern, line)
    ]
    assert len(found) == 1, f"{pattern!r}: {found or 'not found'}"
    return found[0]


def certificates(built_demo) -> list[x509.Certificate]:
    pems = run(built_demo.database_url, lambda c: list_certificates(c, workspace_id=built_demo.workspace_id))
    return [x509.load_pem_x509_certificate(pem.encode()) for pem in pems]


def audited(built_demo, event: str, resource_id: str | None = None) -> list[tuple]:
    with psycopg.connect(built_demo.database_url) as conn:
        return conn.execute(
            "SELECT resource_id, actor_label, details FROM audit_events WHERE workspace_id = %s AND event = %s"
            " AND (%s::text IS NULL OR resource_id = %s) ORDER BY created_at",
            (built_demo.workspace_id, event, resource_id, resource_id),
        ).fetchall()


def assert_signed_and_audited(built_demo, pdf: bytes, kind: str, period: str | None = None) -> dict:
    # pyHanko and the async store functions run event loops of their own: in a thread of their own, so that
    # this also works inside a Playwright test (whose sync API keeps a loop running in the test's thread).
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(_signed_and_audited, built_demo, pdf, kind, period).result()


def _signed_and_audited(built_demo, pdf: bytes, kind: str, period: str | None) -> dict:
    check = verify_pdf(pdf, certificates(built_demo))
    assert check.ok, check
    panel = pdf_signatures(pdf)
    assert "Signature Validation: Signature is Valid." in panel and "Total document signed" in panel
    # One byte of the first page's content stream, covered by the signature, changed: the signature breaks.
    tampered = bytearray(pdf)
    tampered[pdf.index(b"stream\n", pdf.index(b"/Length")) + len(b"stream\n") + 40] ^= 0x01
    assert not verify_pdf(bytes(tampered), certificates(built_demo)).ok
    assert "Signature Validation: Digest Mismatch." in pdf_signatures(bytes(tampered))

    digest = hashlib.sha256(pdf).hexdigest()
    (row,) = audited(built_demo, "report.signed", digest)
    details = row[2]
    assert details["document_sha256"] == digest and details["kind"] == kind
    assert details["bytes"] == len(pdf) and details["pages"] == page_count(pdf)
    if period is not None:
        assert details["period"] == period
    return details


def assert_well_made(pdf: bytes, pages: list[str], workspace_name: str) -> None:
    total = len(pages)
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {total}" in text, f"page {number} has no 'Page n of N'"
        assert workspace_name in text, f"page {number} has no running header"
        assert "/docs/concepts/pricing" in text, f"page {number} has no methodology footer"
    fonts = pdf_fonts(pdf)
    assert fonts and all(f.embedded for f in fonts), fonts


@pytest.mark.parametrize("name", ["this-month", "last-month", "custom"])
def test_project_report_is_the_marts_signed(name, owner, built_demo, artifacts_dir: Path) -> None:
    query, first, last = periods()[name]
    ws = built_demo.slug
    pdf = generate_pdf(owner, f"/{ws}/projects/{PROJECT}/report.pdf?{query}")
    pngs = pdf_pages_png(pdf, artifacts_dir / "reports", prefix=f"project-{name}")
    pages = pdf_pages_text(pdf)
    assert len(pngs) == len(pages) == page_count(pdf) >= 2
    assert_well_made(pdf, pages, built_demo.demo.workspace.name)
    text = "\f".join(pages)

    where = "workspace_id = '{ws}' AND project = %(p)s AND day BETWEEN %(a)s AND %(b)s"
    args = {"p": PROJECT, "a": first, "b": last}
    spend, requests = built_demo.query(
        f"SELECT sum(spend_usd), sum(requests) FROM {{marts}}.daily_spend WHERE {where}", **args
    )[0]
    assert (
        "Acme batch summariser" in pages[0] and "$145.00 per hour" in pages[0] and "Client Work" in pages[0]
    )
    assert f"{first:%d %b %Y} \u2013 {last:%d %b %Y}" in pages[0]
    # The headline figures: spend, requests, cost per request.
    assert re.search(
        rf"{re.escape(money(spend))}\s+{requests:,}\s+{re.escape(unit_money(spend / requests))}", pages[0]
    ), pages[0]

    by_model = built_demo.query(
        f"SELECT model, sum(spend_usd) AS s, sum(requests) FROM {{marts}}.daily_spend WHERE {where}"
        " GROUP BY provider, model ORDER BY s DESC, provider, model", **args,
    )  # fmt: skip
    for model, model_spend, model_requests in by_model:
        row_on_one_page(
            pages,
            rf"^\s*{re.escape(model)}\s{{2,}}\S+\s+{model_requests:,}\s.*\s{re.escape(money(model_spend))}\s",
        )
    by_device = built_demo.query(
        f"SELECT device_id, sum(spend_usd) AS s, sum(requests) FROM {{marts}}.daily_spend WHERE {where}"
        " GROUP BY device_id ORDER BY s DESC, device_id", **args,
    )  # fmt: skip
    for _, device_spend, device_requests in by_device:
        assert lines_with(pages, "@acme.example", f" {device_requests:,} ", money(device_spend))

    # Every day of the period, whole on one line of one page, the table's header above it on that page.
    by_day = dict(built_demo.query(
        f"SELECT day, sum(spend_usd) FROM {{marts}}.daily_spend WHERE {where} GROUP BY day", **args
    ))  # fmt: skip
    day = first
    while day <= last:
        page, _ = row_on_one_page(
            pages, rf"^\s*{day:%a %d %b %Y}\s+[\d,]+\s.*\s{re.escape(money(by_day.get(day, Decimal(0))))}\s*$"
        )
        assert re.search(r"Day\s+Requests\s+.*Total", pages[page]), (
            f"page {page + 1} continues the table without its header"
        )
        day += timedelta(days=1)
    assert row_on_one_page(pages, rf"^\s*Total\s+{requests:,}\s.*\s{re.escape(money(spend))}\s*$")

    # The top prompt clusters, as the clusters page ranks them.
    clusters = built_demo.query(
        "SELECT prompt_hash, count() AS n, sum(cost_usd) AS s,"
        " s - argMin(cost_usd, (started_at, request_uid)) AS repeat_spend FROM {marts}.requests"
        f" WHERE {where} AND prompt_hash IS NOT NULL GROUP BY prompt_hash HAVING n >= 2"
        " ORDER BY repeat_spend DESC, n DESC, prompt_hash LIMIT 10", **args,
    )  # fmt: skip
    assert clusters, "the demo project repeats some prompts"
    for prompt_hash, n, cluster_spend, repeat in clusters:
        row_on_one_page(
            pages,
            rf"^\s*{prompt_hash[:12]}\s.*\s{n:,}\s+{re.escape(money(cluster_spend))}\s+{re.escape(money(repeat))}\s",
        )

    # The methodology: how, with which price card, and where to read more.
    cards = built_demo.query(
        f"SELECT DISTINCT price_card FROM {{marts}}.requests WHERE {where} AND price_card IS NOT NULL", **args
    )
    flat = " ".join(text.split())
    assert "How these costs are computed" in flat and all(card in flat for (card,) in cards)
    assert_signed_and_audited(built_demo, pdf, "project", f"{first.isoformat()}/{last.isoformat()}")


def test_executive_summary_is_the_marts_signed(owner, built_demo, artifacts_dir: Path) -> None:
    pdf = generate_pdf(owner, f"/{built_demo.slug}/executive.pdf")
    pdf_pages_png(pdf, artifacts_dir / "reports", prefix="executive")
    pages = pdf_pages_text(pdf)
    assert_well_made(pdf, pages, built_demo.demo.workspace.name)
    t = today()
    this_month, last_month, year = built_demo.query(
        "SELECT sumIf(spend_usd, day >= %(m)s), sumIf(spend_usd, day >= %(lm)s AND day < %(m)s),"
        " sumIf(spend_usd, day >= %(y)s) FROM {marts}.daily_spend WHERE workspace_id = '{ws}' AND day <= %(t)s",
        m=month_start(t), lm=previous_month(t), y=t.replace(month=1, day=1), t=t,
    )[0]  # fmt: skip
    assert re.search(
        rf"{re.escape(money(this_month))}\s+{re.escape(money(last_month))}\s+{re.escape(money(year))}",
        pages[0],
    ), pages[0]
    top = built_demo.query(
        "SELECT project, sum(spend_usd) AS s FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"
        " AND day >= %(d)s GROUP BY project ORDER BY s DESC, project LIMIT 3",
        d=t - timedelta(days=29),
    )
    names = {p.slug: p.name for p in built_demo.demo.projects}
    for project, spend in top:
        row_on_one_page(pages, rf"^\s*{re.escape(names[project])}\s+{re.escape(money(spend))}\s")
    monthly = dict(built_demo.query(
        "SELECT toStartOfMonth(day) AS m, sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"
        " GROUP BY m"
    ))  # fmt: skip
    month = month_start(t)
    for _ in range(12):
        row_on_one_page(
            pages, rf"^\s*{month:%B %Y}\b.*\s{re.escape(money(monthly.get(month, Decimal(0))))}\s*$"
        )  # this month's row says "(to <today>)": the \b lets it through
        month = previous_month(month)
    assert_signed_and_audited(built_demo, pdf, "executive")


def test_a_twelve_month_report_tables_every_month(owner, built_demo, artifacts_dir: Path) -> None:
    # Its time (queries + render + sign) is bench/pdf_render.py's to measure: no stopwatch in a test.
    t = today()
    first = t - timedelta(days=364)
    pdf = generate_pdf(
        owner, f"/{built_demo.slug}/projects/{PROJECT}/report.pdf?range=custom&from={first}&to={t}"
    )
    pages = pdf_pages_text(pdf)
    pdf_pages_png(pdf, artifacts_dir / "reports", prefix="project-12-months")
    # A year is charted and tabled by month: twelve or thirteen calendar months touched.
    monthly = dict(built_demo.query(
        "SELECT toStartOfMonth(day) AS m, sum(spend_usd) FROM {marts}.daily_spend WHERE workspace_id = '{ws}'"
        " AND project = %(p)s AND day >= %(a)s GROUP BY m", p=PROJECT, a=first,
    ))  # fmt: skip
    month = month_start(first)
    while month <= t:
        # The first and last months are partly in the period: their rows say from / to which day.
        part = (
            rf" \(from {first:%d %b}\)"
            if month < first
            else rf" \(to {t:%d %b}\)"
            if month == month_start(t) and (t + timedelta(days=1)).day != 1
            else ""
        )
        row_on_one_page(
            pages,
            rf"^\s*{month:%B %Y}{part}\s+[\d,]+\s.*\s{re.escape(money(monthly.get(month, Decimal(0))))}\s*$",
        )
        month = month_start(month + timedelta(days=31))


def test_generate_pdf_shows_progress_then_downloads(demo_page, built_demo, artifacts_dir: Path) -> None:
    page = demo_page.page
    for start, button in (
        (f"/{{ws}}/projects/{PROJECT}?range=last_month", "Generate PDF"),
        ("/{ws}/executive", "Download signed PDF"),
    ):
        demo_page.open(start)
        with page.expect_download(timeout=60_000) as info:
            page.click(f"form[data-pdf] button:has-text('{button}')")
            page.wait_for_url("**/reports/*")
            assert page.locator("h1").inner_text() == "Generating your PDF"
        download = info.value
        page.wait_for_selector("[data-report-download]:not([hidden])")
        assert "Ready" in page.locator("[data-report-status]").inner_text()
        demo_page.screenshot(
            artifacts_dir, f"report-progress-{'project' if 'projects' in start else 'executive'}"
        )
        pdf = Path(download.path()).read_bytes()
        assert download.suggested_filename.endswith(".pdf") and download.suggested_filename.startswith(
            built_demo.slug
        )
        assert_signed_and_audited(built_demo, pdf, "project" if "projects" in start else "executive")


def test_report_jobs_are_private_to_their_workspace(owner, demo_cloud, built_demo) -> None:
    ws = built_demo.slug
    project = f"/{ws}/projects/{PROJECT}?range=this_month"
    started = owner.post(
        f"/{ws}/reports/new?range=this_month",
        data={"csrf_token": csrf(owner, project), "kind": "project", "slug": PROJECT},
    )
    assert started.status_code == 303, started.text
    job_id = started.headers["location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 60
    while (job := owner.get(f"/v1/{ws}/reports/{job_id}").json())["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert (
        job["state"] == "done" and job["pages"] >= 2 and job["download_url"] == f"/{ws}/reports/{job_id}.pdf"
    )
    assert owner.get(job["download_url"]).content.startswith(b"%PDF-")

    stranger = Person(demo_cloud.url, f"stranger-{job_id[:6].lower()}@example.com").sign_up("Other Co")
    try:
        theirs = stranger.workspace_slug
        assert stranger.client.get(f"/v1/{theirs}/reports/{job_id}").status_code == 404
        assert stranger.client.get(f"/{theirs}/reports/{job_id}.pdf").status_code == 404
        assert stranger.client.get(f"/{theirs}/reports/{job_id}").status_code == 404
        assert stranger.client.get(f"/v1/{ws}/reports/{job_id}").status_code == 404  # not a member
    finally:
        stranger.client.close()
    # Bad requests say what is wrong.
    assert owner.get(f"/{ws}/reports/new?kind=project").status_code == 422
    assert owner.get(f"/{ws}/reports/new?kind=invoice").status_code == 422
    unknown = owner.get(f"/{ws}/projects/no-such-project/report.pdf")
    assert owner.get(unknown.headers["location"]).status_code == 404


def logo_png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (400, 120), colour).save(buffer, "PNG")
    return buffer.getvalue()


def colour_pixels(png: Path, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> int:
    counts = Image.open(png).convert("RGB").crop(box).getcolors(maxcolors=1 << 24) or []
    return sum(n for n, c in counts if all(abs(a - b) <= 10 for a, b in zip(c, colour, strict=True)))


def test_a_logo_uploaded_in_settings_is_drawn_in_the_reports(
    demo_cloud, built_demo, artifacts_dir: Path
) -> None:
    ws = built_demo.slug
    admin = signed_in(demo_cloud.url, "bram@acme.example")
    viewer = signed_in(demo_cloud.url, "hana@acme.example")
    settings = f"/{ws}/settings/advanced"
    try:
        refused = viewer.post(f"{settings}/logo", data={"csrf_token": csrf(viewer, settings)},
                              files={"logo": ("logo.png", logo_png(LOGO_MAGENTA), "image/png")})  # fmt: skip
        assert refused.status_code == 403, refused.text
        not_an_image = admin.post(f"{settings}/logo", data={"csrf_token": csrf(admin, settings)},
                                  files={"logo": ("logo.png", b"just some text\n" * 40, "image/png")})  # fmt: skip
        assert not_an_image.status_code == 422 and "not a PNG or JPEG" in not_an_image.text

        uploaded = admin.post(f"{settings}/logo", data={"csrf_token": csrf(admin, settings)},
                              files={"logo": ("acme.png", logo_png(LOGO_MAGENTA), "image/png")})  # fmt: skip
        assert uploaded.status_code == 303, uploaded.text
        assert "data-logo" in admin.get(settings).text
        assert admin.get(f"{settings}/logo").content == logo_png(LOGO_MAGENTA)
        assert audited(built_demo, "workspace.logo_updated")[-1][1] == "bram@acme.example"

        for name, path in (("project", f"/{ws}/projects/{PROJECT}/report.pdf?range=this_month"),
                           ("executive", f"/{ws}/executive.pdf")):  # fmt: skip
            pdf = generate_pdf(admin, path)
            pngs = pdf_pages_png(pdf, artifacts_dir / "reports", prefix=f"{name}-with-logo")
            for png in pngs:  # the running header of every page: its top 70 points
                width = Image.open(png).width
                assert colour_pixels(png, LOGO_MAGENTA, (0, 0, width // 2, 80)) > 150, (
                    f"no logo in {png.name}"
                )
            assert colour_pixels(pngs[0], LOGO_MAGENTA, (0, 80, width, Image.open(pngs[0]).height)) == 0
    finally:
        removed = admin.post(f"{settings}/logo/remove", data={"csrf_token": csrf(admin, settings)})
        admin.close()
        viewer.close()
    assert removed.status_code == 303
    assert audited(built_demo, "workspace.logo_removed")
    owner = signed_in(demo_cloud.url, built_demo.owner_email)
    pdf = generate_pdf(owner, f"/{ws}/executive.pdf")
    owner.close()
    (png, *_) = pdf_pages_png(pdf, artifacts_dir / "reports", prefix="executive-logo-removed")
    assert colour_pixels(png, LOGO_MAGENTA, (0, 0, 400, 80)) == 0


def test_a_script_fetches_a_signed_report_with_an_api_key(owner, demo_cloud, built_demo) -> None:
    ws = built_demo.slug
    settings = f"/{ws}/settings/advanced"
    created = owner.post(
        f"{settings}/api-keys", data={"csrf_token": csrf(owner, settings), "name": "board pack script"}
    )
    key = re.search(r'value="(hm_key_[A-Za-z0-9]+)"', created.text).group(1)
    script = httpx.Client(base_url=demo_cloud.url, headers={"authorization": f"Bearer {key}"}, timeout=120)
    try:
        pdf = fetch_pdf(script, f"/{ws}/executive.pdf?range=last_month")
        # The progress flow is for people in a browser: a script is sent to sign in.
        assert script.get(f"/{ws}/reports/new?kind=executive").headers["location"].startswith("/signin")
        # Whoever receives the pack can have it checked: these exact bytes, signed and issued here.
        checked = script.post(
            f"/v1/{ws}/reports/verify", content=pdf, headers={"content-type": "application/pdf"}
        ).json()
        assert checked["verified"] and checked["sha256"] == hashlib.sha256(pdf).hexdigest(), checked
        assert checked["issued"]["kind"] == "executive" and checked["issued"]["issued_by"].startswith(
            "board pack script"
        )
    finally:
        script.close()
    details = assert_signed_and_audited(built_demo, pdf, "executive")
    assert details["filters"] == {"range": "last_month"}
    (row,) = audited(built_demo, "report.signed", hashlib.sha256(pdf).hexdigest())
    assert row[1].startswith("board pack script")
