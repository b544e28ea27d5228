"""Fixtures for the meter's tests: a throwaway home, fake provider servers, a running meter.

The meter runs in-process (a background thread with its own event loop) on port 0, with every
provider's upstream pointed at a fake server on 127.0.0.1 that it trusts through
``[proxy] upstream_ca_file``. mitmproxy keeps its master in module globals, so a module that uses
the running ``meter`` must not also build mitmproxy ``taddons`` contexts: those live in other modules.
"""

from __future__ import annotations

import sqlite3
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from halton_meter.home import init_home
from halton_meter.paths import MeterPaths
from halton_meter.settings import load_settings
from halton_meter.testing import fake_providers


def meter_config(fakes: Any | None = None, *, port: int = 0, directory: bool = False, extra: str = "") -> str:
    lines = ["[proxy]", f"port = {port}"]
    if fakes is not None:
        lines.append(f'upstream_ca_file = "{fakes.pki.ca_path}"')
    lines += ["[attribution]", f"directory = {'true' if directory else 'false'}"]
    if fakes is not None:
        for name, fake in fakes.providers.items():
            lines += [f"[providers.{name}]", f'upstream = "{fake.url}"']
    return "\n".join(lines) + "\n" + extra


@pytest.fixture
def home(server_dir: Path, monkeypatch: pytest.MonkeyPatch) -> MeterPaths:
    """An initialised meter home, also set as HALTON_METER_HOME for the CLI (outside pytest's temp root: a
    meter daemon may run on it)."""
    paths = MeterPaths.resolve(server_dir / "home")
    init_home(paths)
    monkeypatch.setenv("HALTON_METER_HOME", str(paths.home))
    monkeypatch.delenv("HALTON_METER_PORT", raising=False)
    return paths


@pytest.fixture(scope="module")
def fakes(suite_dirs: Any) -> Iterator[Any]:
    with suite_dirs.own("pki") as pki, fake_providers.fake_providers(pki) as servers:
        yield servers


@pytest.fixture(scope="module")
def meter(suite_dirs: Any, fakes: Any) -> Iterator[Any]:
    from halton_meter.daemon import Meter

    with suite_dirs.own("meter") as root:
        paths = MeterPaths.resolve(root / "home")
        init_home(paths)
        paths.config.write_text(meter_config(fakes))
        running = Meter(load_settings(paths.home)).start_background()
        yield running
        running.stop_background()


@pytest.fixture
def meter_ca(meter: Any) -> ssl.SSLContext:
    """What a client that trusts the meter's CA verifies with."""
    return ssl.create_default_context(cafile=str(meter.settings.paths.ca_cert))


@pytest.fixture
def new_rows(meter: Any) -> Callable[[], list[dict[str, Any]]]:
    """Call it after making calls: flushes the writer and returns the rows stored since the test began, in the
    order the calls started (a call waits for its caller's process lookup before it is stored, so two calls
    can be stored in the other order)."""
    db = meter.settings.paths.db

    def max_rowid() -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM requests").fetchone()[0]

    start = max_rowid()

    def rows() -> list[dict[str, Any]]:
        assert meter.flush(60), "the writer did not flush in time"
        conn = sqlite3.connect(db)
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute(
                "SELECT * FROM requests WHERE rowid > ? ORDER BY started_at, rowid", (start,)
            ).fetchall()
        finally:
            conn.close()
        return [dict(r) for r in found]

    return rows


@pytest.fixture
def seed(home: MeterPaths) -> Callable[..., Any]:
    """Store calls straight into the home's database: ``seed(provider=..., cost=..., when=...)``."""
    import uuid
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from halton_meter.protocol import RequestRow
    from halton_meter.store import StoredCall, insert_calls, open_store, transaction

    def add(
        *,
        provider: str = "openai",
        model: str = "gpt-4o",
        project: str = "default",
        cost: str | None = "0.001",
        status: int | None = 200,
        when: datetime | None = None,
        input_tokens: int | None = 1000,
        output_tokens: int | None = 100,
        cache_read_tokens: int | None = 0,
        unpriced_reason: str | None = None,
        price_card: str | None = "test-card",
        **origin: str,
    ) -> RequestRow:
        started = when or datetime.now(UTC)
        row = RequestRow(
            request_uid=uuid.uuid4(),
            machine_id="m-test",
            started_at=started,
            ended_at=started + timedelta(milliseconds=500),
            provider=provider,
            model_requested=model,
            model_served=model,
            endpoint="/v1/chat/completions",
            status_code=status,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cost_usd=Decimal(cost) if cost is not None else None,
            price_card=price_card if cost else None,
            project=project,
            attribution_tier="default",
            **origin,
        )
        conn = open_store(home.db)
        try:
            with transaction(conn):
                insert_calls(conn, [StoredCall(row=row, unpriced_reason=unpriced_reason)])
        finally:
            conn.close()
        return row

    return add
