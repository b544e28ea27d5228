"""`/v1/daemon/reconcile` and `/v1/daemon/reconcile/missing`: what the warehouse holds for the asking machine."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fastapi.testclient import TestClient

from halton_api.testing.factories import batch, bearer, make_device, make_user, make_workspace

TODAY = datetime.now(UTC).date()


def _send(client: TestClient, token: str, machine_id: str, rows: int, **overrides) -> list[str]:
    body = batch(machine_id, rows, **overrides)
    response = client.post("/v1/requests/batch", json=body, headers=bearer(token))
    assert response.status_code == 200, response.text
    return [row["request_uid"] for row in body["rows"]]


def _days(client: TestClient, token: str, first: date, last: date):
    return client.get(f"/v1/daemon/reconcile?from={first}&to={last}", headers=bearer(token))


def test_counts_and_cost_per_day_are_this_machines_only(client: TestClient, postgres_url: str) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    mine = make_device(postgres_url, workspace=workspace)
    neighbour = make_device(postgres_url, workspace=workspace)
    elsewhere = make_device(
        postgres_url, workspace=make_workspace(postgres_url, owner=owner), machine_id=mine.device.machine_id
    )
    today = datetime.now(UTC).date()  # at the test, not at collection: a suite may cross midnight
    # Two days back at noon: never the same UTC day as the factory's default start (now - 5 min), even when
    # the test runs just after midnight.
    earlier = datetime.now(UTC).replace(hour=12, minute=0) - timedelta(days=2)
    _send(client, mine.token, mine.device.machine_id, 3, started_at=earlier)
    _send(client, mine.token, mine.device.machine_id, 2)
    _send(client, neighbour.token, neighbour.device.machine_id, 5)
    _send(client, elsewhere.token, elsewhere.device.machine_id, 7)

    response = _days(client, mine.token, today - timedelta(days=6), today)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["from"] == str(today - timedelta(days=6)) and answer["to"] == str(today)
    counts = {day["day"]: (day["rows"], day["cost_usd"]) for day in answer["days"]}
    now_day = datetime.now(UTC) - timedelta(minutes=5)  # the factory's default start
    assert {day: rows for day, (rows, _) in counts.items()} == {
        str(earlier.date()): 3,
        str(now_day.date()): 2,
    }
    assert Decimal(counts[str(earlier.date())][1]) == Decimal("0.0369")
    assert [
        d["rows"] for d in _days(client, neighbour.token, today - timedelta(days=6), today).json()["days"]
    ] == [5]
    assert (
        sum(
            d["rows"] for d in _days(client, elsewhere.token, today - timedelta(days=6), today).json()["days"]
        )
        == 7
    )


def test_missing_names_only_what_this_machine_lacks(client: TestClient, postgres_url: str) -> None:
    workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
    mine = make_device(postgres_url, workspace=workspace)
    neighbour = make_device(postgres_url, workspace=workspace)
    started = datetime.now(UTC) - timedelta(minutes=5)
    held = _send(client, mine.token, mine.device.machine_id, 4, started_at=started)
    theirs = _send(client, neighbour.token, neighbour.device.machine_id, 2, started_at=started)
    lost = str(uuid.uuid4())
    asked = [*held, lost, *theirs]
    response = client.post(
        "/v1/daemon/reconcile/missing",
        json={"day": str(started.date()), "request_uids": asked},
        headers=bearer(mine.token),
    )
    assert response.status_code == 200, response.text
    # The neighbour's rows are not this machine's: to it they are as absent as the lost one.
    assert response.json() == {"day": str(started.date()), "missing": [lost, *theirs]}


def test_bad_ranges_and_bodies_are_refused_with_what_is_wrong(client: TestClient, postgres_url: str) -> None:
    created = make_device(postgres_url, workspace=make_workspace(postgres_url, owner=make_user(postgres_url)))
    backwards = _days(client, created.token, TODAY, TODAY - timedelta(days=1))
    assert backwards.status_code == 422 and "before" in backwards.text
    too_long = _days(client, created.token, TODAY - timedelta(days=90), TODAY)
    assert too_long.status_code == 422 and "at most 90" in too_long.text
    garbled = client.get("/v1/daemon/reconcile?from=yesterday&to=2026-01-01", headers=bearer(created.token))
    assert garbled.status_code == 422 and "from" in garbled.text
    missing = client.get("/v1/daemon/reconcile", headers=bearer(created.token))
    assert missing.status_code == 422
    too_many = client.post(
        "/v1/daemon/reconcile/missing",
        json={"day": str(TODAY), "request_uids": [str(uuid.uuid4()) for _ in range(2_001)]},
        headers=bearer(created.token),
    )
    assert too_many.status_code == 422 and "at most 2000" in too_many.text
    empty = client.post(
        "/v1/daemon/reconcile/missing",
        json={"day": str(TODAY), "request_uids": []},
        headers=bearer(created.token),
    )
    assert empty.status_code == 422
    not_uuid = client.post(
        "/v1/daemon/reconcile/missing",
        json={"day": str(TODAY), "request_uids": ["x"]},
        headers=bearer(created.token),
    )
    assert not_uuid.status_code == 422


def test_reconcile_needs_a_valid_token(client: TestClient) -> None:
    assert client.get(f"/v1/daemon/reconcile?from={TODAY}&to={TODAY}").status_code == 401
    assert _days(client, "hm_sync_nope", TODAY, TODAY).status_code == 401
