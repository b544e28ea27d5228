"""Where a running embedded warehouse server listens, kept beside its data so that other programs on the
machine (`halton-dbt`, `halton-warehouse`, a second terminal) find the server `halton-cloud up` started, on
whatever port it got, without being told.

The file (`server.json`: address and pid) is written once the server answers and removed when it stops; one
left by a server that died is ignored, because its pid is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

ADDRESS_FILE = "server.json"


def record_address(data_dir: Path, address: str, pid: int) -> None:
    path = Path(data_dir) / ADDRESS_FILE
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"address": address, "pid": pid}))
    scratch.replace(path)


def forget_address(data_dir: Path, pid: int) -> None:
    """Remove the record if it is still this server's (a newer server may have replaced it)."""
    path = Path(data_dir) / ADDRESS_FILE
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == pid:
            path.unlink()


def running_address(data_dir: Path) -> str | None:
    """`http://host:port` of the server running on `data_dir`, or None when none is."""
    try:
        record = json.loads((Path(data_dir) / ADDRESS_FILE).read_text())
        address, pid = str(record["address"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, someone else's
        pass
    return address
