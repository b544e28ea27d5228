"""Git checkouts for tests of the meter's origin (repository, branch, ticket): `git` as a test drives it, with
an identity and a default branch of its own so the machine's git configuration never matters."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(cwd: Path, *args: str) -> str:
    """Run `git args…` in `cwd`; its output, or CalledProcessError when it fails."""
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
