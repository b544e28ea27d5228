"""What changes between two catalogues: models added and removed, every value changed, old -> new, from when.

The meter (``halton-meter rates diff`` / ``rates update``), the cloud's refresh asset and the generator
(``scripts/prices/generate.py``, which runs in its own environment with nothing installed) all show a
catalogue change with this one function, so it works on the parsed JSON documents and is pure stdlib.

A model's dated lists are compared by their start date, not their position, so a new dated price shows as
the rates it adds (``prices[2027-01-01].rates.input: (none) -> 2``, effective 2027-01-01) instead of every
later entry shifting; size tiers are compared by their threshold (``tiers[>200000]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NONE = "(none)"
UNDATED = "undated"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Change:
    """One value of one model that differs: ``path`` inside the model entry, ``old`` / ``new`` as written
    (None: absent), ``effective`` the start date of the dated entry it belongs to (None: undated or not a
    price, such as a region or the match rule)."""

    model: str
    path: str
    old: Any
    new: Any
    effective: str | None

    def line(self) -> str:
        text = f"~ {self.model} {self.path}: {_shown(self.old)} -> {_shown(self.new)}"
        return f"{text}, from {self.effective}" if self.effective else text


@dataclass(frozen=True)
class CatalogueDiff:
    old_version: str | None
    new_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changes: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changes)

    @property
    def changed_models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(change.model for change in self.changes))

    def summary(self) -> str:
        """One line: ``catalogue A -> B: 2 models added, 0 removed, 5 values changed in 1 model``."""
        head = f"catalogue {self.old_version or NONE} -> {self.new_version}"
        if self.empty:
            return f"{head}: no price changes"
        models = len(self.changed_models)
        return (
            f"{head}: {len(self.added)} model{_s(len(self.added))} added, {len(self.removed)} removed, "
            f"{len(self.changes)} value{_s(len(self.changes))} changed in {models} model{_s(models)}"
        )

    def lines(self) -> list[str]:
        """``+ provider/id`` added, ``- provider/id`` removed, ``~ provider/id path: old -> new[, from DAY]``."""
        return (
            [f"+ {key}" for key in self.added]
            + [f"- {key}" for key in self.removed]
            + [change.line() for change in self.changes]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "old_version": self.old_version,
            "new_version": self.new_version,
            "added": list(self.added),
            "removed": list(self.removed),
            "changes": [
                {"model": c.model, "path": c.path, "old": c.old, "new": c.new, "effective": c.effective}
                for c in self.changes
            ],
            "summary": self.summary(),
        }


def diff_catalogues(old: dict[str, Any] | None, new: dict[str, Any]) -> CatalogueDiff:
    """The difference from ``old`` to ``new`` (parsed rates.json documents; ``old`` None: all is new)."""
    before = _by_key(old.get("models", []) if old else [])
    after = _by_key(new.get("models", []))
    changes: list[Change] = []
    for key in sorted(after.keys() & before.keys()):
        was, now = flatten(before[key]), flatten(after[key])
        for path in sorted(was.keys() | now.keys()):
            if was.get(path) != now.get(path):
                changes.append(Change(key, path, was.get(path), now.get(path), _effective(path)))
    return CatalogueDiff(
        old_version=old.get("version") if old else None,
        new_version=str(new.get("version")),
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changes=tuple(changes),
    )


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Paths -> leaves; dated list entries keyed by their start date, tiers by threshold, others by index.

    The ``from`` leaf of a dated entry is left out: its date is already the entry's key."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            if key == "from" and prefix.endswith("]"):
                continue
            out.update(flatten(sub, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        out = {}
        for i, sub in enumerate(value):
            label = str(i)
            if isinstance(sub, dict) and "above" in sub:
                label = f">{sub['above']}"
            elif isinstance(sub, dict) and ("from" in sub or "rates" in sub):
                label = sub.get("from") or UNDATED
            out.update(flatten(sub, f"{prefix}[{label}]"))
        return out
    return {prefix: value}


def _by_key(models: list[Any]) -> dict[str, dict[str, Any]]:
    return {f"{m.get('provider')}/{m.get('id')}": m for m in models if isinstance(m, dict)}


def _effective(path: str) -> str | None:
    """The start date in the path's first dated entry (``prices[2027-01-01]...`` -> 2027-01-01)."""
    _, bracket, rest = path.partition("[")
    if not bracket:
        return None
    label = rest.partition("]")[0]
    return label if _DAY.fullmatch(label) else None


def _shown(value: Any) -> str:
    return NONE if value is None else str(value)


def _s(count: int) -> str:
    return "" if count == 1 else "s"
