"""Clients for the providers' billing APIs: what each provider says it billed, day by day.

One module per provider (`openai_billing`, `anthropic_billing`, `xai_billing`: its endpoints, its pure
`parse_*` functions and its client), the HTTP they share (`billing_http`: retries, refusals, paging), what
every client answers with (`billing_contract`) and `recorded_billing`, which replays saved responses through
the same parsers, so a recorded response parses exactly like a live one. Shared by the cloud API (checking a
key) and the pipelines (the daily pulls), which is why it lives in the meter's package.
"""
