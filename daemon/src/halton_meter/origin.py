"""Where a call came from: the repository, git branch and ticket of the calling process, and the tool.

Pure functions over files and headers (no mitmproxy), used by the attribution addon, which finds the
calling process (:class:`halton_meter.attribution.ProcessLocator`) and hands its working directory and
name here.

- **Repository and branch**: the git checkout holding the process's working directory. ``.git`` is a
  folder (a plain clone) or a file ``gitdir: …`` (a worktree, a submodule); ``HEAD`` in the git dir names
  the branch (``ref: refs/heads/<branch>``); a detached HEAD has no branch. The repository is named
  after the folder of the *main* checkout (a worktree's ``commondir``), so two worktrees of one
  repository report one repository and their own branches. Nothing runs ``git``: two small reads.
- **Ticket**: the first match of a pattern (``[attribution] ticket_pattern``, by default Jira-like keys
  such as ``PROJ-1234``) in the branch name.
- **Tool**: the coding tool or SDK that made the call, from its User-Agent (Claude Code sends
  ``claude-cli/<version>``, Codex CLI ``codex_cli_rs/<version>``, the official SDKs ``Anthropic/Python
  <version>``, ``OpenAI/JS <version>``...), else from the process name (``cursor``, ``claude``,
  ``codex``), else the User-Agent's first product token.

On Linux the process comes from ``/proc`` (client port -> socket inode -> pid -> ``/proc/<pid>/cwd`` and
``/proc/<pid>/comm``). On macOS the same facts are reachable without root for one's own processes:
``lsof -nP -iTCP@127.0.0.1:<client port> -sTCP:ESTABLISHED -Fp`` gives the pid, and libproc's
``proc_pidinfo(pid, PROC_PIDVNODEPATHINFO)`` (``lsof -a -p <pid> -d cwd -Fn``) its working directory;
the meter does not do that yet, so on macOS a call carries the tool (from its User-Agent) only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TICKET_PATTERN = r"[A-Z][A-Z0-9]+-\d+"

# Column widths of raw.requests (protocol.RequestRow): longer values are clipped, never refused.
MAX_REPOSITORY, MAX_BRANCH, MAX_TICKET, MAX_TOOL, MAX_TOOL_VERSION = 256, 256, 64, 64, 64


@dataclass(frozen=True)
class Checkout:
    repository: str
    branch: str | None  # None: a detached HEAD


@dataclass(frozen=True)
class CallOrigin:
    """What the meter could see of where a call came from; each field None when it could not."""

    repository: str | None = None
    branch: str | None = None
    ticket: str | None = None
    tool: str | None = None
    tool_version: str | None = None


def git_checkout(cwd: Path) -> Checkout | None:
    """The checkout holding ``cwd`` (its repository's name and branch), or None outside one."""
    for top in (cwd, *cwd.parents):
        dot_git = top / ".git"
        try:
            if dot_git.is_dir():
                git_dir = common_dir = dot_git
            elif dot_git.is_file():
                git_dir = _gitdir_of(dot_git)
                if git_dir is None:
                    return None
                common_dir = _common_dir(git_dir)
            else:
                continue
            head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return None
        branch = head[16:] if head.startswith("ref: refs/heads/") else None
        main = common_dir.parent if common_dir.name == ".git" else top
        return Checkout(repository=main.name or str(main), branch=branch or None)
    return None


def _gitdir_of(dot_git_file: Path) -> Path | None:
    text = dot_git_file.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    path = Path(text[7:].strip())
    return path if path.is_absolute() else (dot_git_file.parent / path).resolve()


def _common_dir(git_dir: Path) -> Path:
    # A worktree's git dir (<repo>/.git/worktrees/<name>) names the repository's own in `commondir`.
    try:
        relative = (git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        return git_dir
    path = Path(relative)
    return (path if path.is_absolute() else git_dir / path).resolve()


def ticket_of(branch: str | None, pattern: re.Pattern[str]) -> str | None:
    """The first ticket key in a branch name (``feature/PROJ-12-login`` -> ``PROJ-12``)."""
    if not branch:
        return None
    found = pattern.search(branch)
    return found.group(0)[:MAX_TICKET] if found else None


def compile_ticket_pattern(pattern: str) -> re.Pattern[str]:
    """The configured ticket pattern, or ValueError saying what is wrong with it."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    if compiled.search("") is not None:
        raise ValueError(f"{pattern!r} matches an empty string: every branch would have an empty ticket")
    return compiled


# User-Agent products of the tools we name, first match wins: (pattern, tool). The version is group 1.
_AGENTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), tool)
    for pattern, tool in (
        (r"\bclaude-cli/([\w.\-+]+)", "claude-code"),
        (r"\bclaude-code/([\w.\-+]+)", "claude-code"),
        (r"\bcodex_cli_rs/([\w.\-+]+)", "codex-cli"),
        (r"\bcodex[-_]cli/([\w.\-+]+)", "codex-cli"),
        (r"\bCursor/([\w.\-+]+)", "cursor"),
        (r"\bAnthropic/Python ([\w.\-+]+)", "anthropic-python"),
        (r"\bAnthropic/JS ([\w.\-+]+)", "anthropic-js"),
        (r"\bOpenAI/Python ([\w.\-+]+)", "openai-python"),
        (r"\bOpenAI/JS ([\w.\-+]+)", "openai-js"),
        (r"\bgoogle-genai-sdk/([\w.\-+]+)", "google-genai"),
        (r"\bxai-sdk/([\w.\-+]+)", "xai-sdk"),
    )
)
# Process names (/proc/<pid>/comm, at most 15 characters) of tools whose User-Agent may not say so.
_PROCESSES = {"cursor": "cursor", "claude": "claude-code", "codex": "codex-cli"}
_PRODUCT = re.compile(r"^([A-Za-z][\w.\-]*)(?:/([\w.\-+]+))?")


def tool_of(user_agent: str | None, process_name: str | None = None) -> tuple[str | None, str | None]:
    """(tool, version) of the caller: a known tool by User-Agent, then by process name, then the
    User-Agent's first product (``curl/8.5.0`` -> ``curl``, ``8.5.0``); (None, None) if nothing says."""
    agent = (user_agent or "").strip()
    for pattern, tool in _AGENTS:
        if found := pattern.search(agent):
            return tool, found.group(1)[:MAX_TOOL_VERSION]
    if process_name:
        name = process_name.strip().lower()
        if name in _PROCESSES:
            return _PROCESSES[name], None
    if found := _PRODUCT.match(agent):
        return found.group(1)[:MAX_TOOL].lower(), (found.group(2) or None) and found.group(2)[
            :MAX_TOOL_VERSION
        ]
    return None, None


def origin_of(
    checkout: Checkout | None,
    user_agent: str | None,
    process_name: str | None,
    ticket_pattern: re.Pattern[str],
) -> CallOrigin:
    tool, version = tool_of(user_agent, process_name)
    if checkout is None:
        return CallOrigin(tool=tool, tool_version=version)
    return CallOrigin(
        repository=checkout.repository[:MAX_REPOSITORY],
        branch=checkout.branch[:MAX_BRANCH] if checkout.branch else None,
        ticket=ticket_of(checkout.branch, ticket_pattern),
        tool=tool,
        tool_version=version,
    )
