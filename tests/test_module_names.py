"""Every module name is unique across the packages, so a name alone finds the file (issue 20).

A module named like another elsewhere (`requests.py` in three folders, `price_card.py` in two) makes a
reader open the wrong one. Exempt: package markers (`__init__`, `__main__`) and each package's
`testing/factories.py`, which the house style names the same on purpose (one factories module per package).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("daemon/src", "warehouse/src", "api/src", "dagster_project/src")
EXEMPT = {"__init__", "__main__", "factories"}


def test_every_module_name_is_unique_across_the_packages() -> None:
    places: dict[str, list[str]] = defaultdict(list)
    for source in SOURCES:
        for path in (ROOT / source).rglob("*.py"):
            if path.stem not in EXEMPT:
                places[path.stem].append(str(path.relative_to(ROOT)))
    repeated = {name: paths for name, paths in places.items() if len(paths) > 1}
    assert repeated == {}, (
        "module names used more than once (rename one so its name says what it holds): "
        + ("; ".join(f"{name}: {', '.join(sorted(paths))}" for name, paths in sorted(repeated.items())))
    )
