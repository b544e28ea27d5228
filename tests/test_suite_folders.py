"""The suite's servers keep their data outside pytest's rotating temp root.

pytest keeps only the last three `pytest-N` folders of its per-user temp root, so a second pytest on the
machine may remove an older session's folder, embedded PostgreSQL data and all, while that session runs.
Every server's data therefore lives under the session's own folder (`suite_dirs` in the root conftest).
"""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_SOURCES = [
    *sorted(
        path
        for folder in ("tests", "daemon/tests", "api/tests", "warehouse/tests", "dagster_project/tests")
        for path in (ROOT / folder).rglob("*.py")
    ),
    ROOT / "conftest.py",
]
LONG_LIVED = {"session", "module", "package", "class"}


def test_the_session_servers_keep_their_data_outside_pytests_temp_root(
    suite_dirs, embedded_warehouse, postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    basetemp = tmp_path_factory.getbasetemp().resolve()
    pg_dir = Path(parse_qs(urlparse(postgres_server).query)["host"][0])
    for name, data_dir in [
        ("the suite's folder", suite_dirs.root),
        ("the embedded warehouse", embedded_warehouse.data_dir),
        ("PostgreSQL", pg_dir),
    ]:
        resolved = Path(data_dir).resolve()
        assert not resolved.is_relative_to(basetemp), f"{name} keeps its data under pytest's {basetemp}"
        assert resolved.is_relative_to(suite_dirs.root.resolve()), f"{name} is not under {suite_dirs.root}"


def _fixture_scope(function: ast.FunctionDef) -> str | None:
    """The scope of a `@pytest.fixture(...)` function ('function' when unsaid); None for other functions."""
    for decorator in function.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call else decorator
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            for keyword in call.keywords if call else []:
                if keyword.arg == "scope" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
            return "function"
    return None


def test_no_fixture_puts_a_server_under_pytests_temp_root() -> None:
    """`tmp_path_factory` (a folder that lives as long as the session) and `tmp_path` in a fixture that
    outlives one test are how a long-lived server would land under pytest's temp root: neither is used."""
    found = []
    for path in TEST_SOURCES:
        if path == Path(__file__).resolve():
            continue  # the test above asks for the factory only to learn where the temp root is
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Name) and node.id == "tmp_path_factory") or (
                isinstance(node, ast.arg) and node.arg == "tmp_path_factory"
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses tmp_path_factory")
            if isinstance(node, ast.FunctionDef) and _fixture_scope(node) in LONG_LIVED:
                names = {a.arg for a in node.args.args + node.args.kwonlyargs}
                if names & {"tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory"}:
                    found.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} fixture {node.name} takes a pytest temp dir"
                    )
    assert found == [], "use suite_dirs / server_dir / module_server_dir instead:\n" + "\n".join(found)


def test_pytests_basetemp_is_the_sessions_own(
    suite_dirs, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    """Unless --basetemp names one, every `tmp_path` lives beside the servers' folder, in the session's own
    folder: not in the per-user root that other pytest runs rotate."""
    if request.config.known_args_namespace.basetemp:
        pytest.skip("--basetemp was given: pytest uses that folder as asked")
    basetemp = tmp_path_factory.getbasetemp().resolve()
    assert basetemp.parent == suite_dirs.root.resolve().parent, basetemp
    assert not basetemp.name.startswith("pytest-"), "a numbered (rotated) pytest folder"
