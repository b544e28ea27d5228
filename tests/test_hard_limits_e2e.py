"""The opt-in hard stop at the meter, end to end (issue 24): an owner marks a project's budget as a hard limit;
a real meter paired with the real cloud learns it with the month-to-date spend the marts hold, and answers the
project's calls with the provider's own 429 through the official Anthropic and OpenAI SDKs; the override
header and `halton-meter override` each pass one call; every block and override reaches the cloud's audit
log; with the cloud gone for longer than the freshness window, calls pass and `status` says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import openai
import pytest
from test_pairing_e2e import connect, machine_id_of, provider_config, warehouse_rows

from cloud_support import build_marts
from halton_meter.testing.processes import MeterProcess, wait_for

FRESH_MINUTES = 0.5  # the freshness window, short for the test: 30 s without a figure and calls pass
EXPENSIVE = json.dumps({"input_tokens": 20_000})  # the fake's usage knob: about $0.06 at Sonnet's rates
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def limited_meter(tmp_path, cloud, providers) -> MeterProcess:
    proxy, tables = provider_config(providers)
    (tmp_path / "laptop").mkdir()
    limits = f"[limits]\nfresh_minutes = {FRESH_MINUTES}\nrefresh_seconds = 0.2\n"
    return MeterProcess(
        tmp_path / "laptop",
        base_url=cloud.url,
        dashboard=cloud.url,
        proxy_config=proxy,
        extra_config=tables + limits,
    )


def sdk_clients(meter: MeterProcess) -> tuple[anthropic.Anthropic, openai.OpenAI]:
    tagged = {"X-Halton-Project": "shop"}
    base = f"http://127.0.0.1:{meter.port}"
    return (
        anthropic.Anthropic(base_url=f"{base}/anthropic", api_key="sk-ant-test", default_headers=tagged),
        openai.OpenAI(base_url=f"{base}/openai/v1", api_key="sk-test", default_headers=tagged),
    )


def limits_of(meter: MeterProcess) -> dict:
    return meter.json("status")["limits"]


def rows_of(meter: MeterProcess) -> int:
    return meter.json("report", "today")["totals"]["calls"]


def audit_events(person, event: str) -> list[dict]:
    page = person.client.get(f"/v1/{person.workspace_slug}/audit", params={"q": event, "limit": 100}).json()
    return [e for e in page["events"] if e["event"] == event]


def test_hard_limit_blocks_overrides_audits_and_stands_down_without_the_cloud(
    tmp_path, cloud, person, providers, warehouse, postgres_url
):
    meter = limited_meter(tmp_path, cloud, providers)
    slug = person.workspace_slug
    with meter.running():
        connect(meter, person, cloud)
        claude, gpt = sdk_clients(meter)
        # One expensive call of project `shop`, synced and in the marts: this month's spend the budget card shows.
        claude.messages.create(**MESSAGE, extra_headers={"x-fake-usage": EXPENSIVE})
        wait_for(
            lambda: warehouse_rows(warehouse, machine_id_of(meter))[0] == 1,
            timeout=60,
            what="the row in ClickHouse",
        )
        build_marts(warehouse, postgres_url, as_of=datetime.now(UTC).date())
        spent = Decimal(meter.json("report", "today")["totals"]["cost_usd"])
        assert spent > Decimal("0.02")

        # The owner sets a $0.02 budget for `shop` and marks it as a hard limit (off by default).
        project = next(p for p in person.client.get(f"/v1/{slug}/projects").json() if p["slug"] == "shop")
        page = f"/{slug}/settings/projects"
        assert (
            person.post_form(
                f"/{slug}/settings/budgets", page, {"project_id": project["id"], "monthly_amount": "0.02"}
            ).status_code
            == 303
        )
        budget = next(
            b for b in person.client.get(f"/v1/{slug}/budgets").json() if b["project_slug"] == "shop"
        )
        assert budget["hard_limit"] is False
        turned = person.post_form(
            f"/{slug}/settings/budgets/limit", page, {"budget_id": budget["id"], "limit": "on"}
        )
        assert turned.status_code == 303
        assert "A hard limit makes paired meters" in person.client.get(page).text
        wait_for(lambda: limits_of(meter)["enforcing"], timeout=30, what="the meter to enforce the limit")
        (shop,) = limits_of(meter)["projects"]
        assert (
            shop["project"] == "shop"
            and shop["reached"]
            and Decimal(shop["cloud_month_to_date_usd"]) == spent
        )

        # At the limit: each official SDK raises its RateLimitError (429) naming the project; nothing is forwarded.
        with pytest.raises(anthropic.RateLimitError) as blocked:
            claude.messages.create(**MESSAGE)
        assert blocked.value.status_code == 429 and "'shop'" in blocked.value.message
        with pytest.raises(openai.RateLimitError) as blocked_gpt:
            gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert blocked_gpt.value.status_code == 429 and "'shop'" in blocked_gpt.value.message

        # The override header passes that one call; the next is refused again.
        passed = claude.messages.create(**MESSAGE, extra_headers={"X-Halton-Override": "budget"})
        assert passed.content
        with pytest.raises(anthropic.RateLimitError):
            claude.messages.create(**MESSAGE)
        # `halton-meter override shop` passes exactly the next call.
        assert meter.cli("override", "shop").returncode == 0
        assert gpt.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ).choices
        with pytest.raises(openai.RateLimitError):
            gpt.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        # The two calls let through are stored; the four refused never reached the provider and are not rows.
        wait_for(lambda: rows_of(meter) == 3, timeout=30, what="the two calls let through stored")

        # Every block and override lands in the cloud's audit log: device, project, provider, model, time.
        wait_for(
            lambda: (
                len(audit_events(person, "budget.call_blocked")) == 4
                and len(audit_events(person, "budget.call_overridden")) == 2
            ),
            timeout=60,
            what="4 blocks and 2 overrides in the audit log",
        )
        overrides = audit_events(person, "budget.call_overridden")
        assert {(e["details"]["via"], e["details"]["provider"]) for e in overrides} == {
            ("header", "anthropic"),
            ("command", "openai"),
        }
        blocks = audit_events(person, "budget.call_blocked")
        assert {e["details"]["model"] for e in blocks} == {"claude-sonnet-4-5", "gpt-4o"}
        assert all(
            e["actor_type"] == "device" and e["resource_label"] == "shop" and e["details"]["at"]
            for e in blocks
        )
        assert audit_events(person, "budget.limit_on")[0]["actor_type"] == "user"
        assert rows_of(meter) == 3

        # The cloud goes away for longer than the freshness window: the meter stops enforcing and says why.
        cloud.stop()
        wait_for(
            lambda: not limits_of(meter)["enforcing"],
            timeout=4 * 60 * FRESH_MINUTES + 30,
            what="a stale figure",
        )
        summary = limits_of(meter)["summary"]
        assert summary.startswith("not enforcing: last spend figure") and "cloud unreachable" in summary, (
            summary
        )
        assert claude.messages.create(
            **MESSAGE
        ).content  # the project is still over its budget: the call passes
        text = " ".join(meter.cli("status").stdout.split())  # the table wraps long lines
        assert "hard limits not enforcing: last spend figure" in text and "cloud unreachable" in text, text
