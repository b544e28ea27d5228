"""The pricing methodology page in a real browser, signed out, as a reader of a PDF report reaches it."""

from __future__ import annotations

from cloud_support import CloudProcess, DashboardPage
from halton_api.pdf.reports import METHODOLOGY_PATH
from halton_meter.catalogue import load_catalogue


def test_the_pdf_footer_link_opens_the_pricing_page(chromium, cloud: CloudProcess, artifacts_dir) -> None:
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=cloud.url)
    page = DashboardPage(context.new_page(), demo=None)
    # The footer of every PDF report links to public_url + METHODOLOGY_PATH; the cloud's public URL is its own.
    response = page.page.goto(f"{cloud.env['HALTON_PUBLIC_URL']}{METHODOLOGY_PATH}")
    assert response is not None and response.status == 200
    tab = page.page
    assert tab.locator("h1").inner_text() == "How Halton Meter prices a call"
    assert tab.locator("[data-catalogue-version]").inner_text() == load_catalogue().version
    assert tab.locator("nav.sidebar").count() == 0  # signed out: no workspace navigation
    sonnet = tab.locator('tr[data-model="anthropic/claude-sonnet-5"]')
    assert sonnet.locator('[data-rate="standard|input"]').inner_text() == "$2"
    assert sonnet.locator('[data-rate="batch|output"]').inner_text() == "$5"
    assert "every token rate multiplied by 1.1" in sonnet.inner_text()
    tab.click("a[href='#provider-xai']")
    assert tab.locator('tr[data-model="xai/grok-4.5"]').is_visible()
    # The stylesheet applied (the page policy allows only this origin's CSS): panels have their border.
    border = tab.locator("section.panel").first.evaluate("e => getComputedStyle(e).borderTopStyle")
    assert border == "solid"
    tab.evaluate("window.scrollTo(0, 0)")
    tab.screenshot(path=str(artifacts_dir / "pricing-page.png"))
    sonnet.scroll_into_view_if_needed()
    tab.screenshot(path=str(artifacts_dir / "pricing-page-models.png"))
    context.close()
    assert page.errors == [], f"console errors: {page.errors}"
