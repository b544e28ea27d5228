"""Fixtures for the API's tests: settings pointing at the session's real stores, the app, browsers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from halton_api.app import create_app
from halton_api.cloud_settings import CloudSettings
from halton_warehouse import WarehouseSettings

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


@pytest.fixture
def settings(postgres_url: str, warehouse, server_dir) -> CloudSettings:
    return CloudSettings(
        env="development",
        data_dir=server_dir / "cloud",
        database_url=postgres_url,
        warehouse=WarehouseSettings(
            clickhouse_url=warehouse.url, clickhouse_database_prefix=warehouse.prefix
        ),
        secret_key=TEST_SECRET,
        public_url="http://testserver",
        pg_pool_max=30,
        warehouse_max_concurrent_inserts=8,
    )


@pytest.fixture
def client(settings: CloudSettings) -> Iterator[TestClient]:
    """An anonymous client of the real app, whose lifespan runs (pools open, migrations applied)."""
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def app(client: TestClient) -> FastAPI:
    return client.app  # type: ignore[return-value]


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """`serve(settings, clock=…)`: the app served as `halton-cloud` serves it (`CloudSettings.uvicorn_options()`),
    by a real uvicorn on a free loopback port in a thread; returns its base URL. Keyword arguments go to
    `create_app`. Every server started is stopped after the test."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: CloudSettings, **app_options: Any) -> str:
        config = uvicorn.Config(
            create_app(settings, **app_options),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
            **settings.uvicorn_options(),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"

    yield start
    for server, _ in servers:
        server.should_exit = True
    for _, thread in servers:
        thread.join(timeout=30)


@pytest.fixture
def live_server(settings: CloudSettings, serve: Callable[[CloudSettings], str]) -> str:
    """The app served by a real uvicorn on a free loopback port (in a thread); its base URL."""
    return serve(settings)
