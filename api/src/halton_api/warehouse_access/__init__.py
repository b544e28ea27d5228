"""The API's ClickHouse side, apart from the dashboards' marts: `client_pool` (the clients and the
busy/unavailable errors), `batch_writer` (the one writer of `raw.requests`, with group commit),
`native_blocks` (its rows as Native blocks), `raw_requests` (the dedupe probe and the deduplicated read of
`raw.requests`) and `meter_reconcile` (one machine's stored rows, for a meter to reconcile against).
The control plane's PostgreSQL modules are in `store/`."""
