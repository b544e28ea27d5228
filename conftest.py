"""Fixtures shared by every package's tests: the real stores, started fresh for the test session.

Tests never mock a store: the warehouse is the embedded chDB server (a real process speaking the
ClickHouse HTTP interface) and the control plane is a real PostgreSQL from the pgserver wheel.
Each test gets throwaway databases with a random name on those shared servers.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql


@dataclass(frozen=True)
class WarehouseDB:
    """A migrated, throwaway set of warehouse databases on the session's embedded server."""

    url: str
    prefix: str

    @property
    def databases(self):
        from halton_warehouse import Databases

        return Databases.with_prefix(self.prefix)

    def client(self):
        from halton_warehouse import connect

        return connect(self.url)


# The session's own folder, outside pytest's per-user temp root: pytest keeps only the last three `pytest-N`
# folders there, so another pytest on the machine may remove an older session's folder, a running server's
# data and all. Here live the servers' data (`servers/`) and, unless --basetemp says otherwise, pytest's own
# basetemp (`pytest/`: every `tmp_path`); removed when the session ends. Under pytest-xdist each worker is a
# session of its own, with its own servers, in a folder inside the controller's.
_SUITE_ROOT = pytest.StashKey[Path]()
_BASETEMP_CHOSEN = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)  # before the tmp_path plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", None)
    if worker is None:
        root = Path(tempfile.mkdtemp(prefix="halton-tests-"))
        chosen = config.option.basetemp is not None
    else:
        root = Path(worker["halton_suite_root"]) / worker["workerid"]
        root.mkdir()
        chosen = worker["halton_basetemp_chosen"]
    config.stash[_SUITE_ROOT] = root
    config.stash[_BASETEMP_CHOSEN] = chosen
    if not chosen:
        config.option.basetemp = str(root / "pytest")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's, on the controller, before a worker starts
def pytest_configure_node(node) -> None:
    node.workerinput["halton_suite_root"] = str(node.config.stash[_SUITE_ROOT])
    node.workerinput["halton_basetemp_chosen"] = node.config.stash[_BASETEMP_CHOSEN]


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_SUITE_ROOT, None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class SuiteDirs:
    """Folders for servers' data, under the session's own folder and never under pytest's basetemp (which a
    test may clear); `tmp_path_factory` is never used for a server's data (tests/test_suite_folders.py)."""

    root: Path

    def make(self, name: str) -> Path:
        """A fresh folder of its own under the session's root."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))

    @contextmanager
    def own(self, name: str) -> Iterator[Path]:
        """A fresh folder, removed when the block ends (a server stopped inside it first)."""
        path = self.make(name)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def suite_dirs(request: pytest.FixtureRequest) -> Iterator[SuiteDirs]:
    root = request.config.stash[_SUITE_ROOT] / "servers"
    root.mkdir()
    try:
        yield SuiteDirs(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_dir(suite_dirs: SuiteDirs) -> Iterator[Path]:
    """A folder of its own, outside pytest's temp root, for a test that starts an embedded server."""
    with suite_dirs.own("server") as path:
        yield path


@pytest.fixture(scope="module")
def module_server_dir(suite_dirs: SuiteDirs) -> Iterator[Path]:
    """Like `server_dir`, for a module's own server."""
    with suite_dirs.own("server") as path:
        yield path


@pytest.fixture(scope="session")
def embedded_warehouse(suite_dirs: SuiteDirs):
    """The embedded warehouse server process shared by the whole session (`.url` logs in as admin)."""
    from halton_warehouse.embedded import start_embedded

    with (
        suite_dirs.own("warehouse") as data_dir,
        start_embedded(data_dir / "chdb", log_path=data_dir / "server.log") as server,
    ):
        yield server


@pytest.fixture(scope="session")
def warehouse_server(embedded_warehouse) -> str:
    """URL (with the admin login) of the session's embedded warehouse server."""
    return embedded_warehouse.url


@pytest.fixture
def warehouse(warehouse_server: str) -> Iterator[WarehouseDB]:
    """Freshly migrated warehouse databases with a random prefix; dropped after the test."""
    from halton_warehouse import connect
    from halton_warehouse.migrate import migrate

    db = WarehouseDB(url=warehouse_server, prefix=f"t{secrets.token_hex(4)}_")
    client = connect(warehouse_server)
    migrate(client, db.databases)
    yield db
    for name in (db.databases.raw, db.databases.marts, db.databases.meta):
        client.command(f"DROP DATABASE IF EXISTS {name} SYNC")


@pytest.fixture(scope="session")
def postgres_server(suite_dirs: SuiteDirs) -> Iterator[str]:
    """URI of a real PostgreSQL (from the pgserver wheel), shared by the whole session."""
    import pgserver

    with suite_dirs.own("pg") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        yield server.get_uri()
        server.cleanup()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """URI of a fresh, empty database on the session's PostgreSQL; dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(postgres_server, name)
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _with_database(uri: str, name: str) -> str:
    # pgserver URIs look like postgresql://postgres:@/postgres?host=/tmp/x: swap the path only.
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave things for a person to look at (screenshots, PDFs); kept after the run."""
    path = Path(__file__).parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two tests with one node id are refused: pytest-xdist's per-file scheduling keys tests by node id, so
    all but one of them would silently never run (as schemathesis's parametrize once did to 41 tests)."""
    seen: set[str] = set()
    repeated = sorted({item.nodeid for item in items if item.nodeid in seen or seen.add(item.nodeid)})
    if repeated:
        raise pytest.UsageError("tests share a node id (give them ids): " + ", ".join(repeated[:5]))
