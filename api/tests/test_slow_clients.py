"""Slow clients against a real uvicorn serving the app with `SlowClientProtocol`: headers sent a byte at a
time and bodies that stall are cut off with 408; the connection waiting longest for its headers makes room
for a new one; normal clients, kept-alive connections and ingestion do not notice. Timeouts are set small
through the settings; each test waits for what it expects with a deadline, never on the clock."""

from __future__ import annotations

import gzip
import json
import select
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest

from halton_api.cloud_settings import CloudSettings
from halton_api.testing.factories import batch, bearer, make_device, make_user, make_workspace

DEADLINE_SECONDS = 30  # only ever reached when the server fails to do what the test waits for


@pytest.fixture
def quick(settings: CloudSettings) -> CloudSettings:
    return settings.model_copy(update={"http_header_timeout_seconds": 0.5, "http_body_timeout_seconds": 0.5})


def connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=DEADLINE_SECONDS)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answered(sock: socket.socket, wait: float) -> bool:
    """Whether the server wrote or closed within `wait` seconds."""
    return bool(select.select([sock], [], [], wait)[0])


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while chunk := sock.recv(65536):
        received += chunk
        assert time.monotonic() < deadline, f"the server kept the connection open: {received!r}"
    return received


def paired_device(postgres_url: str):
    owner = make_user(postgres_url)
    return make_device(postgres_url, workspace=make_workspace(postgres_url, owner=owner), paired_by=owner)


def test_headers_sent_byte_by_byte_are_cut_off(quick: CloudSettings, serve: Callable[..., str]) -> None:
    url = serve(quick)
    sock = connect(url)
    # Endless headers, one byte every 50 ms: each byte well inside 0.5 s, the whole never complete.
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
    deadline = time.monotonic() + DEADLINE_SECONDS
    sent = 0
    while not answered(sock, 0.05):
        assert time.monotonic() < deadline, f"still open after {sent} bytes of headers"
        sock.sendall(b"a")
        sent += 1
    response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), response
    assert b"connection: close" in response and b"send the headers" in response
    sock.close()
    assert httpx.get(f"{url}/healthz").status_code == 200  # everyone else is served


def test_a_body_that_stalls_is_cut_off(
    quick: CloudSettings, serve: Callable[..., str], postgres_url: str
) -> None:
    url = serve(quick)
    device = paired_device(postgres_url)
    body = json.dumps(batch(device.device.machine_id, rows=5)).encode()
    sock = connect(url)
    head = (
        f"POST /v1/requests/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {device.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:100])  # then nothing more
    response = read_until_closed(sock)
    assert response.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), response
    sock.close()
    # The same batch sent promptly is taken.
    sent = httpx.post(f"{url}/v1/requests/batch", content=body, headers={
        **bearer(device.token), "content-type": "application/json"})  # fmt: skip
    assert sent.status_code == 200 and sent.json()["accepted"] == 5, sent.text


def test_normal_clients_and_ingestion_are_unaffected(
    quick: CloudSettings, serve: Callable[..., str], postgres_url: str
) -> None:
    url = serve(quick)
    device = paired_device(postgres_url)
    with httpx.Client(base_url=url, headers=bearer(device.token), timeout=DEADLINE_SECONDS) as meter:
        for i in range(5):  # gzip, as the meter sends: each batch on the same kept-alive connection
            body = gzip.compress(json.dumps(batch(device.device.machine_id, rows=200)).encode())
            response = meter.post(
                "/v1/requests/batch",
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
            )
            assert response.status_code == 200 and response.json()["accepted"] == 200, (i, response.text)
    # A kept-alive connection may sit idle longer than the header timeout (uvicorn's keep-alive rules it):
    # the next request gets its own full header time.
    sock = connect(url)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    sock.sendall(request)
    assert answered(sock, DEADLINE_SECONDS) and sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    time.sleep(2 * quick.http_header_timeout_seconds)  # idle, as a meter between two batches
    sock.sendall(request)
    assert answered(sock, DEADLINE_SECONDS) and sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_the_connection_waiting_longest_makes_room_for_a_new_one(
    settings: CloudSettings, serve: Callable[..., str]
) -> None:
    url = serve(settings.model_copy(update={"http_max_pending_connections": 3}))  # header timeout: 10 s
    silent = []
    for _ in range(3):
        sock = connect(url)
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a first line, then nothing: the server has seen it
        silent.append(sock)
    newest = connect(url)
    response = read_until_closed(silent[0])
    assert response.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), response
    assert b"too many connections" in response
    # The newest is served as soon as it sends its request (and that one, in turn, makes room).
    newest.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert read_until_closed(newest).startswith(b"HTTP/1.1 200 ")
    for sock in [*silent, newest]:
        sock.close()
