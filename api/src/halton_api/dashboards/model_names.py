"""What people call a price-card model id: `claude-sonnet-4-5` is "Claude Sonnet 4.5", `gpt-4.1-mini` is
"GPT-4.1 mini". Pages write sentences with these; tables and the JSON keep the ids."""

from __future__ import annotations

import re

_CLAUDE = re.compile(r"^claude-(opus|sonnet|haiku)-(\d+)(?:-(\d))?(?:-\d{8}|-latest)?$")
_CLAUDE_OLD = re.compile(r"^claude-(\d)-(\d)-(opus|sonnet|haiku)(?:-\d{8}|-latest)?$")
_GPT = re.compile(r"^gpt-([0-9.]+o?)(?:-(mini|nano|pro))?(?:-\d{4}-\d{2}-\d{2})?$")
_GEMINI = re.compile(r"^gemini-([0-9.]+)-(.+)$")
_GROK = re.compile(r"^grok-(\d+)(?:-(?!\d{4}$)(.+?))?(?:-\d{4})?$")
# A snapshot date at the end of an id: -20250929, -2025-08-07, -0709 (MMDD). The rail folds such ids under
# their model and a model filter matches them all; SQL uses the same pattern (no backslash, no quote in it).
DATED_SUFFIX = "-([0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2}|(0[1-9]|1[0-2])[0-9]{2})$"
_DATED = re.compile(DATED_SUFFIX)


def base_model(model: str) -> str:
    """The model a dated id is a snapshot of: `claude-sonnet-4-5-20250929` is `claude-sonnet-4-5`."""
    return _DATED.sub("", model)


def display_model(model: str) -> str:
    """A readable name for a card model id (or a served name); the id itself when it follows no known scheme."""
    if found := _CLAUDE.match(model):
        family, major, minor = found.groups()
        version = major if minor in (None, "0") else f"{major}.{minor}"
        return f"Claude {family.title()} {version}"
    if found := _CLAUDE_OLD.match(model):
        major, minor, family = found.groups()
        return f"Claude {major}.{minor} {family.title()}"
    if found := _GPT.match(model):
        version, size = found.groups()
        return f"GPT-{version}" + (f" {size}" if size else "")
    if found := _GEMINI.match(model):
        version, rest = found.groups()
        words = rest.split("-")
        if words[:2] == ["flash", "lite"]:
            words = ["Flash-Lite", *words[2:]]
        return f"Gemini {version} " + " ".join(w if w[0].isupper() else w.title() for w in words)
    if found := _GROK.match(model):
        version, rest = found.groups()
        return f"Grok {version}" + (" " + " ".join(w.title() for w in rest.split("-")) if rest else "")
    return model
