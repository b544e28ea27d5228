"""Three API processes behind nginx, sharing one PostgreSQL and one warehouse, as production runs them: no
process keeps to itself what another must see. Sixteen meters ingest at once through the proxy and every row
is stored exactly once; a PDF started through one process is polled and downloaded through another; a lockout
earned through the proxy holds on every process; a revoked token is refused by every process at its next
batch; bad credentials sent through the proxy spend one burst for all processes. nginx names the process
that answered each request (`X-Upstream`)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from reverse_proxy import Nginx

from cloud_support import PASSWORD, CloudProcess, Person, build_marts
from halton_api import tokens
from halton_api.store import workspaces
from halton_api.testing.factories import batch, bearer, make_device, run
from halton_meter.testing.processes import free_port

pytestmark = pytest.mark.slow

PROCESSES = 3
DEVICES = 16
BATCHES_PER_DEVICE = 8
ROWS_PER_BATCH = 200
LOCK_AFTER = 4
BAD_AUTH_BURST = 10


@dataclass
class Deployment:
    proxy: Nginx
    processes: list[CloudProcess]
    database_url: str

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def upstreams(self) -> list[str]:
        return [f"127.0.0.1:{p.port}" for p in self.processes]


@pytest.fixture
def deployment(postgres_url: str, warehouse, server_dir: Path) -> Iterator[Deployment]:
    proxy_port = free_port()
    first = CloudProcess.on_stores(
        server_dir / "api-1", database_url=postgres_url, warehouse_url=warehouse.url, prefix=warehouse.prefix,
        PUBLIC_URL=f"http://127.0.0.1:{proxy_port}", FORWARDED_ALLOW_IPS="127.0.0.1",
        SIGN_IN_LOCK_AFTER=str(LOCK_AFTER), SIGN_IN_LOCK_SECONDS="900",
        BAD_AUTH_BURST=str(BAD_AUTH_BURST), BAD_AUTH_PER_MINUTE="0.01",  # a token back every 100 minutes
    )  # fmt: skip
    # One secret, one data dir: what one process signs (sessions, CSRF tokens), the others accept.
    processes = [first] + [
        replace(first, port=free_port(), log_path=server_dir / f"api-{n}.log")
        for n in range(2, PROCESSES + 1)
    ]
    (server_dir / "api-1").mkdir(parents=True, exist_ok=True)
    for process in processes:
        process.start()
    proxy = Nginx(server_dir / "nginx", [f"127.0.0.1:{p.port}" for p in processes], port=proxy_port)
    try:
        proxy.start()
        yield Deployment(proxy, processes, postgres_url)
    finally:
        proxy.stop()
        for process in processes:
            process.stop()


def served_by(response: httpx.Response) -> str:
    return response.headers["x-upstream"]


def test_three_processes_behind_nginx_share_everything(deployment: Deployment, warehouse) -> None:
    owner = Person(deployment.url, f"ops-{secrets.token_hex(3)}@example.com").sign_up("Scale Co")
    workspace = run(deployment.database_url, lambda c: workspaces.get_workspace(c, slug=owner.workspace_slug))
    assert workspace is not None

    # --- sixteen meters at once, every row stored exactly once ------------------------------------------
    devices = [
        make_device(deployment.database_url, workspace=workspace, machine_id=f"scale-{n:02d}")
        for n in range(DEVICES)
    ]
    batches = {
        d.device.id: [batch(d.device.machine_id, rows=ROWS_PER_BATCH) for _ in range(BATCHES_PER_DEVICE)]
        for d in devices
    }

    def meter(created) -> list[tuple[int, int, str]]:
        """One meter: its batches in order, each sent once (no retries: a failure fails the test)."""
        answers = []
        with httpx.Client(base_url=deployment.url, timeout=60, headers=bearer(created.token)) as client:
            for body in batches[created.device.id]:
                response = client.post("/v1/requests/batch", json=body)
                assert response.status_code == 200, (response.text, deployment.proxy.errors())
                answers.append(
                    (response.json()["accepted"], response.json()["duplicates"], served_by(response))
                )
        return answers

    with ThreadPoolExecutor(DEVICES) as pool:
        answers = [a for per_meter in pool.map(meter, devices) for a in per_meter]
    total = DEVICES * BATCHES_PER_DEVICE * ROWS_PER_BATCH
    assert sum(a for a, _, _ in answers) == total and sum(d for _, d, _ in answers) == 0
    assert {upstream for _, _, upstream in answers} == set(deployment.upstreams)
    # Each meter sends its first batch again (a retry after a lost answer): every process finds it stored.
    with ThreadPoolExecutor(DEVICES) as pool:
        again = list(
            pool.map(
                lambda d: httpx.post(f"{deployment.url}/v1/requests/batch", json=batches[d.device.id][0],
                                     headers=bearer(d.token), timeout=60),
                devices,
            )
        )  # fmt: skip
    assert [r.json() for r in again] == [
        {"batch_id": batches[d.device.id][0]["batch_id"], "accepted": 0, "duplicates": ROWS_PER_BATCH}
        for d in devices
    ]
    client = warehouse.client()
    stored = client.query(
        f"SELECT count(), uniqExact(request_uid), uniqExact(device_id) FROM {warehouse.databases.raw}.requests"
        " WHERE workspace_id = {w:UUID}",
        parameters={"w": workspace.id},
    ).result_rows[0]
    assert stored == (total, total, DEVICES)  # no row twice, not even before a merge

    # --- a PDF started through one process, polled and downloaded through another -----------------------
    build_marts(warehouse, deployment.database_url, as_of=datetime.now(UTC).date())
    ws = owner.workspace_slug
    started = owner.post_form(
        f"/{ws}/reports/new?range=this_month", f"/{ws}/reports/new?kind=executive&range=this_month",
        {"kind": "executive"},
    )  # fmt: skip
    assert started.status_code == 303, started.text
    starter = served_by(started)
    job_id = started.headers["location"].rsplit("/", 1)[1]
    pollers: set[str] = set()
    deadline = time.monotonic() + 180
    while True:
        polled = owner.client.get(f"/v1/{ws}/reports/{job_id}")
        assert polled.status_code == 200, polled.text
        pollers.add(served_by(polled))
        job = polled.json()
        if job["state"] != "running" and pollers - {starter}:
            break
        assert time.monotonic() < deadline, f"the job did not finish: {job}"
        time.sleep(0.1)
    assert job["state"] == "done", job
    for _ in range(PROCESSES):  # round robin: another process answers within as many requests
        download = owner.client.get(job["download_url"])
        assert download.status_code == 200 and download.content.startswith(b"%PDF-"), download.text[:500]
        if served_by(download) != starter:
            break
    assert served_by(download) != starter

    # --- a lockout earned through the proxy holds on every process ----------------------------------------
    guessed = f"someone-{secrets.token_hex(3)}@example.com"
    Person(deployment.url, guessed).sign_up("Guessed Co").client.close()
    failed = [sign_in(deployment.url, guessed, "wrong password") for _ in range(LOCK_AFTER)]
    assert [status for status, _, _ in failed] == [400] * LOCK_AFTER
    assert len({upstream for _, _, upstream in failed}) > 1  # the failures were counted by several processes
    for process in deployment.processes:
        status, text, _ = sign_in(process.url, guessed, PASSWORD)
        assert status == 429 and "too many failed sign-ins to this account" in text, (process.url, text)

    # --- a revoked token is refused by every process at its next batch -------------------------------------
    victim = devices[0]
    for process in deployment.processes:  # each process has just served this token
        answer = httpx.post(f"{process.url}/v1/requests/batch", json=batch(victim.device.machine_id, rows=1),
                            headers=bearer(victim.token), timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
    revoked = owner.post_form(f"/{ws}/settings/devices/{victim.device.id}/revoke", f"/{ws}/settings/devices")
    assert revoked.status_code == 303, revoked.text
    for process in deployment.processes:
        answer = httpx.post(f"{process.url}/v1/requests/batch", json=batch(victim.device.machine_id, rows=1),
                            headers=bearer(victim.token), timeout=30)  # fmt: skip
        assert answer.status_code == 401, (process.url, answer.text)

    # --- bad credentials are counted once for all processes (last: this address is then held) -------------
    bogus = [
        httpx.post(f"{deployment.url}/v1/requests/batch", json=batch("nobody", rows=1),
                   headers=bearer(tokens.mint(tokens.DEVICE_TOKEN_PREFIX)), timeout=30)
        for _ in range(BAD_AUTH_BURST - PROCESSES)  # the revoked token above failed once per process
    ]  # fmt: skip
    assert [r.status_code for r in bogus] == [401] * len(bogus)
    assert len({served_by(r) for r in bogus}) > 1  # counted by several processes
    for process in deployment.processes:  # the address's burst is spent, whichever process is asked
        answer = httpx.post(f"{process.url}/v1/requests/batch", json=batch("nobody", rows=1),
                            headers=bearer(tokens.mint(tokens.DEVICE_TOKEN_PREFIX)), timeout=30)  # fmt: skip
        assert answer.status_code == 429 and "from this address" in answer.json()["detail"], answer.text
    owner.client.close()


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(base_url: str, email: str, password: str) -> tuple[int, str, str | None]:
    """A fresh browser signing in at `base_url`: the status, the page, and the process that answered."""
    with httpx.Client(base_url=base_url, timeout=30) as browser:
        token = CSRF_FIELD.search(browser.get("/signin").text).group(1)
        response = browser.post("/signin", data={"csrf_token": token, "email": email, "password": password})
        return response.status_code, response.text, response.headers.get("x-upstream")
