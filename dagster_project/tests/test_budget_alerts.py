"""Budget alerts end to end on real engines (issue 24): spend driven across 50%, 80% and 100% of a workspace's
month and past its forecast, the marts built by Dagster after each step, the alerts asset run on them; a local
webhook receiver (signature checked) and a local SMTP server (aiosmtpd) get exactly one message per alert; a
receiver that fails is retried with backoff; the audit log lists each delivery. In the same builds, a cost
center's forecast reads the earlier months of its own projects."""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import psycopg
import pytest
from aiosmtpd.controller import Controller

from halton_meter.secretbox import ALERT_CHANNEL_PURPOSE, fernet_for
from halton_meter.testing.processes import free_port
from halton_pipelines.alerts.deliver import SIGNATURE_HEADER, TIMESTAMP_HEADER, deliver_due, sign
from halton_pipelines.alerts.evaluate import BudgetMonth, alerts_for, current_months
from halton_pipelines.defs.alert_assets import budget_alerts
from halton_pipelines.defs.dbt import halton_dbt
from halton_pipelines.defs.rate_row_assets import model_prices
from halton_pipelines.defs.snapshot import control_plane_snapshot
from halton_pipelines.resources import (
    AlertsResource,
    ControlPlaneResource,
    HaltonDbtResource,
    WarehouseResource,
)
from halton_pipelines.testing.factories import SECRET, insert_request_rows, metered_call
from halton_warehouse.budget_forecast import EarlierMonth, history_start

# Four dbt builds of the marts, each about a minute on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)

WEBHOOK_SECRET = "whsec-test-signing-secret"
FIRST = datetime.now(UTC).date().replace(day=1)
AS_OF = FIRST + timedelta(days=9)  # the 10th: ten days of the month elapsed


class Receiver(BaseHTTPRequestHandler):
    """A Slack-style webhook endpoint that answers 500 to its first `failures` posts."""

    failures = 0
    received: list[tuple[dict[str, str], bytes]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            failing = Receiver.failures > 0
            if failing:
                Receiver.failures -= 1
            else:
                Receiver.received.append((dict(self.headers), body))
        self.send_response(500 if failing else 200)
        self.end_headers()
        self.wfile.write(b"no" if failing else b"ok")

    def log_message(self, *args) -> None:  # quiet
        pass


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received, Receiver.failures = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/budget"
    server.shutdown()
    server.server_close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, controller.port
    controller.stop()


def test_thresholds_and_forecast_alert_once_each_by_webhook_and_email(stores, webhook, mailbox) -> None:
    box, smtp_port = mailbox
    url = stores.control_plane_url
    workspace_id, device_id = uuid.uuid4(), uuid.uuid4()
    # The control plane as an owner leaves it: a workspace, its paired laptop, a $100 monthly budget (written
    # here in SQL: the pipelines' tests never import the API).
    with psycopg.connect(url) as conn, conn.transaction():
        owner = conn.execute(
            "INSERT INTO users (email, name, password_hash) VALUES (%s, 'Owner', 'x') RETURNING id",
            (f"owner-{secrets.token_hex(4)}@example.com",),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO workspaces (id, slug, name, created_by) VALUES (%s, %s, 'Alerts', %s)",
            (workspace_id, f"alerts-{secrets.token_hex(3)}", owner),
        )
        conn.execute(
            "INSERT INTO memberships (workspace_id, user_id, role) VALUES (%s, %s, 'owner')",
            (workspace_id, owner),
        )
        conn.execute(
            "INSERT INTO devices (id, workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix) "
            "VALUES (%s, %s, %s, 'laptop.local', %s, %s, 'hm_sync_a')",
            (device_id, workspace_id, f"machine-{secrets.token_hex(4)}", owner, secrets.token_bytes(32)),
        )
        conn.execute("INSERT INTO budgets (workspace_id, monthly_amount) VALUES (%s, 100)", (workspace_id,))
        # The project the calls are tagged with rolls up to a cost center with its own $100 budget, alerted at
        # 100% only: its alert comes from its projects' spend, beside the workspace's.
        centre = conn.execute(
            "INSERT INTO cost_centers (workspace_id, name) VALUES (%s, 'R&D') RETURNING id", (workspace_id,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO projects (workspace_id, slug, name, cost_center_id) VALUES (%s, 'web', 'Web', %s)",
            (workspace_id, centre),
        )
        conn.execute(
            "INSERT INTO budgets (workspace_id, cost_center_id, monthly_amount, alert_thresholds, forecast_alert)"
            " VALUES (%s, %s, 100, '{100}', false)",
            (workspace_id, centre),
        )
    sealed = fernet_for(SECRET, ALERT_CHANNEL_PURPOSE)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO alert_channels (workspace_id, webhook_url, webhook_secret_encrypted, smtp_host, smtp_port,"
            " smtp_starttls, smtp_from, smtp_to) VALUES (%s, %s, %s, '127.0.0.1', %s, false, %s, %s)",
            (workspace_id, webhook, sealed.encrypt(WEBHOOK_SECRET.encode()), smtp_port, "alerts@example.com",
             ["finance@example.com"]),
        )  # fmt: skip
    resources = {
        "warehouse": WarehouseResource(clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix),
        "control_plane": ControlPlaneResource(database_url=url),
        "dbt": HaltonDbtResource(
            clickhouse_url=stores.warehouse_url, database_prefix=stores.prefix, as_of=AS_OF.isoformat()
        ),
        "alerts": AlertsResource(database_url=url, secret_key=SECRET, backoff_seconds=60),
    }
    client = stores.client()
    spent = Decimal(0)

    def spend(amount: str, day: int) -> None:
        nonlocal spent
        started = datetime.combine(FIRST + timedelta(days=day - 1), time(12), UTC)
        calls = [
            metered_call(f"{workspace_id}-{spent}-{i}", "web", started + timedelta(minutes=i), input_tokens=10,
                         output_tokens=10, cost_usd=Decimal(amount) / 5)
            for i in range(5)
        ]  # fmt: skip
        insert_request_rows(client, stores.databases, workspace_id, device_id, calls)
        spent += Decimal(amount)

    def evaluate(*, build: bool = True, scope: str = "The workspace") -> list[tuple]:
        if build:
            assert dg.materialize([halton_dbt], resources=resources).success
        assert dg.materialize([budget_alerts], resources=resources).success
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT kind, threshold_pct, breach_day FROM budget_alerts WHERE workspace_id = %s"
                " AND scope_label = %s ORDER BY raised_at, kind DESC, threshold_pct",
                (workspace_id, scope),
            ).fetchall()

    history_centre = _cost_center_with_history(url, stores, owner)
    assert dg.materialize([control_plane_snapshot, model_prices], resources=resources).success
    # 30% by the 10th, at a pace that ends the month under budget: nothing to say.
    spend("20", 1)
    spend("10", 2)
    assert evaluate() == []
    # Beside it (same builds), a cost center whose projects spent in earlier months: its forecast reads the
    # days of the months it follows, its own projects' only.
    (centre_month,) = [
        m for m in current_months(client, stores.databases.marts) if m.budget_id == history_centre
    ]
    assert [(m.total, m.on(3), m.on(5), m.on(20)) for m in centre_month.earlier] == [
        (5, 5, 0, 0),
        (20, 0, 12, 8),
    ]
    assert centre_month.forecast().basis == "run rate and the same days of 2 earlier months"
    assert centre_month.scope_label == "Cost center Platform" and centre_month.spend_usd == 6
    # 55%: half the budget gone, and at $5.50 a day the month crosses $100 on the 19th. The webhook fails twice.
    Receiver.failures = 2
    spend("25", 3)
    assert evaluate() == [("threshold", 50, None), ("forecast", 0, FIRST + timedelta(days=18))]
    assert Receiver.received == [] and len(box.messages) == 2
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        pending = conn.execute(
            "SELECT attempts, next_attempt_at - %s > interval '50 seconds', last_error FROM alert_deliveries"
            " WHERE channel = 'webhook'",
            (now,),
        ).fetchall()
    assert [(a, later) for a, later, _ in pending] == [(1, True), (1, True)]
    assert all("HTTP 500" in error for *_, error in pending)
    # Not due yet: nothing is sent; once the backoff has passed, the retries go through.
    assert deliver_due(url, SECRET, now=now, backoff_seconds=60) == {
        "delivered": 0,
        "retrying": 0,
        "failed": 0,
        "cancelled": 0,
    }
    later = now + timedelta(minutes=2)
    assert deliver_due(url, SECRET, now=later, backoff_seconds=60) == {
        "delivered": 2,
        "retrying": 0,
        "failed": 0,
        "cancelled": 0,
    }
    # 85% then 105%: one more alert each; the forecast and 50% are not sent again.
    spend("30", 4)
    assert [a[:2] for a in evaluate()][2:] == [("threshold", 80)]
    spend("20", 5)
    assert [a[:2] for a in evaluate()][3:] == [("threshold", 100)]
    assert len(evaluate(build=False)) == 4  # evaluated again (the hourly run): nothing new
    assert evaluate(build=False, scope="Cost center R&D") == [("threshold", 100, None)]

    # Exactly one message per alert on each channel, each webhook signed with the workspace's secret.
    assert len(Receiver.received) == 5 and len(box.messages) == 5
    texts = []
    for headers, body in Receiver.received:
        assert headers[SIGNATURE_HEADER] == sign(WEBHOOK_SECRET, int(headers[TIMESTAMP_HEADER]), body)
        document = json.loads(body)
        assert document["text"] == document["alert"]["message"]
        texts.append(document["text"])
    assert sum("has reached 50%" in t for t in texts) == 1
    # No earlier month to follow the shape of: the forecast is the run rate, and says so.
    assert sum("on course to exceed" in t and "by the 19th" in t and "(run rate)" in t for t in texts) == 1
    assert sum(t.startswith("Cost center R&D has reached 100%") for t in texts) == 1
    assert sum("has reached 80%" in t for t in texts) == 1
    assert sum(t.startswith("The workspace has reached 100%") for t in texts) == 1
    assert all("finance@example.com" in m and "[Halton]" in m for m in box.messages)
    # The audit log lists each alert and each delivery, the failed tries included.
    with psycopg.connect(url) as conn:
        events = dict(
            conn.execute(
                "SELECT event, count(*) FROM audit_events WHERE workspace_id = %s AND event LIKE 'budget_alert.%%'"
                " GROUP BY event",
                (workspace_id,),
            ).fetchall()
        )
        statuses = conn.execute("SELECT status, count(*) FROM alert_deliveries GROUP BY status").fetchall()
    assert events == {
        "budget_alert.raised": 5,
        "budget_alert.delivered": 10,
        "budget_alert.delivery_retrying": 2,
    }
    assert statuses == [("delivered", 10)]
    assert spent == Decimal(105) and date.today() >= FIRST


def _cost_center_with_history(url: str, stores, owner) -> uuid.UUID:
    """A second workspace: cost center Platform (project api, budget $100) and project ops outside it, with
    spend in the two months before this one, one older than the forecast follows, and $6 this month. Returns the
    cost center's budget id."""
    workspace_id, device_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO workspaces (id, slug, name, created_by) VALUES (%s, %s, 'History', %s)",
            (workspace_id, f"history-{secrets.token_hex(3)}", owner),
        )
        conn.execute(
            "INSERT INTO devices (id, workspace_id, machine_id, hostname, paired_by, token_hash, token_prefix) "
            "VALUES (%s, %s, %s, 'desk.local', %s, %s, 'hm_sync_b')",
            (device_id, workspace_id, f"machine-{secrets.token_hex(4)}", owner, secrets.token_bytes(32)),
        )
        centre = conn.execute(
            "INSERT INTO cost_centers (workspace_id, name) VALUES (%s, 'Platform') RETURNING id",
            (workspace_id,),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO projects (workspace_id, slug, name, cost_center_id) VALUES (%s, 'api', 'API', %s),"
            " (%s, 'ops', 'Ops', NULL)",
            (workspace_id, centre, workspace_id),
        )
        budget = conn.execute(
            "INSERT INTO budgets (workspace_id, cost_center_id, monthly_amount) VALUES (%s, %s, 100) RETURNING id",
            (workspace_id, centre),
        ).fetchone()[0]
    last = (FIRST - timedelta(days=1)).replace(day=1)
    before = (last - timedelta(days=1)).replace(day=1)
    too_old = (history_start(FIRST) - timedelta(days=1)).replace(day=1)
    spent = [
        ("api", before, 3, "5"), ("api", last, 5, "12"), ("api", last, 20, "8"), ("ops", last, 5, "40"),
        ("api", too_old, 10, "50"), ("api", FIRST, 2, "6"),
    ]  # fmt: skip
    calls = [
        metered_call(f"{workspace_id}-{i}", project, datetime.combine(month.replace(day=day), time(12), UTC),
                     input_tokens=10, output_tokens=10, cost_usd=Decimal(amount))
        for i, (project, month, day, amount) in enumerate(spent)
    ]  # fmt: skip
    insert_request_rows(stores.client(), stores.databases, workspace_id, device_id, calls)
    return budget


# The forecast's arithmetic on its own (no engines): a month whose spend comes late.
NOVEMBER = date(2026, 11, 1)  # 30 days


def _month(spent: str, elapsed: int, earlier: list[EarlierMonth]) -> BudgetMonth:
    return BudgetMonth(
        workspace_id=uuid.uuid4(), budget_id=uuid.uuid4(), scope_label="Cost center R&D", period=NOVEMBER,
        budget_usd=Decimal(100), spend_usd=Decimal(spent), days_elapsed=elapsed, days_in_period=30,
        earlier=earlier,
    )  # fmt: skip


def _back_loaded(late: list[int]) -> EarlierMonth:
    """$1 a day to the 15th, then the rest on the days `late` names ($45 in all): a quarter by the 15th."""
    daily = [Decimal(1)] * 15 + [Decimal(0)] * 16
    for day in late:
        daily[day - 1] = Decimal(45) / len(late)
    return EarlierMonth(tuple(daily))


def test_a_back_loaded_month_is_forecast_from_the_shape_of_earlier_months() -> None:
    evenly = [_back_loaded(list(range(16, 31)))] * 3  # $3 a day from the 16th to the 30th
    month = _month("30", 15, evenly)
    # The run rate alone says $60 for the month (under budget); the earlier months had a quarter of their spend
    # by the 15th, so they say $120. Three months of history and this month's pace: (60 + 3 x 120) / 4 = $105.
    projection = month.forecast()
    assert projection.projected_usd == Decimal(105)
    assert projection.basis == "run rate and the same days of 3 earlier months"
    # The $75 still to come falls on the 16th to the 30th as before, $5 a day: $100 is crossed on the 29th.
    assert projection.breach_day == date(2026, 11, 29)
    (alert,) = alerts_for(month, [50, 80, 100], True)
    assert alert.kind == "forecast" and "by the 29th" in alert.message
    assert "$105.00 projected for the month (run rate and the same days of 3 earlier months)" in alert.message
    # Earlier months that spent it all on the 30th put the breach there, not on an even pace's day.
    assert _month("30", 15, [_back_loaded([30])] * 3).forecast().breach_day == date(2026, 11, 30)
    # One month of history weighs the same as the month so far: (60 + 120) / 2 = $90, no breach.
    single = _month("30", 15, evenly[:1]).forecast()
    assert (single.projected_usd, single.breach_day) == (Decimal(90), None)
    assert alerts_for(_month("30", 15, evenly[:1]), [50], True) == []


def test_without_history_the_forecast_is_the_run_rate_and_says_so() -> None:
    # $55 by the 10th: $5.50 a day crosses $100 on the 19th (as the engines' test above finds).
    month = _month("55", 10, [])
    projection = month.forecast()
    assert (projection.projected_usd, projection.breach_day, projection.basis) == (
        Decimal(165), date(2026, 11, 19), "run rate",
    )  # fmt: skip
    assert [a.kind for a in alerts_for(month, [50], True)] == ["threshold", "forecast"]
    assert alerts_for(month, [50], True)[1].message.endswith("projected for the month (run rate)")
    # Earlier months with nothing spent by this day (or nothing at all) say nothing: the run rate again.
    quiet_start = EarlierMonth(tuple([Decimal(0)] * 20 + [Decimal(10)] * 10))
    assert _month("55", 10, [quiet_start, EarlierMonth(())]).forecast() == projection
    # Past the budget already, or nothing spent: no forecast alert.
    assert _month("120", 10, []).forecast().breach_day is None
    assert _month("0", 10, [quiet_start]).forecast().breach_day is None
