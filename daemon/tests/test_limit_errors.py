"""The refusal at a hard limit is the provider's own 429 shape: each official SDK raises its RateLimitError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from halton_meter import limit_errors

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
TEXT = limit_errors.message("shop", Decimal("10"), Decimal("10.25"), NOW)


def test_the_message_names_the_project_the_budget_and_how_to_go_on():
    assert "'shop'" in TEXT and "$10.00" in TEXT and "$10.25" in TEXT
    assert "X-Halton-Override: budget" in TEXT and "halton-meter override shop" in TEXT
    assert "Projects & budgets" in TEXT and "2027-01-01" in TEXT


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("anthropic", {"type": "error", "error": {"type": "rate_limit_error", "message": TEXT}}),
        (
            "openai",
            {
                "error": {
                    "message": TEXT,
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        ),
        (
            "xai",
            {
                "error": {
                    "message": TEXT,
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            },
        ),
        ("gemini", {"error": {"code": 429, "message": TEXT, "status": "RESOURCE_EXHAUSTED"}}),
    ],
)
def test_each_provider_gets_its_own_error_shape(provider, expected):
    status, body, headers = limit_errors.response_parts(provider, TEXT)
    assert status == 429 and json.loads(body) == expected
    assert headers["content-type"] == "application/json" and headers["x-should-retry"] == "false"
    assert "retry-after" not in {k.lower() for k in headers}


def _answering(provider: str) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, headers = limit_errors.response_parts(provider, TEXT)
        return httpx.Response(status, content=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_the_anthropic_sdk_raises_rate_limit_error_once_without_retrying():
    http_client, seen = _answering("anthropic")
    client = anthropic.Anthropic(api_key="sk-ant-test", base_url="http://meter.test", http_client=http_client)
    with pytest.raises(anthropic.RateLimitError) as raised:
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert raised.value.status_code == 429 and "'shop'" in raised.value.message
    assert len(seen) == 1  # x-should-retry: false beats the SDK's default retries


def test_the_openai_sdk_raises_rate_limit_error_once_without_retrying():
    http_client, seen = _answering("openai")
    client = openai.OpenAI(api_key="sk-test", base_url="http://meter.test/v1", http_client=http_client)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raised.value.status_code == 429 and raised.value.code == "insufficient_quota"
    assert "'shop'" in raised.value.message and len(seen) == 1
