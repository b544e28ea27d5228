"""One direction of dependency: the API and the pipelines never import each other (their sources and their
tests alike); both may import the meter's shared contract and cost model and the warehouse, which import
neither of them. Read from the source (every import statement, also those inside functions), so an import
that only runs on some path is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "halton_api": [ROOT / "api" / "src" / "halton_api", ROOT / "api" / "tests"],
    "halton_pipelines": [
        ROOT / "dagster_project" / "src" / "halton_pipelines",
        ROOT / "dagster_project" / "tests",
    ],
    "halton_warehouse": [ROOT / "warehouse" / "src" / "halton_warehouse", ROOT / "warehouse" / "tests"],
    "halton_meter": [ROOT / "daemon" / "src" / "halton_meter", ROOT / "daemon" / "tests"],
}
FORBIDDEN = {
    "halton_api": {"halton_pipelines"},
    "halton_pipelines": {"halton_api"},
    "halton_warehouse": {"halton_api", "halton_pipelines"},
    "halton_meter": {"halton_api", "halton_pipelines", "halton_warehouse"},
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file at `path`: the module, and for `from m import n` also
    `m.n`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file at `path`, once per statement and package."""
    return list(dict.fromkeys((line, name.split(".")[0]) for line, name in imported_modules(path)))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_it_must_not(package: str) -> None:
    crossings = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for folder in PACKAGES[package]
        for path in sorted(folder.rglob("*.py"))
        for line, imported in imported_packages(path)
        if imported in FORBIDDEN[package]
    ]
    assert crossings == [], f"{package} must not import {sorted(FORBIDDEN[package])}:\n" + "\n".join(
        crossings
    )


def test_the_check_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    from halton_pipelines.definitions import defs\n    import halton_api.app\n"
    )
    assert imported_packages(probe) == [(2, "halton_pipelines"), (3, "halton_api")]


def test_secrets_at_rest_have_one_key_derivation() -> None:
    """The API (which seals what a person saves) and the pipelines (which open provider keys to pull billing)
    derive keys only through `halton_meter.secretbox`: neither derives one of its own."""
    own = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for folder in (PACKAGES["halton_api"][0], PACKAGES["halton_pipelines"][0])
        for path in sorted(folder.rglob("*.py"))
        for line, module in imported_modules(path)
        if module.startswith("cryptography.hazmat.primitives.kdf") or module == "hashlib.pbkdf2_hmac"
    ]
    assert own == [], "derive keys with halton_meter.secretbox:\n" + "\n".join(own)
