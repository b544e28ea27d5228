"""Match-clause regexes that mean the same to Python's ``re`` (the meter) and RE2 (the warehouse's SQL).

RE2 has no lookaround and no back-references. The one lookaround the sources use is a negative lookahead
over the whole pattern (``^(?!…-tts…)``: "not a TTS model"), which SQL runs as the negation of
``^(?:…)`` (kind ``not_regex``). Anything else RE2 cannot run is refused when a catalogue is validated, so
a catalogue the warehouse could not price exactly as the meter does is never accepted. Both sides match
ASCII classes only (``re.ASCII``: ``\\d`` is 0-9 in both).
"""

from __future__ import annotations

import re

FLAGS = re.ASCII
_LEADING_NEGATIVE_LOOKAHEAD = "^(?!"
# What RE2 refuses that Python's re accepts: lookahead, lookbehind, back-references.
_NOT_RE2 = re.compile(r"\(\?[=!]|\(\?<[=!]|\\[1-9]")


class NotPortable(ValueError):
    """A regex the warehouse's RE2 cannot run as the meter runs it."""


def portable_clause(kind: str, value: str) -> tuple[str, str]:
    """The clause as SQL evaluates it: a whole-pattern negative lookahead becomes ``not_regex``."""
    if kind != "regex":
        return (kind, value)
    if value.startswith(_LEADING_NEGATIVE_LOOKAHEAD) and _closing_paren(value, 1) == len(value) - 1:
        kind, value = "not_regex", f"^(?:{value[len(_LEADING_NEGATIVE_LOOKAHEAD) : -1]})"
    if _NOT_RE2.search(value):
        raise NotPortable(
            f"regex {value!r} uses lookaround or a back-reference, which the warehouse's RE2 cannot run "
            "(a leading ^(?!...) over the whole pattern is the one lookaround supported)"
        )
    return (kind, value)


def _closing_paren(pattern: str, start: int) -> int | None:
    """Index of the parenthesis closing the group opened at `start` (escapes and [classes] skipped)."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 1 if pattern[i + 1 : i + 2] == "^" else 0
            i += 1 if pattern[i + 1 : i + 2] == "]" else 0  # a literal ] first in a class
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None
