"""Security headers on every response: the pages' Content-Security-Policy, no framing, no sniffing, a short
referrer; /docs with a policy of its own. (That the pages raise no CSP violation in a browser is checked on
the demo workspace, in tests/test_dashboard_security.py.)"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi.testclient import TestClient

from halton_api import charts
from halton_api.pages import TEMPLATES_DIR
from halton_api.testing.factories import Browser, batch, bearer, make_device, make_user, make_workspace

PDF_TEMPLATES = {"reports/_base.html", "reports/project.html", "reports/executive.html"}
EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def test_every_kind_of_response_carries_the_headers(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    device = make_device(postgres_url, workspace=workspace, paired_by=owner)
    browser = Browser(client, postgres_url, owner)
    responses = {
        "page": browser.get(f"/{workspace.slug}/settings/devices"),
        "sign-in page": client.get("/signin"),
        "redirect": client.get(f"/{workspace.slug}/overview"),
        "json": client.get("/healthz"),
        "static": client.get("/static/halton.css"),
        "not found": client.get("/no/such/page/at/all"),
        "refused": client.get("/healthz?x=%00"),
        "unauthorised batch": client.post("/v1/requests/batch", json={}, headers=bearer("hm_sync_nope")),
        "batch": client.post(
            "/v1/requests/batch", json=batch(device.device.machine_id, rows=3), headers=bearer(device.token)
        ),
    }
    assert responses["batch"].status_code == 200, responses["batch"].text
    for name, response in responses.items():
        for header, value in EXPECTED.items():
            assert response.headers.get(header) == value, (name, header, response.headers)
        policy = _directives(response.headers["content-security-policy"])
        assert policy["frame-ancestors"] == "'none'" and policy["script-src"] == "'self'", name
        assert policy["style-src"] == "'self'" and policy["form-action"] == "'self'", name
        assert policy["connect-src"] == "'self' http://127.0.0.1:8090", name  # "Pair this machine"


def test_docs_get_their_own_policy_that_allows_exactly_their_inline_script(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    policy = _directives(docs.headers["content-security-policy"])
    (script,) = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in policy["script-src"] and "'unsafe-inline'" not in policy["script-src"]
    assert policy["frame-ancestors"] == "'none'" and docs.headers["x-frame-options"] == "DENY"
    # No OAuth2 here: FastAPI's redirect page (another inline script) is not served.
    assert "/docs/oauth2-redirect" not in {getattr(route, "path", "") for route in client.app.routes}


def test_no_page_template_holds_inline_script_or_style() -> None:
    """The browser check visits the main pages; this guards the ones it does not reach. The report templates
    are for WeasyPrint (no browser, no policy) and keep their <style>."""
    inline = re.compile(
        r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE
    )
    offenders = [
        f"{path.relative_to(TEMPLATES_DIR)}: {match.group(0)}"
        for path in TEMPLATES_DIR.rglob("*.html")
        if path.relative_to(TEMPLATES_DIR).as_posix() not in PDF_TEMPLATES
        for match in inline.finditer(path.read_text())
    ]
    assert offenders == []
    chart = charts.stacked_area(
        ["a", "b"],
        [charts.Series("openai", [1, 2])],
        title="t",
        baseline=charts.Series("before", [2, 1]),
    )
    assert " style=" not in chart and "<style" not in chart
