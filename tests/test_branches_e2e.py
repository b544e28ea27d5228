"""Cost by branch, ticket and tool, end to end (issue 24): calls made with the official Anthropic SDK from
processes started in two git worktrees of one repository (and its main checkout), through a real meter paired
with the real cloud, split by branch and ticket in `halton-meter report`, in the marts Dagster builds, and on the
Branches & tickets view and its JSON twin.

Each SDK process stays alive (blocked on its stdin) until its calls are stored, as a developer's tool does:
the meter finds the caller's working directory through /proc while the connection is open.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from test_pairing_e2e import connect, machine_id_of, new_meter, warehouse_rows

from cloud_support import PASSWORD, DashboardPage, build_marts
from halton_meter.testing.git_repos import git
from halton_meter.testing.processes import MeterProcess, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the meter reads /proc")

CALLER = """
import sys, anthropic
client = anthropic.Anthropic(base_url=sys.argv[1], api_key="sk-ant-test", max_retries=0)
for i in range(int(sys.argv[2])):
    client.messages.create(
        model="claude-sonnet-4-5", max_tokens=16, messages=[{"role": "user", "content": f"step {i}"}]
    )
print("called", flush=True)
sys.stdin.readline()
"""
# (folder, branch, calls): two worktrees on ticket branches, and the main checkout on a branch with no ticket.
CHECKOUTS = (("wt-cart", "feature/SHOP-101-cart", 3), ("wt-tax", "bugfix/SHOP-202-tax", 1), (None, "main", 2))


def checkouts(tmp_path: Path) -> dict[str, Path]:
    """The repository `shop` and two worktrees of it, elsewhere on disk: branch -> folder."""
    repo = tmp_path / "src" / "shop"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "README").write_text("shop\n")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "first")
    folders = {}
    for folder, branch, _ in CHECKOUTS:
        if folder is None:
            folders[branch] = repo
            continue
        git(repo, "worktree", "add", "-q", "-b", branch, str(tmp_path / "worktrees" / folder))
        folders[branch] = tmp_path / "worktrees" / folder
    return folders


def call_from(folder: Path, meter: MeterProcess, calls: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CALLER, f"http://127.0.0.1:{meter.port}/anthropic", str(calls)],
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "called", "the SDK calls failed"
    return process


def by(report: dict, dimension: str) -> dict[str, tuple[int, Decimal]]:
    return {g["key"]: (g["calls"], Decimal(g["cost_usd"])) for g in report[f"by_{dimension}"]}


def test_spend_splits_by_branch_and_ticket_from_the_meter_to_the_view(
    tmp_path, cloud, person, providers, warehouse, postgres_url, chromium, artifacts_dir
):
    folders = checkouts(tmp_path)
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    with meter.running():
        connect(meter, person, cloud)
        callers = [call_from(folders[branch], meter, calls) for _, branch, calls in CHECKOUTS]
        try:
            wait_for(
                lambda: meter.json("report", "today")["totals"]["calls"] == 6,
                timeout=30,
                what="6 calls stored",
            )
        finally:
            for caller in callers:
                caller.communicate("\n", timeout=30)

        # The meter's own report, offline.
        report = meter.json(
            "report", "today", "--by", "branch", "--by", "ticket", "--by", "tool", "--by", "repository"
        )
        branches = by(report, "branch")
        assert {b: n for b, (n, _) in branches.items()} == {
            "feature/SHOP-101-cart": 3,
            "main": 2,
            "bugfix/SHOP-202-tax": 1,
        }
        assert all(cost > 0 for _, cost in branches.values())
        tickets = by(report, "ticket")
        assert {t: n for t, (n, _) in tickets.items()} == {"SHOP-101": 3, "(none)": 2, "SHOP-202": 1}
        assert set(by(report, "repository")) == {"shop"}
        assert set(by(report, "tool")) == {"anthropic-python"}
        wait_for(lambda: warehouse_rows(warehouse, machine)[0] == 6, timeout=60, what="6 rows in ClickHouse")

    # The marts, as Dagster builds them.
    build_marts(warehouse, postgres_url, as_of=datetime.now(UTC).date())
    marts = warehouse.databases.marts
    client = warehouse.client()
    rows = client.query(
        f"SELECT repository, branch, ticket, tool, sum(requests), sum(spend_usd) FROM {marts}.branch_spend"
        " GROUP BY repository, branch, ticket, tool ORDER BY branch"
    ).result_rows
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        ("shop", "bugfix/SHOP-202-tax", "SHOP-202", "anthropic-python", 1),
        ("shop", "feature/SHOP-101-cart", "SHOP-101", "anthropic-python", 3),
        ("shop", "main", "", "anthropic-python", 2),
    ]
    # The marts price the calls as the meter did, branch by branch.
    assert {r[1]: r[5] for r in rows} == {b: cost for b, (_, cost) in branches.items()}
    tickets_mart = client.query(
        f"SELECT ticket, requests, branches, devices FROM {marts}.ticket_spend ORDER BY ticket"
    ).result_rows
    assert tickets_mart == [("SHOP-101", 3, 1, 1), ("SHOP-202", 1, 1, 1)]

    # The JSON twin of the Branches & tickets view, whole and filtered by a ticket through the rail.
    slug = person.workspace_slug
    view = person.client.get(f"/v1/{slug}/branches").json()
    assert {t["key"]: t["requests"] for t in view["tickets"]} == {"SHOP-101": 3, "SHOP-202": 1}
    assert {b["key"]: b["requests"] for b in view["branches"]} == {
        "feature/SHOP-101-cart": 3,
        "main": 2,
        "bugfix/SHOP-202-tax": 1,
    }
    assert Decimal(view["totals"]["on_tickets_usd"]) == tickets["SHOP-101"][1] + tickets["SHOP-202"][1]
    assert {c["value"] for c in view["choices"]["ticket"]} == {"SHOP-101", "SHOP-202"}
    one = person.client.get(f"/v1/{slug}/branches", params={"ticket": "SHOP-101"}).json()
    assert [b["key"] for b in one["branches"]] == ["feature/SHOP-101-cart"]
    assert Decimal(one["totals"]["spend_usd"]) == tickets["SHOP-101"][1]
    # Clusters and the request list filter by branch too; views over day-level marts refuse (422), saying where to go.
    assert person.client.get(f"/v1/{slug}/clusters", params={"branch": "main"}).status_code == 200
    refused = person.client.get(f"/v1/{slug}/overview", params={"ticket": "SHOP-101"})
    assert refused.status_code == 422 and "Branches & tickets" in refused.text

    page = person.client.get(f"/{slug}/branches", params={"ticket": "SHOP-101"})
    assert page.status_code == 200
    assert 'data-table="tickets"' in page.text and "feature/SHOP-101-cart" in page.text
    assert "bugfix/SHOP-202-tax" not in page.text.split('data-table="branches"')[1]

    # In a browser: the view, then one ticket picked from the rail (console errors fail the test).
    context = chromium.new_context(viewport={"width": 1440, "height": 1000}, base_url=cloud.url)
    browser = DashboardPage(context.new_page(), None)
    try:
        browser.sign_in(person.email, PASSWORD)
        opened = browser.page.goto(f"/{slug}/branches")
        assert opened is not None and opened.ok
        assert [row[0] for row in browser.table("tickets")] == ["SHOP-101", "SHOP-202"]
        assert sorted(row[1] for row in browser.table("branches")) == [
            "bugfix/SHOP-202-tax",
            "feature/SHOP-101-cart",
            "main",
        ]
        browser.screenshot(artifacts_dir, "branches")
        browser.page.click("details.multi summary:has-text('Ticket')")
        browser.page.check("input[name=ticket][value=SHOP-202]")
        browser.page.keyboard.press("Escape")  # the list closes, as a select's would
        browser.page.click("form[data-rail] button[type=submit]")
        browser.page.wait_for_url("**ticket=SHOP-202**")
        assert [row[1] for row in browser.table("branches")] == ["bugfix/SHOP-202-tax"]
        browser.screenshot(artifacts_dir, "branches-one-ticket")
    finally:
        context.close()
    assert browser.errors == [], browser.errors
