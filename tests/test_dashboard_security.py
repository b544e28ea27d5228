"""The pages work under their Content-Security-Policy, in headless Chromium: every main page of the demo
workspace, the filter rail, a report's progress and download, and "Pair this machine" with a real meter raise
no `securitypolicyviolation` and no console error. Screenshots go to test-artifacts/security/."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_support import PASSWORD, CloudProcess, DashboardPage, Person
from halton_api.dashboards.filters import previous_month
from halton_meter.testing.processes import MeterProcess, wait_for

PROJECT = "acme-batch-summariser"
# Every violation, reported from the page to the test as it happens (set before any page loads).
WATCH = """
document.addEventListener("securitypolicyviolation", (e) => window.cspViolation({
  page: location.pathname, directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample,
  source: e.sourceFile + ":" + e.lineNumber,
}));
"""


def watch(context) -> list[dict]:
    violations: list[dict] = []
    context.expose_binding("cspViolation", lambda source, violation: violations.append(violation))
    context.add_init_script(WATCH)
    return violations


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "security"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.browser
def test_the_dashboard_pages_raise_no_csp_violation(
    demo_page: DashboardPage, built_demo, shots: Path
) -> None:
    violations = watch(demo_page.page.context)
    page = demo_page.page
    ((trace,),) = built_demo.query(
        "SELECT toString(request_uid) FROM {marts}.requests WHERE workspace_id = '{ws}'"
        " ORDER BY started_at DESC LIMIT 1"
    )
    month = previous_month(datetime.now(UTC).date()).strftime("%Y-%m")
    paths = {
        "overview": "/{ws}/overview",
        "executive": "/{ws}/executive",
        "projects": "/{ws}/projects",
        "project": f"/{{ws}}/projects/{PROJECT}?range=7d",
        "cost-centers": "/{ws}/cost-centers",
        "clusters": "/{ws}/clusters",
        "optimization": "/{ws}/optimization",
        "optimization-savings": "/{ws}/optimization/savings",
        "optimization-catalog": "/{ws}/optimization/catalog",
        "reconciliation": "/{ws}/reconciliation",
        "reconciliation-month": f"/{{ws}}/reconciliation/{month}",
        "audit": "/{ws}/audit",
        "audit-requests": "/{ws}/audit/requests",
        "trace": f"/{{ws}}/traces/{trace}",
        "settings-devices": "/{ws}/settings/devices",
        "settings-members": "/{ws}/settings/members",
        "settings-projects": "/{ws}/settings/projects",
        "settings-advanced": "/{ws}/settings/advanced",
        "settings-exports": "/{ws}/settings/exports",
        "workspaces": "/workspaces",
        "report-form": f"/{{ws}}/reports/new?kind=project&slug={PROJECT}",
    }
    for name, path in paths.items():
        response = demo_page.open(path)
        assert "content-security-policy" in response.headers, path
        page.wait_for_load_state("networkidle")
        if name in ("overview", "executive", "project", "settings-advanced", "trace", "report-form"):
            demo_page.screenshot(shots, name)
    assert violations == [], violations
    # No meter runs beside the demo cloud: pair.js's probe of its loopback URL is refused (a network error,
    # not a policy one; the pairing test below has a meter).
    demo_page.errors[:] = [e for e in demo_page.errors if "ERR_CONNECTION_REFUSED" not in e]

    # An error page (its "Go back" is static/back.js now, not a javascript: link).
    missing = page.goto(f"/{built_demo.slug}/traces/00000000-0000-4000-8000-000000000000")
    assert missing is not None and missing.status == 404
    demo_page.screenshot(shots, "error-page")
    page.click("a[data-back]")
    page.wait_for_url("**/reports/new**")  # where we came from
    demo_page.errors[:] = [e for e in demo_page.errors if "status of 404" not in e]  # the page we asked for

    # The filter rail: a tick and Apply; a range that submits itself (rail.js); custom dates shown.
    demo_page.open("/{ws}/overview")
    page.locator("details.multi summary", has_text="Provider").click()
    page.check("input[name=provider][value=anthropic]")
    page.click("form[data-rail] button[type=submit]")
    page.wait_for_url("**provider=anthropic**")
    page.check("input[name=range][value='7d']")
    page.wait_for_url("**range=7d**")
    page.check("input[name=range][value=custom]")
    assert page.locator("[data-custom]").is_visible()
    demo_page.screenshot(shots, "overview-filtered")

    # A report: the form's POST, its progress page polling, the download.
    demo_page.open("/{ws}/executive?range=last_month")
    with page.expect_download(timeout=60_000) as download:
        page.click("form[data-pdf] button")
        page.wait_for_url("**/reports/*")
    page.wait_for_selector("[data-report-download]:not([hidden])")
    demo_page.screenshot(shots, "report-progress")
    assert download.value.suggested_filename.endswith(".pdf")
    assert violations == [], violations


@pytest.mark.browser
def test_pair_this_machine_works_under_the_csp(
    postgres_url: str, warehouse, tmp_path: Path, chromium, shots: Path
) -> None:
    """The devices page finds the meter on this machine (connect-src allows its loopback URL), the meter pairs
    with the cloud this page belongs to (its Origin is the base_url's), and the page approves the code."""
    cloud = CloudProcess.on_stores(
        tmp_path, database_url=postgres_url, warehouse_url=warehouse.url, prefix=warehouse.prefix
    )
    # The meter is configured for another cloud: it pairs with this one because this page asks it to.
    (tmp_path / "laptop").mkdir()
    meter = MeterProcess(tmp_path / "laptop", base_url="https://api.haltonmeter.com", dashboard=cloud.url)
    cloud.env["HALTON_METER_LOOPBACK_URL"] = f"http://127.0.0.1:{meter.port}"
    cloud.start()
    person = Person(cloud.url, f"pat-{secrets.token_hex(3)}@example.com").sign_up("Pairing Co")
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=cloud.url)
    violations = watch(context)
    errors: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        with meter.running():
            open_devices_page_offering_to_pair(page, person)
            page.screenshot(path=str(shots / "pair-this-machine.png"), full_page=True)
            page.click("[data-action=pair]")
            # (A locator: Playwright's wait_for_function evaluates a string, which this CSP rightly refuses.)
            page.locator("[data-field=pair-result]", has_text="Paired: code").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "pair-this-machine-paired.png"), full_page=True)
            wait_for(
                lambda: meter.json("cloud", "status")["state"] == "ACTIVE",
                timeout=30,
                what="the meter to pair through the page",
            )
            assert meter.json("cloud", "status")["base_url"] == cloud.url
            # The new device is in the table without a reload (the result line would be gone after one)...
            machine = meter.json("cloud", "status")["machine_id"]
            page.locator(f"#devices-list tr[data-machine-id='{machine}'][data-status=active]").wait_for()
            assert "Paired: code" in page.inner_text("[data-field=pair-result]")
            assert page.locator("[data-action=pair]").is_hidden()
            # ...and once paired here, the page no longer offers to pair this machine.
            page.reload()
            page.locator("[data-field=pair-result]", has_text="already paired with this workspace").wait_for()
            assert page.locator("[data-action=pair]").is_hidden()
            assert "paired to " + person.workspace_slug in page.inner_text("[data-field=meter-state]")
            page.screenshot(path=str(shots / "pair-this-machine-already-paired.png"), full_page=True)
    finally:
        context.close()
        person.client.close()
        cloud.stop()
    assert violations == [] and errors == [], (violations, errors)


@pytest.mark.browser
def test_self_hosted_pair_this_machine_needs_only_the_cloud_url(
    postgres_url: str, warehouse, tmp_path: Path, chromium, shots: Path
) -> None:
    """A self-hosted cloud and a meter whose config names that cloud and nothing else (no dashboard_origin):
    the meter lets the cloud's own pages call it, so "Pair this machine" pairs it."""
    cloud = CloudProcess.on_stores(
        tmp_path, database_url=postgres_url, warehouse_url=warehouse.url, prefix=warehouse.prefix
    )
    (tmp_path / "laptop").mkdir()
    meter = MeterProcess(tmp_path / "laptop", base_url=cloud.url, dashboard=None)
    assert "dashboard_origin" not in meter.paths.config.read_text()
    # The one cloud setting is where the meter listens: its default (127.0.0.1:8090) is right for a real
    # machine; here the meter takes a free port, as other tests share this machine.
    cloud.env["HALTON_METER_LOOPBACK_URL"] = f"http://127.0.0.1:{meter.port}"
    cloud.start()
    person = Person(cloud.url, f"sam-{secrets.token_hex(3)}@example.com").sign_up("Self Hosted Co")
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=cloud.url)
    violations = watch(context)
    page = context.new_page()
    try:
        with meter.running():
            open_devices_page_offering_to_pair(page, person)
            page.click("[data-action=pair]")
            page.locator("[data-field=pair-result]", has_text="Paired: code").wait_for(timeout=30_000)
            page.screenshot(path=str(shots / "pair-this-machine-self-hosted.png"), full_page=True)
            wait_for(
                lambda: meter.json("cloud", "status")["state"] == "ACTIVE",
                timeout=30,
                what="the meter to pair through the self-hosted page",
            )
            assert meter.json("cloud", "status")["base_url"] == cloud.url
    finally:
        context.close()
        person.client.close()
        cloud.stop()
    assert violations == [], violations


def open_devices_page_offering_to_pair(page, person: Person) -> None:
    """Sign in, open the devices page and wait until it has found the unpaired meter on this machine."""
    page.goto("/signin")
    page.fill("input[name=email]", person.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/overview**")
    page.goto(f"/{person.workspace_slug}/settings/devices")
    page.wait_for_selector("#pair-this-machine:not([hidden])")
    assert "NOT-CONFIGURED" in page.inner_text("[data-field=meter-state]")
