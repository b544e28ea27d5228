"""Where a call came from: git checkouts (plain, worktree, detached), ticket keys and tools."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from halton_meter.origin import (
    DEFAULT_TICKET_PATTERN,
    CallOrigin,
    Checkout,
    compile_ticket_pattern,
    git_checkout,
    origin_of,
    ticket_of,
    tool_of,
)
from halton_meter.testing.git_repos import git

TICKETS = re.compile(DEFAULT_TICKET_PATTERN)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "checkout-service"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("x")
    git(repo, "add", "README")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_a_plain_clone_names_its_folder_and_branch(repo: Path):
    (repo / "src" / "deep").mkdir(parents=True)
    assert git_checkout(repo / "src" / "deep") == Checkout("checkout-service", "main")
    git(repo, "checkout", "-q", "-b", "feature/PAY-123-refunds")
    assert git_checkout(repo) == Checkout("checkout-service", "feature/PAY-123-refunds")


def test_worktrees_share_the_repository_and_keep_their_own_branches(repo: Path, tmp_path: Path):
    one, two = tmp_path / "wt-one", tmp_path / "elsewhere" / "wt-two"
    git(repo, "worktree", "add", "-q", "-b", "PAY-1-login", str(one))
    git(repo, "worktree", "add", "-q", "-b", "bugfix/OPS-77", str(two))
    assert git_checkout(one) == Checkout("checkout-service", "PAY-1-login")
    assert git_checkout(two) == Checkout("checkout-service", "bugfix/OPS-77")
    assert git_checkout(repo) == Checkout("checkout-service", "main")


def test_a_detached_head_has_no_branch_and_outside_a_checkout_there_is_none(repo: Path, tmp_path: Path):
    git(repo, "checkout", "-q", "--detach")
    assert git_checkout(repo) == Checkout("checkout-service", None)
    (tmp_path / "plain").mkdir()
    assert git_checkout(tmp_path / "plain") is None


@pytest.mark.parametrize(
    "branch, ticket",
    [
        ("feature/PROJ-1234-login", "PROJ-1234"),
        ("PAY-7", "PAY-7"),
        ("ab-12-lowercase", None),
        ("main", None),
        ("release/2026-12", None),
        (None, None),
    ],
)
def test_ticket_keys_come_from_the_branch_name(branch, ticket):
    assert ticket_of(branch, TICKETS) == ticket


def test_a_configured_pattern_and_bad_patterns():
    assert ticket_of("gh-4521-fix", compile_ticket_pattern(r"gh-\d+")) == "gh-4521"
    with pytest.raises(ValueError, match="not a regular expression"):
        compile_ticket_pattern("[A-Z")
    with pytest.raises(ValueError, match="empty string"):
        compile_ticket_pattern(r"\d*")


@pytest.mark.parametrize(
    "agent, process, expected",
    [
        ("claude-cli/2.0.14 (external, cli)", "node", ("claude-code", "2.0.14")),
        ("codex_cli_rs/0.46.0 (Mac OS 15.1.0; arm64) iTerm.app/3.5", None, ("codex-cli", "0.46.0")),
        ("Anthropic/Python 0.69.0", "python3", ("anthropic-python", "0.69.0")),
        ("OpenAI/Python 2.3.0", None, ("openai-python", "2.3.0")),
        ("Anthropic/JS 0.65.0", None, ("anthropic-js", "0.65.0")),
        ("OpenAI/JS 6.1.0", None, ("openai-js", "6.1.0")),
        ("google-genai-sdk/1.41.0 gl-python/3.11.7", None, ("google-genai", "1.41.0")),
        ("python-httpx/0.28.1", "cursor", ("cursor", None)),
        ("python-httpx/0.28.1", "python3", ("python-httpx", "0.28.1")),
        ("curl/8.5.0", None, ("curl", "8.5.0")),
        (None, "claude", ("claude-code", None)),
        (None, None, (None, None)),
        ("", "bash", (None, None)),
    ],
)
def test_tools_from_the_user_agent_then_the_process_name(agent, process, expected):
    assert tool_of(agent, process) == expected


def test_origin_of_puts_it_together():
    checkout = Checkout("web", "feature/WEB-9-" + "x" * 400)
    origin = origin_of(checkout, "OpenAI/Python 2.3.0", None, TICKETS)
    assert origin.repository == "web" and origin.ticket == "WEB-9" and len(origin.branch or "") == 256
    assert origin.tool == "openai-python" and origin.tool_version == "2.3.0"
    assert origin_of(None, None, None, TICKETS) == CallOrigin()
