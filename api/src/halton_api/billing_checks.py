"""Testing a provider connection: one real call to the provider's cost API with the stored key, answered with
the provider's refusal in words, or None when the key works. Runs in a worker thread (the clients are
synchronous) with few retries: a person is waiting on the page."""

from __future__ import annotations

from datetime import date, timedelta

from halton_api.cloud_settings import CloudSettings
from halton_meter.billing_apis.anthropic_billing import AnthropicBillingClient
from halton_meter.billing_apis.billing_contract import BillingAPIError, Credentials
from halton_meter.billing_apis.billing_http import RetryPolicy
from halton_meter.billing_apis.openai_billing import OpenAIBillingClient
from halton_meter.billing_apis.xai_billing import XAIBillingClient

TIMEOUT_SECONDS = 15.0


def check_connection(
    settings: CloudSettings, provider: str, admin_key: str, team_id: str | None, today: date
) -> str | None:
    retry = RetryPolicy(attempts=2, backoff_seconds=0.5, max_backoff_seconds=2.0)
    if provider == "openai":
        client = OpenAIBillingClient(settings.openai_billing_url, timeout=TIMEOUT_SECONDS, retry=retry)
    elif provider == "anthropic":
        client = AnthropicBillingClient(settings.anthropic_billing_url, timeout=TIMEOUT_SECONDS, retry=retry)
    else:
        client = XAIBillingClient(settings.xai_billing_url, timeout=TIMEOUT_SECONDS, retry=retry)
    try:
        # Yesterday is the newest day a bill exists for; an empty day still proves the key is accepted.
        client.costs(Credentials(admin_key, team_id), today - timedelta(days=1))
    except BillingAPIError as error:
        return str(error)
    finally:
        client.http.close()
    return None
