"""A meter killed three times while eight clients call loses nothing and doubles nothing, up to ClickHouse.

Every process is real: the API (`halton-cloud serve`) on PostgreSQL and the embedded warehouse, the meter
as `halton-meter start` paired to it by `cloud connect` and an approval, fake providers upstream. The
clients (`halton_meter.testing.calling_clients`) keep the nonce of every call they got a complete answer
for; the fake provider echoes it as the request id, so SQLite maps each answered call to its request_uid,
and ClickHouse is asked about those request_uids for this workspace and machine.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tomllib
from collections import Counter
from pathlib import Path

from test_pairing_e2e import connect, machine_id_of, new_meter

from halton_meter.pidfile import running_pid
from halton_meter.testing.calling_clients import Clients, stored_nonces
from halton_meter.testing.processes import MeterProcess, wait_for

KILLS = 3
ANSWERS_BEFORE_EACH_KILL = 60  # a few hundred calls in all keeps the test to well under a minute


def start(meter: MeterProcess) -> None:
    started = meter.cli("start")
    assert started.returncode == 0, started.stdout + started.stderr


def request_uids_by_nonce(db: Path) -> dict[str, list[str]]:
    """Each stored OpenAI chat row's request_uid, under the nonce its provider request id carries."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT provider_request_id, request_uid FROM requests WHERE provider = 'openai'"
        ).fetchall()
    found: dict[str, list[str]] = {}
    for provider_request_id, request_uid in rows:
        if provider_request_id:
            found.setdefault(provider_request_id.removeprefix("chatcmpl-"), []).append(str(request_uid))
    return found


def warehouse_counts(warehouse, workspace_id: str, machine_id: str) -> tuple[Counter, Counter]:
    """(rows per request_uid as read through requests_dedup, rows per request_uid physically stored)."""
    raw = warehouse.databases.raw
    client = warehouse.client()
    where = "WHERE workspace_id = %(w)s AND machine_id = %(m)s GROUP BY request_uid"
    params = {"w": workspace_id, "m": machine_id}
    read = client.query(f"SELECT toString(request_uid), count() FROM {raw}.requests_dedup {where}", params)
    stored = client.query(f"SELECT toString(request_uid), count() FROM {raw}.requests {where}", params)
    return Counter(dict(read.result_rows)), Counter(dict(stored.result_rows))


def test_sigkill_three_times_while_eight_clients_call_every_answered_call_reaches_clickhouse_once(
    tmp_path, cloud, person, providers, warehouse
):
    meter = new_meter(tmp_path, "laptop", cloud, providers)
    machine = machine_id_of(meter)
    start(meter)
    try:
        connect(meter, person, cloud)
        workspace_id = tomllib.loads(meter.paths.config.read_text())["cloud"]["workspace_id"]
        with Clients(meter) as clients:
            for _ in range(KILLS):
                seen = clients.count()
                wait_for(
                    lambda seen=seen: clients.count() >= seen + ANSWERS_BEFORE_EACH_KILL,
                    60,
                    "clients to get answers",
                )
                clients.kill_on_next_answer(meter.pid())
                wait_for(lambda: running_pid(meter.paths.pidfile) is None, 15, "the killed daemon to be gone")
                start(meter)
            seen = clients.count()
            wait_for(lambda: clients.count() >= seen + 30, 60, "answers after the last restart")
        answered = list(clients.answered)
        assert len(answered) == len(set(answered))

        # SQLite: every answered call exactly once.
        wait_for(
            lambda: set(answered) <= set(stored_nonces(meter.paths.db)),
            30,
            "every answered call to be in SQLite",
        )
        uids = request_uids_by_nonce(meter.paths.db)
        doubled_locally = {n: u for n, u in uids.items() if n in set(answered) and len(u) > 1}
        assert not doubled_locally, f"stored more than once in SQLite: {list(doubled_locally.items())[:5]}"

        # ClickHouse, once the restarted meter has synced everything: every answered call exactly once.
        wait_for(lambda: meter.unsynced() == 0, 90, "the meter to report 0 unsynced rows")
        wanted = {uids[n][0] for n in answered}
        read, stored = warehouse_counts(warehouse, workspace_id, machine)
        missing = wanted - set(read)
        doubled = {uid: c for uid, c in read.items() if c > 1}
        assert not missing, f"{len(missing)} of {len(wanted)} answered calls are not in ClickHouse"
        assert not doubled, f"read more than once from requests_dedup: {list(doubled.items())[:5]}"
        local = {uid for found in uids.values() for uid in found}
        assert set(read) == local, (
            f"cloud-only rows: {len(set(read) - local)}, unsent: {len(local - set(read))}"
        )
        # What the replacing table still holds twice (a batch re-sent after a kill, not yet merged) is
        # information: requests_dedup reads it once, as asserted above.
        raw_duplicates = sum(c - 1 for c in stored.values() if c > 1)
        print(
            f"answered={len(answered)} failed={clients.failures} sqlite_rows={sum(map(len, uids.values()))} "
            f"dedup_rows={sum(read.values())} stored_rows={sum(stored.values())} "
            f"raw_duplicates={raw_duplicates}"
        )
    finally:
        meter.cli("stop")
