"""A child started in a process group of its own, and stopped with every process it started.

`dagster dev` starts a webserver, a daemon and a code server, and they start run workers and dbt. Stopping
only the `dagster dev` process (and waiting for it alone) once left the code server and its children running
for a minute after `halton-cloud up` had exited. Here the whole group gets SIGTERM, and the stop returns only
once no process of the group is left (SIGKILL for those that outstay the grace period).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

POLL_SECONDS = 0.1


def start_group(
    command: Sequence[str], *, env: dict[str, str], log: Path, stdin: int | None = None
) -> subprocess.Popen[bytes]:
    """`command` as the leader of a new session (so of a new process group), output appended to `log`;
    `stdin=subprocess.PIPE` to talk to it.

    The new session also keeps the terminal's Ctrl-C away from it: `up` stops it, in order."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            env=env,
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def group_members(pgid: int) -> list[int]:
    """The live processes of group `pgid`. Zombies do not count: one left to a PID 1 that never reaps (in a
    container, say) would otherwise keep a stop waiting forever. Without /proc, a signal 0 answers."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 15) -> None:
    """SIGTERM to the group `process` leads, then wait until none of it is left; SIGKILL after `grace`."""
    pgid = process.pid
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None or group_members(pgid):  # poll() reaps the leader
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(POLL_SECONDS)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)
