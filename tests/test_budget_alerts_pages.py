"""The budget alert settings in a real browser: an owner sets a budget's thresholds on Projects & budgets and the
channels on Settings: Alerts; both pages render without a console error (screenshots in test-artifacts/)."""

from __future__ import annotations

from cloud_support import PASSWORD, DashboardPage


def test_an_owner_sets_thresholds_and_channels(cloud, person, chromium, artifacts_dir) -> None:
    slug = person.workspace_slug
    projects = f"/{slug}/settings/projects"
    assert (
        person.post_form(f"/{slug}/settings/budgets", projects, {"monthly_amount": "1500"}).status_code == 303
    )
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, base_url=cloud.url)
    browser = DashboardPage(context.new_page(), None)
    try:
        browser.sign_in(person.email, PASSWORD)
        page = browser.page
        page.goto(projects)
        form = page.locator("form[data-budget-alerts=workspace]")
        form.locator("input[name=thresholds]").fill("25, 50, 90")
        form.locator("button[type=submit]").click()
        page.wait_for_url(f"**{projects}**")
        assert (
            page.locator("form[data-budget-alerts=workspace] input[name=thresholds]").input_value()
            == "25, 50, 90"
        )
        browser.screenshot(artifacts_dir, "budget-thresholds")
        page.goto(f"/{slug}/settings/alerts")
        page.fill("input[name=webhook_url]", "https://hooks.example.com/services/T0/B0/X")
        page.fill("input[name=webhook_secret]", "whsec-from-the-browser")
        page.fill("input[name=smtp_host]", "smtp.example.com")
        page.fill("input[name=smtp_port]", "587")
        page.fill("input[name=smtp_to]", "finance@example.com")
        page.click("button:has-text('Save channels')")
        page.wait_for_url("**/settings/alerts**")
        assert page.locator("input[name=webhook_url]").input_value().startswith("https://hooks.example.com")
        assert "whsec-from-the-browser" not in page.content()
        browser.screenshot(artifacts_dir, "budget-alert-channels")
    finally:
        context.close()
    assert browser.errors == [], browser.errors
