"""Cross-component fixtures: the cloud API as a real process, a signed-up person, fake providers."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_support import CloudProcess, Person
from halton_meter.testing.fake_providers import fake_providers
from halton_meter.testing.processes import free_port


@pytest.fixture
def cloud(postgres_url: str, warehouse, tmp_path: Path) -> Iterator[CloudProcess]:
    port = free_port()
    env = {
        **os.environ,
        "HALTON_ENV": "development",
        "HALTON_DATA_DIR": str(tmp_path / "cloud"),
        "HALTON_DATABASE_URL": postgres_url,
        "HALTON_CLICKHOUSE_URL": warehouse.url,
        "HALTON_CLICKHOUSE_DATABASE_PREFIX": warehouse.prefix,
        "HALTON_SECRET_KEY": secrets.token_urlsafe(48),
        "HALTON_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    process = CloudProcess(env=env, port=port, log_path=tmp_path / "api.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def person(cloud: CloudProcess) -> Iterator[Person]:
    someone = Person(cloud.url, f"vera-{secrets.token_hex(3)}@example.com").sign_up("Acme Co")
    yield someone
    someone.client.close()


@pytest.fixture(scope="session")
def providers(tmp_path_factory: pytest.TempPathFactory):
    """Fake Anthropic/OpenAI/Gemini/xAI servers on 127.0.0.1 speaking each documented wire format."""
    with fake_providers(tmp_path_factory.mktemp("providers")) as servers:
        yield servers
