"""The API served as production serves it, `halton-cloud serve` (uvicorn with the slow-client protocol; the
limits come from `HALTON_HTTP_*`, through the app's lifespan state), and every response carries the security
headers."""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import httpx

from cloud_support import CloudProcess


def test_uvicorns_command_line_closes_slow_headers(postgres_url: str, warehouse, tmp_path: Path) -> None:
    api = CloudProcess.on_stores(
        tmp_path,
        database_url=postgres_url,
        warehouse_url=warehouse.url,
        prefix=warehouse.prefix,
        HTTP_HEADER_TIMEOUT_SECONDS="0.5",
    )
    port = api.port
    api.start()
    try:
        healthy = httpx.get(f"{api.url}/healthz")
        assert healthy.status_code == 200 and healthy.headers["x-frame-options"] == "DENY"
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        deadline = time.monotonic() + 30
        while not select.select([sock], [], [], 0.05)[0]:  # a byte every 50 ms until the server answers
            assert time.monotonic() < deadline, "the server kept a connection whose headers never end"
            sock.sendall(b"a")
        assert sock.recv(65536).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        sock.close()
    finally:
        api.stop()
