"""status: works with the daemon down, reads today's numbers and errors from SQLite."""

from __future__ import annotations

from halton_meter.settings import load_settings
from halton_meter.status import collect_status
from halton_meter.store import add_error_counts, open_store, transaction


def test_status_with_the_daemon_stopped(home, seed):
    seed(cost="0.25")
    seed(cost=None, model="gpt-mystery")
    conn = open_store(home.db)
    with transaction(conn):
        add_error_counts(conn, {"capture.stream": 2})
    document = collect_status(load_settings(home.home)).to_json()
    assert document["daemon"] == {
        "state": "stopped",
        "pid": None,
        "listen": None,
        "started_at": None,
        "last_seen_at": None,  # never ran here
    }
    assert document["today"] == {"calls": 2, "cost_usd": "0.250000000", "unpriced_calls": 1, "errors": 0}
    assert document["capture_errors"]["today"] == 2
    assert document["cloud"] == {"state": "NOT-CONFIGURED"}
