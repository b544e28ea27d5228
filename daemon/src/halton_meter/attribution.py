"""Attribution addon: which project a call belongs to. Tiers, first hit wins, tier kept on the row.

1. ``header``    - an ``X-Halton-Project`` request header (removed before the request goes upstream);
2. ``api_key``   - the call's API key matches a fingerprint in ``[attribution.api_keys]``: the config
                   holds ``sha256:<hex prefix>`` of a key, never the key itself;
3. ``directory`` - the git repository of the process that opened the connection (Linux: client port
                   -> ``/proc/net/tcp`` inode -> pid -> ``/proc/PID/cwd`` -> git top level), mapped
                   through ``[attribution.directories]`` or else named after the repository folder.
                   Best effort and cached; it runs in a thread and never delays the call;
4. ``default``   - ``[attribution] default_project``.

The same process lookup tells where the call came from whatever tier names its project: the repository,
branch and ticket of the caller's working directory and the tool that called (:mod:`halton_meter.origin`),
kept on the row as its :class:`~halton_meter.origin.CallOrigin` (``[attribution] origin``, on by default).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from mitmproxy import ctx, exceptions

from halton_meter.failopen import fail_open
from halton_meter.health import Health
from halton_meter.origin import (
    DEFAULT_TICKET_PATTERN,
    CallOrigin,
    Checkout,
    compile_ticket_pattern,
    git_checkout,
    origin_of,
)
from halton_meter.routing import ROUTE
from halton_meter.settings import FINGERPRINT_RE, SLUG_RE

if TYPE_CHECKING:
    from mitmproxy import connection, http

logger = logging.getLogger(__name__)

HEADER = "X-Halton-Project"
ATTRIBUTION = "halton.attribution"
_PID_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Attributed:
    project: str
    tier: str  # protocol.AttributionTier
    origin: CallOrigin | None = None  # None when nothing of it could be seen (or origin is off)


@dataclass(frozen=True)
class _Located:
    """What the process lookup found for one connection."""

    project: str | None
    checkout: Checkout | None
    process_name: str | None


def slugify(name: str) -> str | None:
    """A project slug from a folder name ("My Repo!" -> "My-Repo"), or None if nothing is left."""
    slug = re.sub(r"[^A-Za-z0-9._\-]+", "-", name).strip("-._")[:128]
    return slug if slug and SLUG_RE.match(slug) else None


def api_key_of(headers: Mapping[str, str], path: str) -> str | None:
    """The API key a request carries, wherever its provider puts it."""
    for name in ("x-api-key", "api-key", "x-goog-api-key"):
        if value := headers.get(name):
            return value.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    query = urlsplit(path).query
    if query:
        for key, value in parse_qsl(query):
            if key == "key" and value:
                return value
    return None


def match_key(api_key: str, fingerprints: Mapping[str, str]) -> str | None:
    """The project of the first configured fingerprint that is a prefix of the key's SHA-256."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    for fingerprint, project in fingerprints.items():
        if digest.startswith(fingerprint.removeprefix("sha256:")):
            return project
    return None


def git_toplevel(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` holding a ``.git`` (a folder, or a worktree's file)."""
    for candidate in (path, *path.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def project_for_directory(cwd: Path, mapping: Mapping[Path, str]) -> str | None:
    """A configured folder containing ``cwd`` (deepest wins), else the git repository's folder name."""
    best: tuple[int, str] | None = None
    for folder, project in mapping.items():
        if cwd == folder or folder in cwd.parents:
            depth = len(folder.parts)
            if best is None or depth > best[0]:
                best = (depth, project)
    if best is not None:
        return best[1]
    top = git_toplevel(cwd)
    return slugify(top.name) if top is not None else None


class ProcessLocator:
    """Finds the process behind a loopback TCP connection (Linux ``/proc``); thread-safe, cached."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self._lock = threading.Lock()
        self._recent_pids: dict[int, float] = {}
        self._cwd_cache: dict[int, tuple[float, Path | None]] = {}

    @functools.cached_property
    def supported(self) -> bool:
        # Cached: it is asked on the event loop for every call, and a stat per call adds up.
        return sys.platform.startswith("linux") and (self.proc / "net" / "tcp").exists()

    def pid_for(self, client_port: int, server_port: int) -> int | None:
        inode = self._socket_inode(client_port, server_port)
        if inode is None:
            return None
        target = f"socket:[{inode}]"
        with self._lock:
            recent = sorted(self._recent_pids, key=self._recent_pids.__getitem__, reverse=True)
        # Processes that called before are checked first: one process usually makes many calls.
        for pid in recent:
            if self._holds(pid, target):
                self._remember(pid)
                return pid
        for entry in os.scandir(self.proc):
            if (
                entry.name.isdigit()
                and int(entry.name) not in recent
                and self._holds(int(entry.name), target)
            ):
                self._remember(int(entry.name))
                return int(entry.name)
        return None

    def cwd_of(self, pid: int) -> Path | None:
        now = time.monotonic()
        with self._lock:
            cached = self._cwd_cache.get(pid)
        if cached and now - cached[0] < _PID_CACHE_SECONDS:
            return cached[1]
        try:
            cwd: Path | None = Path(os.readlink(self.proc / str(pid) / "cwd"))
        except OSError:
            cwd = None
        with self._lock:
            self._cwd_cache[pid] = (now, cwd)
        return cwd

    def name_of(self, pid: int) -> str | None:
        """The process's name (``/proc/<pid>/comm``: at most 15 characters)."""
        try:
            return (self.proc / str(pid) / "comm").read_text(
                encoding="utf-8", errors="replace"
            ).strip() or None
        except OSError:
            return None

    def _remember(self, pid: int) -> None:
        with self._lock:
            self._recent_pids[pid] = time.monotonic()
            if len(self._recent_pids) > 64:
                oldest = min(self._recent_pids, key=self._recent_pids.__getitem__)
                del self._recent_pids[oldest]

    def _socket_inode(self, client_port: int, server_port: int) -> int | None:
        for table in ("tcp", "tcp6"):
            try:
                lines = (self.proc / "net" / table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if len(fields) < 10:
                    continue
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if local_port == client_port and remote_port == server_port and fields[9] != "0":
                    return int(fields[9])
        return None

    def _holds(self, pid: int, target: str) -> bool:
        fd_dir = self.proc / str(pid) / "fd"
        try:
            with os.scandir(fd_dir) as entries:
                for entry in entries:
                    try:
                        if os.readlink(entry.path) == target:
                            return True
                    except OSError:
                        continue
        except OSError:  # another user's process, or it just exited
            return False
        return False


def _loopback(address: tuple | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(str(address[0]).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class Attribution:
    """Tags each metered flow with a project and the tier that decided it. See the module docstring."""

    def __init__(self, health: Health, locator: ProcessLocator | None = None) -> None:
        self.health = health
        self.locator = locator or ProcessLocator()
        self.default_project = "default"
        self.key_projects: dict[str, str] = {}
        self.directory_projects: dict[Path, str] = {}
        self.directory_enabled = True
        self.origin_enabled = True
        self.ticket_pattern = re.compile(DEFAULT_TICKET_PATTERN)
        self._lookups: dict[str, asyncio.Future[_Located]] = {}

    def load(self, loader) -> None:
        loader.add_option("halton_default_project", str, "default", "Project of calls no other tier claims.")
        loader.add_option(
            "halton_key_projects",
            Sequence[str],
            [],
            "sha256:<hex prefix>=project pairs: API key fingerprints and their projects.",
        )
        loader.add_option(
            "halton_directory_projects",
            Sequence[str],
            [],
            "/path=project pairs: calls from processes working under a path go to its project.",
        )
        loader.add_option(
            "halton_directory_attribution",
            bool,
            True,
            "Attribute calls to the git repository of the calling process (Linux).",
        )
        loader.add_option(
            "halton_call_origin",
            bool,
            True,
            "Record the repository, git branch, ticket and tool of the calling process.",
        )
        loader.add_option(
            "halton_ticket_pattern",
            str,
            DEFAULT_TICKET_PATTERN,
            "Regular expression finding a ticket key in a branch name.",
        )

    def configure(self, updated: set[str]) -> None:
        if "halton_default_project" in updated:
            self.default_project = _slug(ctx.options.halton_default_project, "halton_default_project")
        if "halton_key_projects" in updated:
            keys = {}
            for value in ctx.options.halton_key_projects:
                fingerprint, _, project = value.rpartition("=")
                if not FINGERPRINT_RE.match(fingerprint):
                    raise exceptions.OptionsError(
                        "halton_key_projects: expected 'sha256:<12 to 64 hex digits>=project', "
                        f"got {value[:14]!r}…"
                    )
                keys[fingerprint] = _slug(project, "halton_key_projects")
            self.key_projects = keys
        if "halton_directory_projects" in updated:
            folders = {}
            for value in ctx.options.halton_directory_projects:
                folder, _, project = value.rpartition("=")
                if not folder:
                    raise exceptions.OptionsError(
                        f"halton_directory_projects: expected '/path=project', got {value!r}"
                    )
                folders[Path(folder).expanduser().absolute()] = _slug(project, "halton_directory_projects")
            self.directory_projects = folders
        if "halton_directory_attribution" in updated:
            self.directory_enabled = ctx.options.halton_directory_attribution
        if "halton_call_origin" in updated:
            self.origin_enabled = ctx.options.halton_call_origin
        if "halton_ticket_pattern" in updated:
            try:
                self.ticket_pattern = compile_ticket_pattern(ctx.options.halton_ticket_pattern)
            except ValueError as exc:
                raise exceptions.OptionsError(f"halton_ticket_pattern: {exc}") from None

    @fail_open("attribution.requestheaders")
    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if ROUTE not in flow.metadata:
            return
        # Always removed from metered calls: the provider must never see our header.
        values = flow.request.headers.get_all(HEADER)
        if values:
            del flow.request.headers[HEADER]
            project = values[0].strip()
            if SLUG_RE.match(project) and len(project) <= 128:
                flow.metadata[ATTRIBUTION] = Attributed(project, "header")
            else:
                self.health.error(
                    "attribution.bad_header", f"{HEADER} {project[:40]!r} is not a project slug"
                )

    @fail_open("attribution.request")
    async def request(self, flow: http.HTTPFlow) -> None:
        if ROUTE not in flow.metadata or not isinstance(flow.metadata.get(ATTRIBUTION), Attributed | None):
            return
        decided: Attributed | None = flow.metadata.get(ATTRIBUTION)  # the header tier, if it spoke
        if decided is None and self.key_projects:
            key = api_key_of(flow.request.headers, flow.request.path)
            if key and (project := match_key(key, self.key_projects)):
                decided = Attributed(project, "api_key")
        user_agent = flow.request.headers.get("user-agent")
        client = flow.client_conn
        wanted = self.origin_enabled or (self.directory_enabled and decided is None)
        lookup = None
        if wanted and self.locator.supported and _loopback(client.peername):
            lookup = self._lookups.get(client.id)
            if lookup is None:
                lookup = asyncio.ensure_future(
                    asyncio.to_thread(self._locate, client.peername[1], client.sockname[1])
                )
                self._lookups[client.id] = lookup
        if lookup is None:
            flow.metadata[ATTRIBUTION] = self._settle(decided, user_agent, None)
        elif lookup.done():  # a kept-alive connection: its process is known already
            flow.metadata[ATTRIBUTION] = self._settle(decided, user_agent, _located(lookup))
        else:
            flow.metadata[ATTRIBUTION] = asyncio.ensure_future(
                self._settle_later(decided, user_agent, lookup)
            )

    def client_disconnected(self, client: connection.Client) -> None:
        self._lookups.pop(client.id, None)

    async def _settle_later(
        self, decided: Attributed | None, user_agent: str | None, lookup: asyncio.Future[_Located]
    ) -> Attributed:
        await asyncio.wait([lookup])
        return self._settle(decided, user_agent, _located(lookup))

    def _settle(
        self, decided: Attributed | None, user_agent: str | None, located: _Located | None
    ) -> Attributed:
        if decided is None:
            project = located.project if located is not None and self.directory_enabled else None
            decided = (
                Attributed(project, "directory")
                if project is not None
                else Attributed(self.default_project, "default")
            )
        if not self.origin_enabled:
            return decided
        origin = origin_of(
            located.checkout if located else None,
            user_agent,
            located.process_name if located else None,
            self.ticket_pattern,
        )
        return replace(decided, origin=origin) if origin != CallOrigin() else decided

    def _locate(self, client_port: int, server_port: int) -> _Located:
        try:
            pid = self.locator.pid_for(client_port, server_port)
            cwd = self.locator.cwd_of(pid) if pid is not None else None
            if cwd is None:
                return _Located(None, None, self.locator.name_of(pid) if pid is not None else None)
            project = project_for_directory(cwd, self.directory_projects)
            checkout = git_checkout(cwd) if self.origin_enabled else None
            return _Located(project, checkout, self.locator.name_of(pid) if pid is not None else None)
        except Exception as exc:  # best effort: count it and fall back to the default project
            logger.exception("directory attribution failed")
            self.health.error("attribution.directory", repr(exc))
            return _Located(None, None, None)

    def resolve(self, value: Attributed | asyncio.Future[Attributed] | None) -> Attributed | None:
        """The attribution of a finished flow, or None while a directory lookup is still running."""
        if value is None:
            return Attributed(self.default_project, "default")
        if isinstance(value, Attributed):
            return value
        if not value.done():
            return None
        if value.cancelled() or value.exception() is not None:
            return Attributed(self.default_project, "default")
        return value.result()


def _located(lookup: asyncio.Future[_Located]) -> _Located | None:
    if lookup.cancelled() or lookup.exception() is not None:
        return None
    return lookup.result()


def _slug(value: str, option: str) -> str:
    value = value.strip()
    if not SLUG_RE.match(value) or len(value) > 128:
        raise exceptions.OptionsError(
            f"{option}: {value!r} is not a project name (letters, digits, '.', '_', '-', '/'; "
            "starting with a letter or digit)"
        )
    return value
