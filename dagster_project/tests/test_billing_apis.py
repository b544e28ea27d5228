"""Billing API clients against the fake providers on 127.0.0.1: documented JSON, pages, 429s, 5xx, refusals."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from halton_meter.billing_apis.anthropic_billing import AnthropicBillingClient
from halton_meter.billing_apis.billing_contract import BillingAPIError, Credentials
from halton_meter.billing_apis.billing_http import RetryPolicy
from halton_meter.billing_apis.openai_billing import OpenAIBillingClient
from halton_meter.billing_apis.recorded_billing import RecordedBillingClient
from halton_meter.billing_apis.xai_billing import XAIBillingClient
from halton_pipelines.testing.fake_billing import FakeBilling, FakeCost, FakeUsage, Organisation, serve

DAY = date(2026, 10, 1)


def _retry(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=4, backoff_seconds=0.01, sleep=sleeps.append)


@pytest.fixture
def fake():
    billing = FakeBilling(page_size=2)
    billing.add("sk-openai", Organisation("openai", costs=[
        FakeCost(DAY, "gpt-5-2025-08-07, input", Decimal("1.25"), project="proj_a"),
        FakeCost(DAY, "gpt-5-2025-08-07, output", Decimal("3.5"), project="proj_a"),
        FakeCost(DAY, "gpt-4o-mini-2024-07-18, input", Decimal("0.015"), project="proj_b"),
        FakeCost(DAY + timedelta(days=1), "gpt-5-2025-08-07, input", Decimal("9"), project="proj_a"),
    ], usage=[FakeUsage(DAY, "gpt-5-2025-08-07", 800, 200, 0, 50, requests=4)]))  # fmt: skip
    billing.add("sk-ant-admin", Organisation("anthropic", costs=[
        FakeCost(DAY, "Claude Sonnet 4.5 Usage - Input Tokens", Decimal("1.2345"), model="claude-sonnet-4-5"),
        FakeCost(DAY, "Claude Sonnet 4.5 Usage - Output Tokens", Decimal("2.5"), model="claude-sonnet-4-5"),
        FakeCost(DAY, "Web Search", Decimal("0.01")),
    ], usage=[FakeUsage(DAY, "claude-sonnet-4-5-20250929", 1000, 3000, 500, 400)]))  # fmt: skip
    billing.add("xai-mgmt", Organisation("xai", team_id="team-1", costs=[
        FakeCost(DAY, "grok-4-0709", Decimal("4.2")), FakeCost(DAY, "grok-code-fast-1", Decimal("0.3")),
    ]))  # fmt: skip
    with serve(billing) as running:
        yield running


def test_openai_costs_follow_pages_through_a_429_and_a_503(fake: FakeBilling) -> None:
    fake.fail_first("/v1/organization/costs", 429, 503, retry_after="1")
    sleeps: list[float] = []
    client = OpenAIBillingClient(fake.url, retry=_retry(sleeps))
    lines = client.costs(Credentials("sk-openai"), DAY)
    assert sorted((line.line_item, line.amount, line.model, line.provider_project) for line in lines) == [
        ("gpt-4o-mini-2024-07-18, input", Decimal("0.015"), "gpt-4o-mini-2024-07-18", "proj_b"),
        ("gpt-5-2025-08-07, input", Decimal("1.25"), "gpt-5-2025-08-07", "proj_a"),
        ("gpt-5-2025-08-07, output", Decimal("3.5"), "gpt-5-2025-08-07", "proj_a"),
    ]
    assert sleeps == [1.0, 1.0]  # Retry-After honoured on the 429 and the 503
    calls = fake.calls("/v1/organization/costs")
    assert [c.status for c in calls] == [429, 503, 200, 200]
    assert "page" not in calls[2].query and calls[3].query["page"]  # second page by the next_page cursor
    assert calls[2].query["group_by"] == ["line_item", "project_id"]
    assert calls[2].headers["authorization"] == "Bearer sk-openai"
    start = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
    assert calls[2].query["start_time"] == [str(start)] and calls[2].query["end_time"] == [str(start + 86400)]


def test_openai_usage_counts_cached_tokens_inside_input(fake: FakeBilling) -> None:
    [line] = OpenAIBillingClient(fake.url).usage(Credentials("sk-openai"), DAY)
    assert (line.model, line.input_tokens, line.cached_input_tokens, line.output_tokens, line.requests) == (
        "gpt-5-2025-08-07",
        1000,
        200,
        50,
        4,
    )


def test_anthropic_amounts_are_cents_and_pages_are_followed(fake: FakeBilling) -> None:
    fake.fail_first("/v1/organizations/cost_report", 500)
    sleeps: list[float] = []
    lines = AnthropicBillingClient(fake.url, retry=_retry(sleeps)).costs(Credentials("sk-ant-admin"), DAY)
    assert sum(line.amount for line in lines) == Decimal("3.7445")
    by_item = {line.line_item: line for line in lines}
    sonnet_input = next(v for k, v in by_item.items() if k.startswith("Claude Sonnet 4.5 Usage - Input"))
    assert sonnet_input.amount == Decimal("1.2345") and sonnet_input.model == "claude-sonnet-4-5"
    assert sleeps == [0.01]  # no Retry-After on a 500: exponential backoff
    calls = fake.calls("/v1/organizations/cost_report")
    assert [c.status for c in calls] == [500, 200, 200]
    assert (
        calls[1].headers["x-api-key"] == "sk-ant-admin"
        and calls[1].headers["anthropic-version"] == "2023-06-01"
    )
    assert calls[1].query["starting_at"] == ["2026-10-01T00:00:00Z"] and calls[1].query["group_by[]"]


def test_anthropic_usage_adds_cache_reads_and_writes_to_input(fake: FakeBilling) -> None:
    [line] = AnthropicBillingClient(fake.url).usage(Credentials("sk-ant-admin"), DAY)
    assert (line.input_tokens, line.cached_input_tokens, line.cache_write_tokens, line.output_tokens) == (
        4500,
        3000,
        500,
        400,
    )


def test_xai_usage_sums_a_day_per_model(fake: FakeBilling) -> None:
    lines = XAIBillingClient(fake.url).costs(Credentials("xai-mgmt", team_id="team-1"), DAY)
    assert {(line.line_item, line.amount) for line in lines} == {
        ("grok-4-0709", Decimal("4.2")),
        ("grok-code-fast-1", Decimal("0.3")),
    }
    [call] = fake.calls("/v1/billing/teams/team-1/usage")
    assert call.method == "POST" and call.body["analyticsRequest"]["timeUnit"] == "TIME_UNIT_DAY"


def test_a_refused_key_says_what_to_do(fake: FakeBilling) -> None:
    with pytest.raises(
        BillingAPIError, match=r"refused the admin key \(401\).*Save a valid OpenAI admin key"
    ) as caught:
        OpenAIBillingClient(fake.url).costs(Credentials("sk-wrong"), DAY)
    assert caught.value.status == 401
    with pytest.raises(BillingAPIError, match="no team id"):
        XAIBillingClient(fake.url).costs(Credentials("xai-mgmt"), DAY)


def test_persistent_5xx_gives_up_after_the_attempts(fake: FakeBilling) -> None:
    fake.fail_first("/v1/organization/costs", 502, 502, 502, 502)
    with pytest.raises(BillingAPIError, match=r"still failing \(502\) after 4 attempts"):
        OpenAIBillingClient(fake.url, retry=_retry([])).costs(Credentials("sk-openai"), DAY)


def test_unreachable_api_is_reported_after_retries() -> None:
    sleeps: list[float] = []
    client = OpenAIBillingClient("http://127.0.0.1:9", retry=_retry(sleeps), timeout=1)
    with pytest.raises(BillingAPIError, match="unreachable"):
        client.costs(Credentials("k"), DAY)
    assert len(sleeps) == 3


def test_recorded_answers_parse_like_live_ones(tmp_path) -> None:
    page = {"object": "page", "has_more": False, "next_page": None, "data": [{
        "object": "bucket", "start_time": int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()),
        "end_time": int(datetime(2026, 10, 2, tzinfo=UTC).timestamp()),
        "results": [{"object": "organization.costs.result", "amount": {"value": 0.06, "currency": "usd"},
                     "line_item": None, "project_id": None}]}]}  # fmt: skip
    (tmp_path / "openai" / "costs").mkdir(parents=True)
    (tmp_path / "openai" / "costs" / "2026-10-01.json").write_text(json.dumps(page))
    client = RecordedBillingClient("openai", tmp_path)
    [line] = client.costs(Credentials("unused"), DAY)
    assert line.amount == Decimal("0.06") and line.line_item == "" and client.source == "openai_costs"
    assert client.costs(Credentials("unused"), DAY + timedelta(days=1)) == []
