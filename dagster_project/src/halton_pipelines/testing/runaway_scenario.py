"""A workspace's calls for the runaway-detection tests: four weeks of ordinary history (office hours on
weekdays from every device, an hour from one device at weekends, every prompt its own), a busier Monday, and a
loop (the same prompt hash every second for ten minutes on one device). Written as the API's ingestion writes
rows, so the marts and the pipelines see what a deployment sees."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread

from clickhouse_connect.driver.client import Client

from halton_pipelines.testing.factories import insert_request_rows, metered_call
from halton_warehouse.warehouse_settings import Databases

LOOP_HASH = "f" * 64
LOOP_CALLS = 600
LOOP_CALL_USD = Decimal("0.02")


def last_monday(today: date) -> date:
    """Last week's Monday: a whole Monday in the past, the day the marts are built as of."""
    return today - timedelta(days=today.weekday() + 7)


def _ordinary_day(day: date, devices: Sequence[uuid.UUID], per_hour_usd: Decimal) -> dict[uuid.UUID, list]:
    weekend = day.weekday() >= 5
    hours = range(10, 11) if weekend else range(9, 17)
    active = devices[:1] if weekend else devices
    rate = per_hour_usd / 10 if weekend else per_hour_usd
    return {
        device: [
            metered_call(f"{day}-{device}-{hour}-{i}", "web", datetime.combine(day, time(hour, 7 + 20 * i + n), UTC),
                         input_tokens=100, output_tokens=100, cost_usd=rate / 2)
            for hour in hours for i in range(2)
        ]
        for n, device in enumerate(active)
    }  # fmt: skip


def write_ordinary_weeks(
    client: Client, databases: Databases, workspace_id: uuid.UUID, devices: Sequence[uuid.UUID], monday: date
) -> None:
    """Four weeks before `monday` at $1 an hour per device in office hours, then `monday` half as busy again."""
    for offset in range(28, 0, -1):
        day = monday - timedelta(days=offset)
        for device, calls in _ordinary_day(day, devices, Decimal("1.00")).items():
            insert_request_rows(client, databases, workspace_id, device, calls)
    for device, calls in _ordinary_day(monday, devices, Decimal("1.50")).items():
        insert_request_rows(client, databases, workspace_id, device, calls)


def write_loop(
    client: Client, databases: Databases, workspace_id: uuid.UUID, device: uuid.UUID, monday: date
) -> datetime:
    """The same prompt every second for ten minutes from 17:10 on `monday`; returns when it started."""
    start = datetime.combine(monday, time(17, 10), UTC)
    calls = [
        metered_call(f"loop-{workspace_id}-{i}", "web", start + timedelta(seconds=i), input_tokens=1000,
                     output_tokens=50, prompt_hash=LOOP_HASH, cost_usd=LOOP_CALL_USD)
        for i in range(LOOP_CALLS)
    ]  # fmt: skip
    insert_request_rows(client, databases, workspace_id, device, calls)
    return start


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A webhook endpoint on 127.0.0.1 that answers 200 and keeps each post (headers, body)."""
    received: list[tuple[dict[str, str], bytes]] = []
    lock = Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                received.append((dict(self.headers), body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/anomalies", received
    finally:
        server.shutdown()
        server.server_close()
