"""`POST /v1/requests/batch`: all-or-nothing, idempotent, clear about what is wrong, tenant-safe."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from halton_api.ingest_window import IngestWindow
from halton_api.store import devices
from halton_api.testing.factories import batch, bearer, cost, make_device, make_user, make_workspace, row, run


def _count(warehouse, workspace_id: uuid.UUID | None = None) -> int:
    where = f" WHERE workspace_id = '{workspace_id}'" if workspace_id else ""
    return int(
        warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests_dedup{where}")
    )


def _raw_count(warehouse) -> int:
    return int(warehouse.client().command(f"SELECT count() FROM {warehouse.databases.raw}.requests"))


@pytest.fixture
def paired(postgres_url: str, client: TestClient):
    """A workspace with one paired device: (workspace, DeviceCreated)."""
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    return workspace, make_device(postgres_url, workspace=workspace, paired_by=owner)


def _last_sync(postgres_url: str, device_id: uuid.UUID) -> datetime | None:
    with psycopg.connect(postgres_url) as conn:
        return conn.execute("SELECT last_sync_at FROM devices WHERE id = %s", (device_id,)).fetchone()[0]


def test_a_batch_is_stored_with_workspace_and_device_from_the_token(
    client, paired, warehouse, postgres_url
) -> None:
    workspace, created = paired
    body = batch(created.device.machine_id, rows=25)
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 200, response.text
    assert response.json() == {"batch_id": body["batch_id"], "accepted": 25, "duplicates": 0}

    stored = (
        warehouse.client()
        .query(
            f"SELECT DISTINCT workspace_id, device_id, batch_id FROM {warehouse.databases.raw}.requests_dedup"
        )
        .result_rows
    )
    assert [tuple(str(v) for v in r) for r in stored] == [
        (str(workspace.id), str(created.device.id), body["batch_id"])
    ]
    total = warehouse.client().command(f"SELECT sum(cost_usd) FROM {warehouse.databases.raw}.requests_dedup")
    assert Decimal(str(total)) == cost(body["rows"])
    assert _last_sync(postgres_url, created.device.id) is not None
    with psycopg.connect(postgres_url) as conn:
        projects = conn.execute(
            "SELECT slug FROM projects WHERE workspace_id = %s", (workspace.id,)
        ).fetchall()
        events = conn.execute(
            "SELECT actor_type, event, resource_label FROM audit_events WHERE event = 'project.registered'"
        ).fetchall()
    assert projects == [("acme/app",)]
    assert events == [("device", "project.registered", "acme/app")]


def test_gzip_bodies_are_accepted(client, paired, warehouse) -> None:
    _, created = paired
    body = gzip.compress(json.dumps(batch(created.device.machine_id, rows=5)).encode())
    response = client.post(
        "/v1/requests/batch",
        content=body,
        headers={**bearer(created.token), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 5
    assert _count(warehouse) == 5


def test_the_same_batch_three_times_is_counted_once(client, paired, warehouse) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=40)
    answers = [
        client.post("/v1/requests/batch", json=body, headers=bearer(created.token)).json() for _ in range(3)
    ]
    assert [(a["accepted"], a["duplicates"]) for a in answers] == [(40, 0), (0, 40), (0, 40)]
    assert _count(warehouse) == 40
    assert _raw_count(warehouse) == 40  # duplicates are not even written again


def test_the_devices_mark_is_kept_in_postgres_and_another_api_process_counts_a_re_send(
    client, paired, warehouse, postgres_url, settings
) -> None:
    """After a batch, the device's mark is its latest start, in PostgreSQL: a re-send that reaches another API
    process (no memory of the first) is still counted as duplicates and not written again; the next batch
    moves the mark on."""
    from halton_api.app import create_app

    _, created = paired
    machine = created.device.machine_id
    first = batch(machine, rows=30)
    assert (
        client.post("/v1/requests/batch", json=first, headers=bearer(created.token)).json()["accepted"] == 30
    )

    def mark() -> datetime:
        with psycopg.connect(postgres_url) as conn:
            sql = "SELECT written_through FROM devices WHERE id = %s"
            return conn.execute(sql, (created.device.id,)).fetchone()[0]

    assert mark() == max(datetime.fromisoformat(r["started_at"]) for r in first["rows"])
    with TestClient(create_app(settings)) as other:
        again = other.post("/v1/requests/batch", json=first, headers=bearer(created.token)).json()
        assert (again["accepted"], again["duplicates"]) == (0, 30)
        following = batch(machine, rows=4)
        assert (
            other.post("/v1/requests/batch", json=following, headers=bearer(created.token)).json()["accepted"]
            == 4
        )
    assert mark() == max(datetime.fromisoformat(r["started_at"]) for r in following["rows"])
    assert _count(warehouse) == _raw_count(warehouse) == 34


def test_a_row_sent_again_with_a_new_price_is_a_correction_not_a_duplicate(client, paired, warehouse) -> None:
    """A meter that priced an unpriced call once a catalogue knew its model sends the row again: it is stored
    and read in place of the first copy; the same row again unchanged is still a duplicate."""
    _, created = paired
    first = batch(created.device.machine_id, rows=3)
    unpriced = first["rows"][0]
    unpriced["cost_usd"], unpriced["price_card"] = None, None
    assert (
        client.post("/v1/requests/batch", json=first, headers=bearer(created.token)).json()["accepted"] == 3
    )
    corrected = {**unpriced, "cost_usd": "0.001200000", "price_card": "catalogue v2:openai/gpt-mystery-9"}
    resent = {**batch(created.device.machine_id, rows=1), "rows": [corrected, first["rows"][1]]}
    answer = client.post("/v1/requests/batch", json=resent, headers=bearer(created.token)).json()
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    stored = warehouse.client().query(
        f"SELECT cost_usd, price_card FROM {warehouse.databases.raw}.requests_dedup WHERE request_uid = %(u)s",
        {"u": unpriced["request_uid"]},
    )
    assert stored.result_rows == [(Decimal("0.0012"), "catalogue v2:openai/gpt-mystery-9")]
    again = client.post("/v1/requests/batch", json=resent, headers=bearer(created.token)).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert _count(warehouse) == 3


def test_rows_repeated_inside_a_batch_and_across_batches(client, paired, warehouse) -> None:
    _, created = paired
    machine = created.device.machine_id
    first = batch(machine, rows=10)
    client.post("/v1/requests/batch", json=first, headers=bearer(created.token))
    again = {**batch(machine, rows=5), "rows": [*first["rows"][:3], *batch(machine, rows=4)["rows"]]}
    again["rows"].append(again["rows"][-1])  # the same row twice in one batch
    answer = client.post("/v1/requests/batch", json=again, headers=bearer(created.token)).json()
    assert (answer["accepted"], answer["duplicates"]) == (4, 4)
    assert _count(warehouse) == 14


def test_twenty_devices_sending_concurrently_give_exact_counts(live_server, postgres_url, warehouse) -> None:
    owner = make_user(postgres_url)
    workspace = make_workspace(postgres_url, owner=owner)
    paired = [make_device(postgres_url, workspace=workspace) for _ in range(20)]
    batches = {p.token: [batch(p.device.machine_id, rows=50) for _ in range(3)] for p in paired}
    start = threading.Barrier(20)

    def send(token: str) -> list[tuple[int, int]]:
        results = []
        with httpx.Client(base_url=live_server, headers=bearer(token), timeout=60) as http:
            start.wait()
            # Each batch twice, the second copy racing other devices' first copies.
            for body in [*batches[token], *batches[token]]:
                response = http.post("/v1/requests/batch", json=body)
                assert response.status_code == 200, response.text
                results.append((response.json()["accepted"], response.json()["duplicates"]))
        return results

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(send, batches))
    assert _count(warehouse, workspace.id) == 20 * 3 * 50
    assert sum(a for device in results for a, _ in device) == 20 * 3 * 50
    assert sum(d for device in results for _, d in device) == 20 * 3 * 50
    per_device = (
        warehouse.client()
        .query(f"SELECT device_id, count() FROM {warehouse.databases.raw}.requests_dedup GROUP BY device_id")
        .result_rows
    )
    assert sorted(int(n) for _, n in per_device) == [150] * 20


def test_concurrent_copies_of_one_batch_are_counted_once(live_server, paired, warehouse) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=100)

    def send(_: int) -> int:
        response = httpx.post(
            f"{live_server}/v1/requests/batch", json=body, headers=bearer(created.token), timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()["accepted"]

    with ThreadPoolExecutor(6) as pool:
        accepted = list(pool.map(send, range(6)))
    assert sum(accepted) >= 100  # racing copies may each write; every read still counts each row once
    assert _count(warehouse) == 100


def _bad_row_7(machine_id: str) -> dict[str, Any]:
    body = batch(machine_id, rows=10)
    body["rows"][7]["input_tokens"] = -5
    return body


def _naive(machine_id: str) -> dict[str, Any]:
    body = batch(machine_id, rows=3)
    body["rows"][2]["started_at"] = "2026-05-01T10:00:00"
    return body


def _wrong_machine(machine_id: str) -> dict[str, Any]:
    body = batch(machine_id, rows=6)
    body["rows"][4]["machine_id"] = "someone-elses-laptop"
    return body


# (name, build request kwargs from machine id, expected status, words the message must contain)
BAD_INPUTS = [
    ("malformed json", lambda m: {"content": b'{"schema_version": 1, "rows": [', "headers": {}}, 400, ["not valid JSON"]),
    ("not an object", lambda m: {"json": [1, 2, 3]}, 422, ["JSON object"]),
    ("wrong schema_version", lambda m: {"json": {**batch(m, rows=2), "schema_version": 2}}, 422, ["schema_version 2"]),
    ("bad field in row 7", lambda m: {"json": _bad_row_7(m)}, 422, ["row 7", "input_tokens"]),
    ("naive timestamp", lambda m: {"json": _naive(m)}, 422, ["row 2", "started_at", "timezone"]),
    ("wrong machine_id", lambda m: {"json": _wrong_machine(m)}, 422, ["row 4", "machine_id", "someone-elses-laptop"]),
    ("missing batch_id", lambda m: {"json": {"schema_version": 1, "rows": [row(m)]}}, 422, ["batch_id"]),
    ("empty rows", lambda m: {"json": {**batch(m, rows=1), "rows": []}}, 422, ["rows"]),
    ("unknown field", lambda m: {"json": {**batch(m, rows=1), "workspace_id": str(uuid.uuid4())}}, 422, ["workspace_id"]),
    ("too many rows", lambda m: {"json": batch(m, rows=31)}, 413, ["31 rows", "limit is 30"]),
    ("too many bytes", lambda m: {"content": json.dumps(batch(m, rows=29, endpoint="/v1/" + "x" * 500)).encode()}, 413, ["bytes"]),
    ("gzip bomb", lambda m: {"content": gzip.compress(b" " * 200_000), "headers": {"Content-Encoding": "gzip"}}, 413, ["decompressed"]),
    ("bad gzip", lambda m: {"content": b"\x1f\x8bnot gzip at all", "headers": {"Content-Encoding": "gzip"}}, 400, ["gzip"]),
    ("truncated gzip", lambda m: {"content": gzip.compress(json.dumps(batch(m, 2)).encode())[:-12], "headers": {"Content-Encoding": "gzip"}}, 400, ["gzip"]),
    ("unknown encoding", lambda m: {"content": b"{}", "headers": {"Content-Encoding": "br"}}, 415, ["br"]),
]  # fmt: skip


def test_bad_input_is_refused_clearly_and_nothing_is_stored(settings, warehouse, postgres_url) -> None:
    from halton_api.app import create_app

    # One app and one device for every case (each case on a fresh stack would cost a second apiece).
    small = settings.model_copy(update={"max_batch_rows": 30, "max_batch_bytes": 30_000})
    with TestClient(create_app(small)) as client:
        created = make_device(
            postgres_url, workspace=make_workspace(postgres_url, owner=make_user(postgres_url))
        )
        for name, build, status, words in BAD_INPUTS:
            kwargs = build(created.device.machine_id)
            kwargs["headers"] = {**bearer(created.token), **kwargs.get("headers", {})}
            response = client.post("/v1/requests/batch", **kwargs)
            assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
            detail = response.json()["detail"]
            for word in words:
                assert word in detail, f"{name}: {word!r} not in {detail!r}"
            assert _raw_count(warehouse) == 0, name
            assert _last_sync(postgres_url, created.device.id) is None, name


def test_row_errors_list_row_and_field(client, paired) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=10)
    body["rows"][7]["provider"] = "acme-llm"
    body["rows"][9]["ended_at"] = "2000-01-01T00:00:00+00:00"
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert {k: errors[0][k] for k in ("row", "field")} == {"row": 7, "field": "provider"}
    assert errors[1]["row"] == 9 and "ended_at is before started_at" in errors[1]["message"]


def test_unknown_missing_and_malformed_tokens_get_401(client, paired) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=1)
    assert client.post("/v1/requests/batch", json=body).status_code == 401
    assert client.post("/v1/requests/batch", json=body, headers=bearer("hm_sync_nope")).status_code == 401
    forged = created.token[:-6] + ("AAAAAA" if not created.token.endswith("AAAAAA") else "BBBBBB")
    response = client.post("/v1/requests/batch", json=body, headers=bearer(forged))
    assert response.status_code == 401
    assert "cloud connect" in response.json()["detail"]


def _set_status(postgres_url: str, workspace, device_id: uuid.UUID, status: str) -> None:
    from halton_api.store.audit import Actor

    run(
        postgres_url,
        lambda c: devices.set_status(
            c, workspace_id=workspace.id, device_id=device_id, status=status, actor=Actor.system()
        ),
    )


def test_a_revoked_token_gets_401_on_the_next_batch(client, paired, postgres_url, warehouse) -> None:
    workspace, created = paired
    machine = created.device.machine_id
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token)).status_code
        == 200
    )
    _set_status(postgres_url, workspace, created.device.id, "revoked")
    response = client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert client.get("/v1/daemon/whoami", headers=bearer(created.token)).status_code == 401
    assert _count(warehouse) == 2


def test_a_removed_device_gets_403_and_syncs_again_once_reinstated(
    client, paired, postgres_url, warehouse
) -> None:
    workspace, created = paired
    machine = created.device.machine_id
    _set_status(postgres_url, workspace, created.device.id, "removed")
    response = client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token))
    assert response.status_code == 403
    assert "removed" in response.json()["detail"] and "cloud resume" in response.json()["detail"]
    assert client.get("/v1/daemon/whoami", headers=bearer(created.token)).status_code == 403
    _set_status(postgres_url, workspace, created.device.id, "active")
    response = client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token))
    assert response.status_code == 200
    assert _count(warehouse) == 2


def test_a_token_of_workspace_a_only_ever_writes_to_a(client, postgres_url, warehouse) -> None:
    owner = make_user(postgres_url)
    a, b = make_workspace(postgres_url, owner=owner), make_workspace(postgres_url, owner=owner)
    device_a = make_device(postgres_url, workspace=a, machine_id="shared-machine-id")
    device_b = make_device(postgres_url, workspace=b, machine_id="shared-machine-id")
    body = batch("shared-machine-id", rows=7)
    assert client.post("/v1/requests/batch", json=body, headers=bearer(device_a.token)).status_code == 200
    assert (_count(warehouse, a.id), _count(warehouse, b.id)) == (7, 0)
    # The same rows through B's token land in B, separately: one tenant never dedupes against another.
    answer = client.post("/v1/requests/batch", json=body, headers=bearer(device_b.token)).json()
    assert answer["accepted"] == 7
    assert (_count(warehouse, a.id), _count(warehouse, b.id)) == (7, 7)


def test_repeated_bad_tokens_are_rate_limited(settings, postgres_url, warehouse) -> None:
    from halton_api.app import create_app

    strict = settings.model_copy(update={"bad_auth_burst": 3, "bad_auth_per_minute": 1})
    with TestClient(create_app(strict)) as client:
        created = make_device(
            postgres_url, workspace=make_workspace(postgres_url, owner=make_user(postgres_url))
        )
        body = batch(created.device.machine_id, rows=1)
        statuses = [
            client.post("/v1/requests/batch", json=body, headers=bearer(f"hm_sync_guess{i}")).status_code
            for i in range(5)
        ]
        assert statuses == [401, 401, 401, 429, 429]
        limited = client.post("/v1/requests/batch", json=body, headers=bearer("hm_sync_again"))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "wait" in limited.json()["detail"]


def test_503_with_retry_after_when_the_warehouse_is_down(settings, postgres_url) -> None:
    from halton_api.app import create_app
    from halton_warehouse import WarehouseSettings

    down = settings.model_copy(
        update={"warehouse": WarehouseSettings(clickhouse_url="http://127.0.0.1:9/"), "warehouse_retries": 1}
    )
    with TestClient(create_app(down)) as client:
        created = make_device(
            postgres_url, workspace=make_workspace(postgres_url, owner=make_user(postgres_url))
        )
        response = client.post(
            "/v1/requests/batch", json=batch(created.device.machine_id, 3), headers=bearer(created.token)
        )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "warehouse" in response.json()["detail"]
    assert _last_sync(postgres_url, created.device.id) is None


def test_known_projects_are_registered_once_and_new_ones_still_are(
    client, paired, postgres_url, monkeypatch
) -> None:
    from halton_api.store import projects

    registered: list[set[str]] = []
    original = projects.register_device_projects

    async def counting(conn, *, slugs, **rest):
        registered.append(set(slugs))
        return await original(conn, slugs=slugs, **rest)

    monkeypatch.setattr(projects, "register_device_projects", counting)
    client.app.state.known_projects = projects.KnownProjects()
    workspace, created = paired
    machine = created.device.machine_id
    for body in (
        batch(machine, 3),
        batch(machine, 3),
        batch(machine, 2, project="acme/new"),
        batch(machine, 2),
    ):
        assert client.post("/v1/requests/batch", json=body, headers=bearer(created.token)).status_code == 200
    assert registered == [{"acme/app"}, {"acme/new"}]
    with psycopg.connect(postgres_url) as conn:
        slugs = conn.execute(
            "SELECT slug FROM projects WHERE workspace_id = %s ORDER BY slug", (workspace.id,)
        )
        assert [s for (s,) in slugs] == ["acme/app", "acme/new"]


def test_last_sync_is_written_on_the_first_batch_then_at_most_every_interval(
    client, paired, postgres_url
) -> None:

    now = [1000.0]
    client.app.state.sync_clock = devices.SyncClock(interval=10.0, clock=lambda: now[0])
    _, created = paired
    machine = created.device.machine_id

    def send() -> datetime | None:
        assert (
            client.post(
                "/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token)
            ).status_code
            == 200
        )
        return _last_sync(postgres_url, created.device.id)

    first = send()
    assert first is not None
    now[0] += 9.9
    assert send() == first  # within the interval: not written again
    now[0] += 0.1
    later = send()
    assert later is not None and later > first


def test_a_rejected_batch_does_not_count_as_the_first_sync(client, paired, postgres_url) -> None:

    client.app.state.sync_clock = devices.SyncClock(interval=3600.0)
    _, created = paired
    machine = created.device.machine_id
    assert (
        client.post("/v1/requests/batch", json=_naive(machine), headers=bearer(created.token)).status_code
        == 422
    )
    assert _last_sync(postgres_url, created.device.id) is None
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 1), headers=bearer(created.token)).status_code
        == 200
    )
    assert _last_sync(postgres_url, created.device.id) is not None


def test_revocation_and_removal_are_seen_on_the_very_next_batch_however_busy_the_device(
    client, paired, postgres_url, warehouse
) -> None:
    workspace, created = paired
    machine = created.device.machine_id
    for _ in range(3):  # the device's sync time and projects are known to this process by now
        assert (
            client.post(
                "/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token)
            ).status_code
            == 200
        )
    _set_status(postgres_url, workspace, created.device.id, "removed")
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token)).status_code
        == 403
    )
    _set_status(postgres_url, workspace, created.device.id, "revoked")
    assert (
        client.post("/v1/requests/batch", json=batch(machine, 2), headers=bearer(created.token)).status_code
        == 401
    )
    assert _count(warehouse) == 6


def test_the_sync_clock_and_known_projects_stay_bounded() -> None:
    from halton_api.store import projects

    now = [0.0]
    clock = devices.SyncClock(interval=10.0, limit=2, clock=lambda: now[0])
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert clock.due(a)
    clock.written(a)
    clock.written(b)
    assert not clock.due(a) and not clock.due(b)
    clock.written(c)  # over the limit: forgets the others, which then write once more
    assert clock.due(a) and not clock.due(c)

    known = projects.KnownProjects(limit=2)
    workspace = uuid.uuid4()
    known.remember(workspace, {"x", "y"})
    assert known.unknown(workspace, {"x", "y", "z"}) == {"z"}
    assert known.unknown(uuid.uuid4(), {"x"}) == {"x"}  # per workspace
    known.remember(workspace, {"z"})
    assert known.unknown(workspace, {"x", "z"}) == {"x"}


# Bounds: what a batch may hold so that nothing downstream breaks (issue 16).

NOW = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _window(client: TestClient) -> None:
    """The app's ingestion window with its clock fixed at NOW (the window's far end is NOW plus 24 hours)."""
    client.app.state.ingest_window = IngestWindow.from_settings(client.app.state.settings, clock=lambda: NOW)


def _timed(machine_id: str, *times: tuple[str, str]) -> dict[str, Any]:
    """A batch of rows (started_at, ended_at), a minute before NOW but for the `times` given to rows 1, 2…"""
    body = batch(machine_id, rows=len(times) + 1, started_at=NOW - timedelta(minutes=1))
    for row_, (started, ended) in zip(body["rows"][1:], times, strict=True):
        row_["started_at"], row_["ended_at"] = started, ended
    return body


@pytest.mark.parametrize(
    ("started", "ended", "field"),
    [
        ("1899-12-31T23:59:59+00:00", "1900-01-01T00:00:00+00:00", "started_at"),
        ("1950-06-01T00:00:00+00:00", "1950-06-01T00:00:02+00:00", "started_at"),
        ("2019-12-31T23:59:59.999+00:00", "2020-01-01T00:00:01+00:00", "started_at"),
        ("2026-03-02T09:59:00+00:00", "2026-03-02T10:00:00.001+00:00", "ended_at"),
        ("2200-01-01T00:00:00+00:00", "2200-01-01T00:00:02+00:00", "started_at"),
        ("9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59-05:00", "started_at"),
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00+01:00", "started_at"),
    ],
    ids=lambda value: value[:10] if isinstance(value, str) else value,
)
def test_a_time_outside_the_window_refuses_the_batch_naming_row_and_field(
    client, paired, warehouse, started: str, ended: str, field: str
) -> None:
    _window(client)
    _, created = paired
    body = _timed(created.device.machine_id, (started, ended))
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert [(e["row"], e["field"]) for e in problem["errors"]] == [(1, field)]
    assert (
        f"row 1, {field}" in problem["detail"] and "nothing from this batch was stored" in problem["detail"]
    )
    assert _raw_count(warehouse) == 0


def test_the_windows_edges_are_stored_on_their_own_day(client, paired, warehouse) -> None:
    _window(client)
    _, created = paired
    body = _timed(
        created.device.machine_id,
        ("2020-01-01T00:00:00+00:00", "2020-01-01T00:00:00.500+00:00"),
        ("2026-03-02T10:00:00+00:00", "2026-03-02T10:00:00+00:00"),  # exactly 24 hours ahead
        ("2026-03-02T11:00:00+01:00", "2026-03-02T11:00:00+01:00"),  # the same instant, written in +01:00
    )
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 200, response.text
    stored = (
        warehouse.client()
        .query(
            f"SELECT toString(started_at), toString(toDate(started_at)) FROM {warehouse.databases.raw}.requests "
            "ORDER BY started_at"
        )
        .result_rows
    )
    assert [tuple(r) for r in stored] == [
        ("2020-01-01 00:00:00.000", "2020-01-01"),
        ("2026-03-01 09:59:00.000", "2026-03-01"),
        ("2026-03-02 10:00:00.000", "2026-03-02"),
        ("2026-03-02 10:00:00.000", "2026-03-02"),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("latency_ms", 2**32),
        ("ttfb_ms", 2**32),
        ("latency_ms", 2**64),
        ("input_tokens", 10**12 + 1),
        ("status_code", 1000),
        ("cost_usd", "1000000000"),
        ("cost_usd", "0.0000000001"),
    ],
)
def test_a_number_past_its_column_is_a_422_naming_row_and_field(
    client, paired, warehouse, field, value
) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=3)
    body["rows"][2][field] = value
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 422, response.text
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [(2, field)]
    assert _raw_count(warehouse) == 0


def test_every_number_at_the_top_of_its_column_is_stored_exactly(client, paired, warehouse) -> None:
    _, created = paired
    body = batch(
        created.device.machine_id,
        rows=2,
        status_code=999,
        input_tokens=10**12,
        cache_read_tokens=10**12,
        output_tokens=10**12,
        reasoning_tokens=10**12,
        cost_usd="999999999.999999999",
        latency_ms=2**32 - 1,
        ttfb_ms=2**32 - 1,
    )
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 200, response.text
    stored = (
        warehouse.client()
        .query(
            "SELECT status_code, input_tokens, output_tokens, toString(cost_usd), latency_ms, ttfb_ms "
            f"FROM {warehouse.databases.raw}.requests"
        )
        .result_rows
    )
    assert [tuple(r) for r in stored] == [
        (999, 10**12, 10**12, "999999999.999999999", 2**32 - 1, 2**32 - 1)
    ] * 2


def test_region_and_web_searches_are_stored_and_null_when_the_meter_did_not_send_them(
    client, paired, warehouse
) -> None:
    _, created = paired
    machine = created.device.machine_id
    sent = [
        row(machine, region="us", web_search_requests=2**32 - 1),
        row(machine, region="global", web_search_requests=0),
        row(machine),  # an older meter: neither field in the row
    ]
    body = {"schema_version": 1, "batch_id": str(uuid.uuid4()), "rows": sent}
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 200, response.text
    stored = dict(
        (str(r[0]), (r[1], r[2]))
        for r in warehouse.client()
        .query(
            f"SELECT request_uid, region, web_search_requests FROM {warehouse.databases.raw}.requests_dedup"
        )
        .result_rows
    )
    assert [stored[r["request_uid"]] for r in sent] == [("us", 2**32 - 1), ("global", 0), (None, None)]
    too_long = {**body, "batch_id": str(uuid.uuid4()), "rows": [row(machine, region="x" * 33)]}
    refused = client.post("/v1/requests/batch", json=too_long, headers=bearer(created.token))
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "region", refused.text


def test_a_request_uid_twice_with_different_content_is_refused_naming_both_rows(
    client, paired, warehouse
) -> None:
    _, created = paired
    body = batch(created.device.machine_id, rows=5)
    body["rows"][4] = {**body["rows"][1], "cost_usd": "0.000000001"}
    body["rows"].append(dict(body["rows"][2]))  # an identical copy: the same call, not a conflict
    response = client.post("/v1/requests/batch", json=body, headers=bearer(created.token))
    assert response.status_code == 422, response.text
    assert "rows 1 and 4" in response.json()["detail"]
    assert [(e["row"], e["field"]) for e in response.json()["errors"]] == [
        (1, "request_uid"),
        (4, "request_uid"),
    ]
    assert _raw_count(warehouse) == 0


def _projects(postgres_url: str, workspace_id: uuid.UUID) -> list[str]:
    with psycopg.connect(postgres_url) as conn:
        sql = "SELECT slug FROM projects WHERE workspace_id = %s ORDER BY slug"
        return [slug for (slug,) in conn.execute(sql, (workspace_id,))]


def _tagged(machine_id: str, *projects: str) -> dict[str, Any]:
    body = batch(machine_id, rows=len(projects))
    for row_, project in zip(body["rows"], projects, strict=True):
        row_["project"] = project
    return body


def test_new_projects_per_device_and_hour_are_limited_and_a_batch_over_stores_nothing(
    settings, postgres_url, warehouse
) -> None:
    from halton_api.app import create_app

    quota = settings.model_copy(update={"device_new_projects_per_hour": 5})
    with TestClient(create_app(quota)) as client:  # migrates the control plane
        workspace = make_workspace(postgres_url, owner=make_user(postgres_url))
        one = make_device(postgres_url, workspace=workspace)
        other = make_device(postgres_url, workspace=workspace)

        def send(device, *projects: str) -> httpx.Response:
            body = _tagged(device.device.machine_id, *projects)
            return client.post("/v1/requests/batch", json=body, headers=bearer(device.token))

        assert send(one, "p1", "p2", "p3").status_code == 200
        over = send(one, "p1", "p4", "p5", "p6")
        assert over.status_code == 429, over.text
        assert 1 <= int(over.headers["Retry-After"]) <= 3600
        assert "at most 5 new projects per hour" in over.json()["detail"]
        assert "nothing from this batch was stored" in over.json()["detail"]
        assert _raw_count(warehouse) == 3
        assert _projects(postgres_url, workspace.id) == ["p1", "p2", "p3"]

        assert send(one, *["p1", "p2", "p3"] * 20).status_code == 200  # projects it has never count
        assert send(one, "p4", "p5").status_code == 200  # five in the hour: the quota exactly
        assert send(other, "p6").status_code == 200  # each device has its own quota
        assert send(one, "p6", "p7").status_code == 429
        # An hour later, the device's projects no longer count.
        with psycopg.connect(postgres_url) as conn:
            conn.execute(
                "UPDATE projects SET created_at = created_at - interval '61 minutes' WHERE registered_by_device = %s",
                (one.device.id,),
            )
        assert send(one, "p6", "p7").status_code == 200
        # A batch with more new projects than an hour allows would wait forever: 413, so the meter halves it.
        alone = send(one, *[f"q{i}" for i in range(6)])
        assert alone.status_code == 413, alone.text
        assert "at most 5 new projects per hour" in alone.json()["detail"]
    assert _projects(postgres_url, workspace.id) == ["p1", "p2", "p3", "p4", "p5", "p6", "p7"]
    assert _raw_count(warehouse) == 3 + 60 + 2 + 1 + 2


def test_concurrent_batches_of_one_device_cannot_pass_the_project_quota_together(
    live_server, paired, postgres_url, warehouse
) -> None:
    """16 batches of 10 new projects at once against the default 100 an hour: exactly 10 get through."""
    workspace, created = paired
    bodies = [_tagged(created.device.machine_id, *[f"b{b}-p{p}" for p in range(10)]) for b in range(16)]
    start = threading.Barrier(16)

    def send(body: dict[str, Any]) -> int:
        with httpx.Client(base_url=live_server, headers=bearer(created.token), timeout=60) as http:
            start.wait()
            return http.post("/v1/requests/batch", json=body).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = sorted(pool.map(send, bodies))
    assert statuses == [200] * 10 + [429] * 6
    assert len(_projects(postgres_url, workspace.id)) == 100
    assert _count(warehouse) == 100
