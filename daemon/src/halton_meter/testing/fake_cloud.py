"""A fake Halton Meter Cloud on 127.0.0.1: a small real HTTP server speaking the meter's side of the API.

It is the unit-level stand-in for the cloud when testing the meter's pairing and sync worker (the true
end-to-end tests run against the real API). Routes and shapes follow the contract:

* ``POST /v1/pairing/start`` -> 201 ``{code, poll_secret, approve_url, expires_at, interval}``;
* ``POST /v1/pairing/poll`` (long-poll up to ``wait_seconds``) -> 200 pending / approved (the token,
  once), 410 denied / expired / consumed / cancelled, 404 unknown;
* ``POST /v1/pairing/cancel`` ``{poll_secret}`` -> 200 ``{status}`` (idempotent; a pending or approved but
  uncollected code becomes ``cancelled``, its device revoked), 404 unknown;
* ``GET /v1/daemon/whoami`` (with ``spend_limits``, the hard limits a test sets), ``POST /v1/daemon/report``
  (kept in ``reports``), ``POST /v1/daemon/limit-events`` (kept in ``limit_events`` by event_uid), ``DELETE
  /v1/daemon/disconnect`` (Bearer token; 401 revoked, 403 removed);
* ``POST /v1/requests/batch`` (Bearer; gzip allowed) -> 200 ``{batch_id, accepted, duplicates}``,
  idempotent per ``request_uid``;
* ``GET /healthz`` -> 200 ``{status: ok}`` (what the meter probes while it waits to retry);
* ``GET /v1/rates`` (no token) -> 200 the price catalogue (``catalogue``; the packaged one until a test
  sets another) with its ETag, 304 when ``If-None-Match`` names it. A row sent again with another cost or
  price card replaces the stored one (a correction, as the real cloud stores it).

Knobs a test turns: :meth:`FakeCloud.approve`, :meth:`deny`, :meth:`expire` a code; :meth:`revoke`
(-> 401) and :meth:`remove` / :meth:`reinstate` a machine (-> 403); :meth:`fail_next` (503 or 429 with
Retry-After); :meth:`go_down` / :meth:`come_up` (the port stops answering, open connections are cut);
``max_rows`` (413 above it); ``reject_uids`` (422 naming that row, or not when ``name_rows`` is off);
``batch_delay`` (a slow ingest, to kill a meter mid-request). ``received`` counts each request_uid
once per accepted copy, ``stored`` keeps one row per request_uid after dedupe.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import ValidationError

from halton_meter.catalogue import packaged_text
from halton_meter.paths import MeterPaths
from halton_meter.protocol import RequestBatch, RequestRow

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BATCH_PATH = "/v1/requests/batch"
REPORT_PATH = "/v1/daemon/report"
LIMIT_EVENTS_PATH = "/v1/daemon/limit-events"
RATES_PATH = "/v1/rates"


@dataclass
class Pairing:
    code: str
    poll_secret: str
    machine_id: str
    hostname: str
    meter_version: str
    expires_at: float
    status: str = "pending"  # pending, approved, consumed, denied, expired, cancelled
    token: str | None = None


@dataclass
class Device:
    token: str
    device_id: str
    machine_id: str
    hostname: str
    status: str = "active"  # active, revoked, removed


@dataclass
class BatchSeen:
    status: int
    rows: int
    gzip: bool
    uids: list[str] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class FakeCloud:
    """See the module docstring. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(self, *, port: int = 0, code_ttl: float = 600.0, interval: float = 0.05) -> None:
        self.port = port
        self.code_ttl = code_ttl
        self.interval = interval
        self.workspace_id = str(uuid.uuid4())
        self.workspace_slug = "acme-co"
        self.workspace_name = "Acme Co"
        self.dashboard = "https://app.haltonmeter.com"
        self.max_rows: int | None = None
        self.max_bytes = 8 * 1024 * 1024
        self.reject_uids: dict[str, str] = {}
        self.name_rows = True
        self.batch_delay = 0.0
        self.batch_started = threading.Event()
        self.pairings: dict[str, Pairing] = {}
        self.reports: dict[str, dict[str, Any]] = {}  # each device's last state report, by device id
        self.devices: dict[str, Device] = {}
        self.received: Counter[str] = Counter()
        self.accepted_total = 0  # sum of "accepted" over every 200 answer: one per request_uid
        self.stored: dict[str, dict[str, Any]] = {}
        self.catalogue: dict[str, Any] | None = None  # what GET /v1/rates serves; None: the packaged one
        self.spend_limits: list[dict[str, Any]] = []  # whoami's hard limits, in the wire form
        self.limit_events: dict[str, dict[str, Any]] = {}  # blocks and overrides received, by event_uid
        self.batches: list[BatchSeen] = []
        self.log: list[tuple[float, str, str, int]] = []  # (time.monotonic(), method, path, status)
        self._failures: list[tuple[str, int, float | None]] = []
        self._lock = threading.Condition()
        self._polls_held = 0  # long polls that found their code pending and began to wait
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeCloud:
        handler = type("Handler", (_Handler,), {"cloud": self})
        self._server = _Server(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-cloud", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._cut_connections()
        with self._lock:
            self._lock.notify_all()

    def go_down(self) -> None:
        """Stop answering: the listening socket closes and open connections are cut."""
        self.stop()

    def come_up(self) -> None:
        """Answer again on the same port, with the same state."""
        self.start()

    def __enter__(self) -> FakeCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _cut_connections(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- pairing knobs -------------------------------------------------------------------------

    def pending_codes(self) -> list[str]:
        with self._lock:
            return [p.code for p in self.pairings.values() if p.status == "pending"]

    def wait_for_code(self, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = self.pending_codes()
            if codes:
                return codes[-1]
            time.sleep(0.02)
        raise TimeoutError("no pairing code was requested")

    def wait_for_held_poll(self, timeout: float = 60.0) -> None:
        """Until a meter's long poll is waiting on a pending code: what a test acts on, instead of a sleep
        that a loaded machine can outlast."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._polls_held > 0, timeout):
                raise TimeoutError(f"no pairing poll was held within {timeout:g} s")

    def approve(self, code: str) -> str:
        """Approve a code as the browser would; returns the minted token (ValueError when the code is no
        longer pending, as the real approve page refuses it)."""
        with self._lock:
            pairing = self.pairings[code]
            if pairing.status != "pending":
                raise ValueError(f"code {code} is {pairing.status}: it cannot be approved")
            token = "hm_sync_" + secrets.token_urlsafe(24)
            existing = next((d for d in self.devices.values() if d.machine_id == pairing.machine_id), None)
            device_id = existing.device_id if existing else str(uuid.uuid4())
            self.devices[token] = Device(token, device_id, pairing.machine_id, pairing.hostname)
            pairing.status, pairing.token = "approved", token
            self._lock.notify_all()
            return token

    def deny(self, code: str) -> None:
        self._set_pairing(code, "denied")

    def expire(self, code: str) -> None:
        self._set_pairing(code, "expired")

    def _set_pairing(self, code: str, status: str) -> None:
        with self._lock:
            self.pairings[code].status = status
            self._lock.notify_all()

    def pair(self, paths: MeterPaths, *, hostname: str = "test-host") -> str:
        """Pair a meter home with this fake as ``cloud connect`` would, approving at once; returns the token."""
        from halton_meter.cloud import link, pairing
        from halton_meter.cloud.client import CloudClient
        from halton_meter.home import ensure_machine_id

        machine_id = ensure_machine_id(paths)
        with CloudClient(self.url) as client:
            ticket = pairing.request_code(client, machine_id=machine_id, hostname=hostname)
            self.approve(ticket.code)
            approval = pairing.wait_for_approval(client, ticket, poll_interval=0.01, timeout=5)
        link.complete_pairing(
            paths, base_url=self.url, approval=approval, machine_id=machine_id, hostname=hostname
        )
        return approval.token

    # -- device knobs --------------------------------------------------------------------------

    def revoke(self, token: str | None = None) -> None:
        """Revoke one token (or every token) as the devices settings page would: 401 from now on."""
        self._set_devices(token, "revoked")

    def remove(self, token: str | None = None) -> None:
        """Remove the machine from the workspace: 403 from now on, the token stays valid."""
        self._set_devices(token, "removed")

    def reinstate(self, token: str | None = None) -> None:
        self._set_devices(token, "active")

    def _set_devices(self, token: str | None, status: str) -> None:
        with self._lock:
            for device in self.devices.values():
                if token is None or device.token == token:
                    device.status = status

    def device_status(self, token: str) -> str | None:
        with self._lock:
            device = self.devices.get(token)
            return device.status if device else None

    def fail_next(
        self, times: int = 1, *, status: int = 503, retry_after: float | None = 1.0, path: str = BATCH_PATH
    ) -> None:
        """The next ``times`` requests to ``path`` fail with ``status`` (and ``Retry-After`` if given)."""
        with self._lock:
            self._failures.extend([(path, status, retry_after)] * times)

    def _take_failure(self, path: str) -> tuple[int, float | None] | None:
        with self._lock:
            for index, (where, status, retry_after) in enumerate(self._failures):
                if where == path:
                    del self._failures[index]
                    return status, retry_after
        return None

    # -- observations --------------------------------------------------------------------------

    def unique_uids(self) -> set[str]:
        with self._lock:
            return set(self.stored)

    def statuses(self, path: str = BATCH_PATH) -> list[int]:
        with self._lock:
            return [status for _, _, where, status in self.log if where == path]

    def times(self, path: str = BATCH_PATH) -> list[float]:
        """When each request to ``path`` was answered (``time.monotonic()``)."""
        with self._lock:
            return [at for at, _, where, _ in self.log if where == path]

    # -- request handling ----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        route = (method, path.split("?", 1)[0])
        failure = self._take_failure(route[1])
        if failure is not None:
            status, retry_after = failure
            extra = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return status, {"detail": "the fake cloud is busy; retry shortly"}, extra
        if route == ("GET", "/healthz"):
            return 200, {"status": "ok"}, {}
        if route == ("GET", RATES_PATH):
            return self._rates(headers)
        if route == ("POST", "/v1/pairing/start"):
            return self._start(body)
        if route == ("POST", "/v1/pairing/poll"):
            return self._poll(body)
        if route == ("POST", "/v1/pairing/cancel"):
            return self._cancel(body)
        if route[1] in (
            "/v1/daemon/whoami",
            "/v1/daemon/disconnect",
            REPORT_PATH,
            BATCH_PATH,
            LIMIT_EVENTS_PATH,
        ):
            device, problem = self._device(
                headers, allow_removed=route == ("DELETE", "/v1/daemon/disconnect")
            )
            if problem is not None:
                return problem
            assert device is not None
            if route == ("GET", "/v1/daemon/whoami"):
                return 200, {**self._whoami(device), "spend_limits": self.spend_limits}, {}
            if route == ("DELETE", "/v1/daemon/disconnect"):
                with self._lock:
                    device.status = "revoked"
                return 204, None, {}
            if route == ("POST", REPORT_PATH):
                with self._lock:
                    self.reports[device.device_id] = json.loads(body)
                return 204, None, {}
            if route == ("POST", BATCH_PATH):
                return self._batch(device, headers, body)
            if route == ("POST", LIMIT_EVENTS_PATH):
                with self._lock:
                    for event in json.loads(body)["events"]:
                        self.limit_events[event["event_uid"]] = event
                return 204, None, {}
        return 404, {"detail": f"no route {method} {path}"}, {}

    def _start(self, body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        try:
            document = json.loads(body)
            machine_id, hostname, version = (
                document["machine_id"],
                document["hostname"],
                document["meter_version"],
            )
            if not all(isinstance(v, str) and v for v in (machine_id, hostname, version)):
                raise ValueError("empty field")
        except (ValueError, KeyError, TypeError) as exc:
            return 422, {"detail": f"machine_id, hostname and meter_version are required ({exc})"}, {}
        raw = "".join(secrets.choice(CROCKFORD) for _ in range(8))
        code = f"{raw[:4]}-{raw[4:]}"
        expires = time.time() + self.code_ttl
        with self._lock:
            self.pairings[code] = Pairing(
                code, secrets.token_urlsafe(24), machine_id, hostname, version, expires
            )
            pairing = self.pairings[code]
        return (
            201,
            {
                "code": code,
                "poll_secret": pairing.poll_secret,
                "approve_url": f"{self.dashboard}/connect?code={code}",
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
                "interval": self.interval,
            },
            {},
        )

    def _cancel(self, body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        try:
            secret = str(json.loads(body)["poll_secret"])
        except (ValueError, KeyError, TypeError) as exc:
            return 422, {"detail": f"poll_secret: {exc}"}, {}
        with self._lock:
            pairing = next((p for p in self.pairings.values() if p.poll_secret == secret), None)
            if pairing is None:
                return 404, {"detail": "code not found"}, {}
            if pairing.status in ("pending", "approved"):
                if pairing.token is not None:
                    self.devices[pairing.token].status = "revoked"
                pairing.status = "cancelled"
                self._lock.notify_all()
            return 200, {"status": pairing.status}, {}

    def _poll(self, body: bytes) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        try:
            document = json.loads(body)
            secret = str(document["poll_secret"])
            wait = float(document.get("wait_seconds", 0))
            if not 0 <= wait <= 25:
                raise ValueError("wait_seconds must be between 0 and 25")
        except (ValueError, KeyError, TypeError) as exc:
            return 422, {"detail": str(exc)}, {}
        deadline = time.monotonic() + wait
        with self._lock:
            pairing = next((p for p in self.pairings.values() if p.poll_secret == secret), None)
            if pairing is None:
                return 404, {"detail": "code not found"}, {}
            held = False
            while True:
                if pairing.status == "pending" and time.time() >= pairing.expires_at:
                    pairing.status = "expired"
                remaining = deadline - time.monotonic()
                if pairing.status != "pending" or remaining <= 0 or self._server is None:
                    break
                if not held:
                    held = True
                    self._polls_held += 1
                    self._lock.notify_all()
                self._lock.wait(min(remaining, max(pairing.expires_at - time.time(), 0.01), 0.5))
            if pairing.status == "pending":
                return 200, {"status": "pending"}, {}
            if pairing.status == "approved":
                pairing.status = "consumed"  # the token is handed out exactly once
                device = self.devices[pairing.token or ""]
                return 200, {"status": "approved", "token": device.token, **self._whoami(device)}, {}
            details = {
                "denied": "the pairing was denied in the browser",
                "expired": "the pairing code expired",
                "consumed": "the pairing code was already used",
                "cancelled": "the meter cancelled this pairing",
            }
            return 410, {"status": pairing.status, "detail": details[pairing.status]}, {}

    def _whoami(self, device: Device) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "workspace_slug": self.workspace_slug,
            "workspace_name": self.workspace_name,
            "device_id": device.device_id,
            "machine_id": device.machine_id,
            "hostname": device.hostname,
        }

    def _device(self, headers: Any, *, allow_removed: bool) -> tuple[Device | None, Any]:
        auth = headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        with self._lock:
            device = self.devices.get(token)
        if device is None:
            return None, (401, {"detail": "unknown sync token: run `halton-meter cloud connect`"}, {})
        if device.status == "revoked":
            return None, (401, {"detail": "this machine's sync token was revoked"}, {})
        if device.status == "removed" and not allow_removed:
            return None, (
                403,
                {"detail": f"a workspace admin removed this machine from {self.workspace_slug!r}"},
                {},
            )
        return device, None

    def _batch(
        self, device: Device, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        zipped = headers.get("Content-Encoding", "").lower() == "gzip"
        if zipped:
            try:
                body = gzip.decompress(body)
            except OSError as exc:
                return 400, {"detail": f"the body is not valid gzip ({exc})"}, {}
        if len(body) > self.max_bytes:
            return 413, {"detail": f"the batch is over {self.max_bytes} bytes: send fewer rows"}, {}
        try:
            batch = RequestBatch.model_validate_json(body)
        except ValidationError as exc:
            return 422, {"detail": f"invalid batch: {exc.errors()[0]['msg']}"}, {}
        uids = [str(r.request_uid) for r in batch.rows]
        if self.max_rows is not None and len(batch.rows) > self.max_rows:
            self._seen(413, batch, zipped)
            return 413, {"detail": f"the batch has {len(batch.rows)} rows; the limit is {self.max_rows}"}, {}
        bad = [(i, uid) for i, uid in enumerate(uids) if uid in self.reject_uids]
        wrong_machine = [i for i, r in enumerate(batch.rows) if r.machine_id != device.machine_id]
        if bad or wrong_machine:
            self._seen(422, batch, zipped)
            errors = [{"row": i, "field": "project", "message": self.reject_uids[uid]} for i, uid in bad]
            errors += [
                {"row": i, "field": "machine_id", "message": "not this token's machine"}
                for i in wrong_machine
            ]
            first = errors[0]
            document: dict[str, Any] = {
                "detail": f"row {first['row']}, {first['field']}: {first['message']}; nothing from this batch was stored"
            }
            if self.name_rows:
                document["errors"] = errors
            else:
                document["detail"] = (
                    f"{first['field']}: {first['message']}; nothing from this batch was stored"
                )
            return 422, document, {}
        self.batch_started.set()
        if self.batch_delay:
            time.sleep(self.batch_delay)
        with self._lock:
            fresh = 0
            for row, uid in zip(batch.rows, uids, strict=True):
                self.received[uid] += 1
                copy = json.loads(row.model_dump_json())
                held = self.stored.get(uid)
                if held is None or (held["cost_usd"], held["price_card"]) != (
                    copy["cost_usd"],
                    copy["price_card"],
                ):
                    self.stored[uid] = copy
                    fresh += 1
            self.accepted_total += fresh
        self._seen(200, batch, zipped)
        return 200, {"batch_id": str(batch.batch_id), "accepted": fresh, "duplicates": len(uids) - fresh}, {}

    def _rates(self, headers: Any) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        from halton_meter.catalogue.etag import catalogue_etag, etag_matches

        with self._lock:
            document = self.catalogue
        if document is None:
            text = packaged_text()
            document = json.loads(text)
        etag = catalogue_etag(str(document["version"]))
        if etag_matches(headers.get("If-None-Match"), etag):
            return 304, None, {"ETag": etag}
        return 200, document, {"ETag": etag}

    def _seen(self, status: int, batch: RequestBatch, zipped: bool) -> None:
        with self._lock:
            self.batches.append(
                BatchSeen(status, len(batch.rows), zipped, [str(r.request_uid) for r in batch.rows])
            )


class _Handler(BaseHTTPRequestHandler):
    cloud: FakeCloud
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms per request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.cloud._lock:
            self.cloud._open.add(self.connection)

    def finish(self) -> None:
        with self.cloud._lock:
            self.cloud._open.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, document, extra = self.cloud.handle(self.command, self.path, self.headers, body)
        with self.cloud._lock:
            self.cloud.log.append((time.monotonic(), self.command, self.path.split("?", 1)[0], status))
        payload = json.dumps(document).encode() if document is not None else b""
        try:
            self.send_response(status)
            if document is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve


def store_rows(paths: MeterPaths, count: int, *, machine_id: str | None = None, **fields: Any) -> list[str]:
    """Store ``count`` finished calls for this home's machine (oldest first); returns their request_uids."""
    from halton_meter.home import ensure_machine_id
    from halton_meter.store import StoredCall, insert_calls, open_store, transaction

    machine = machine_id or ensure_machine_id(paths)
    start = datetime.now(UTC) - timedelta(seconds=count)
    calls = []
    for i in range(count):
        at = start + timedelta(seconds=i)
        values: dict[str, Any] = {
            "request_uid": uuid.uuid4(),
            "machine_id": machine,
            "started_at": at,
            "ended_at": at + timedelta(milliseconds=250),
            "provider": "openai",
            "model_requested": "gpt-4o",
            "model_served": "gpt-4o",
            "endpoint": "/v1/chat/completions",
            "status_code": 200,
            "input_tokens": 100,
            "output_tokens": 20,
            "cost_usd": Decimal("0.000450000"),
            "price_card": "test-card",
        }
        values.update(fields)
        calls.append(StoredCall(row=RequestRow(**values)))
    conn = open_store(paths.db)
    try:
        with transaction(conn):
            insert_calls(conn, calls)
    finally:
        conn.close()
    return [str(c.row.request_uid) for c in calls]
