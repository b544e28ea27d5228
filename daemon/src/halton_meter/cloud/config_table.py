"""The ``[cloud]`` table of ``config.toml``: set keys in it, keep every other byte of the file.

The user owns ``config.toml`` (comments, order, other tables), so the meter edits it as text: it
rewrites only the key lines it sets inside ``[cloud]`` (adding the table at the end if there is none)
and checks that the result still parses to what it meant to write before replacing the file.

Also here: healing a placeholder ``base_url`` (``.test``, ``.example``, ``.invalid``, ``.local``) back
to the real cloud on daemon boot - but only one the meter wrote itself from its own default, which it
records as ``base_url_written_by_meter``. A URL the user chose (``--base-url``, the dashboard they paired
from, ``HALTON_METER_CLOUD_URL``, or ``config.toml`` by hand) is never rewritten, whatever its host: a
self-hosted cloud at ``http://cloudbox.local:18400`` is real, and "healing" it would send the token
and the rows to someone else's cloud.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from halton_meter.paths import MeterPaths
from halton_meter.settings import DEFAULT_CLOUD_URL

logger = logging.getLogger(__name__)

TABLE = "cloud"
PLACEHOLDER_TLDS = ("test", "example", "invalid", "local")
_HEADER = re.compile(r"^\s*\[\[?\s*(?P<name>[^\[\]#]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*(?P<key>[A-Za-z0-9_-]+|\"[^\"]*\")\s*=")

Value = str | bool | int | float


class ConfigEditError(RuntimeError):
    """config.toml could not be edited safely; the message says what to set by hand."""


def _format(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _table_name(line: str) -> str | None:
    match = _HEADER.match(line)
    if not match:
        return None
    return ".".join(part.strip().strip('"') for part in match.group("name").split("."))


def _key_name(line: str) -> str | None:
    match = _KEY.match(line)
    return match.group("key").strip('"') if match else None


def set_cloud_keys(path: Path, values: dict[str, Value | None]) -> None:
    """Set (or, with None, remove) keys of ``[cloud]``; the rest of the file is kept as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.splitlines(keepends=True)
    start = next((i + 1 for i, line in enumerate(lines) if _table_name(line) == TABLE), None)
    if start is None:
        tail = "" if not text or text.endswith("\n") else "\n"
        block = [f"\n[{TABLE}]\n"] + [f"{k} = {_format(v)}\n" for k, v in values.items() if v is not None]
        new_text = text + tail + "".join(block)
    else:
        end = next((i for i in range(start, len(lines)) if _table_name(lines[i]) is not None), len(lines))
        body = lines[start:end]
        for key, value in values.items():
            index = next((i for i, line in enumerate(body) if _key_name(line) == key), None)
            if value is None:
                if index is not None:
                    del body[index]
                continue
            line = f"{key} = {_format(value)}\n"
            if index is not None:
                body[index] = line
            else:
                last_key = max((i for i, existing in enumerate(body) if _key_name(existing)), default=-1)
                if last_key >= 0 and not body[last_key].endswith("\n"):
                    body[last_key] += "\n"
                body.insert(last_key + 1, line)
        if start > 0 and not lines[start - 1].endswith("\n"):
            lines[start - 1] += "\n"
        new_text = "".join(lines[:start] + body + lines[end:])
    _check(path, new_text, values)
    _replace(path, new_text)


def _check(path: Path, text: str, values: dict[str, Value | None]) -> None:
    try:
        table = tomllib.loads(text).get(TABLE, {})
    except tomllib.TOMLDecodeError as exc:
        raise ConfigEditError(
            f"{path} would not be valid TOML after editing [cloud] ({exc}); fix the file by hand"
        ) from None
    for key, value in values.items():
        if table.get(key) != value:
            wanted = f"{key} = {_format(value)}" if value is not None else f"no {key}"
            raise ConfigEditError(
                f"{path} defines [cloud] in a form the meter cannot edit (an inline or dotted table?): "
                f"set `{wanted}` under [cloud] by hand"
            )


def _replace(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    tmp.replace(path)


def is_placeholder(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    return any(host == tld or host.endswith("." + tld) for tld in PLACEHOLDER_TLDS)


def heal_placeholder_base_url(paths: MeterPaths) -> str | None:
    """Rewrite a placeholder ``[cloud] base_url`` that the meter wrote itself to the real cloud;
    returns the value replaced, if any. Every heal, and every placeholder kept, is logged."""
    try:
        raw = tomllib.loads(paths.config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None  # settings loading reports a broken file; nothing to heal here
    cloud = raw.get(TABLE)
    if not isinstance(cloud, dict):
        return None
    base_url = cloud.get("base_url")
    if not isinstance(base_url, str) or not is_placeholder(base_url):
        return None
    if base_url.rstrip("/") != str(cloud.get("base_url_written_by_meter") or "").rstrip("/"):
        logger.warning(
            "config.toml: [cloud] base_url %r has a placeholder-style host, but it was chosen, not written "
            "by the meter: kept as it is (if it never resolves, set base_url to your cloud's URL)",
            base_url,
        )
        return None
    set_cloud_keys(
        paths.config, {"base_url": DEFAULT_CLOUD_URL, "base_url_written_by_meter": DEFAULT_CLOUD_URL}
    )
    logger.warning(
        "config.toml: [cloud] base_url healed from %r to %r (a placeholder host the meter wrote itself)",
        base_url,
        DEFAULT_CLOUD_URL,
    )
    return base_url
