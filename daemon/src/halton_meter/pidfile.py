"""The daemon's run files: the ``daemon.pid`` lock and the ``daemon.json`` state.

One daemon per home directory: an exclusive lock on ``daemon.pid``, held for the daemon's life. A
lock (not just a pid in a file) means a crashed daemon never blocks the next start, and a reused
pid never makes ``status`` report a daemon that is gone. ``daemon.json`` says where it listens;
its modification time is the daemon's last heartbeat (the cloud supervisor touches it every tick),
and a clean exit rewrites it to say when the daemon stopped. So after a crash or ``kill -9``
``status`` can still say since when the daemon has been gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from halton_meter.paths import MeterPaths


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"a halton-meter daemon is already running (pid {pid or '?'})")
        self.pid = pid


class PidLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning(read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None


def running_pid(path: Path) -> int | None:
    """The pid of the daemon holding the lock, or None when no daemon holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(path) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def write_state(paths: MeterPaths, listen: tuple[str, int] | None) -> None:
    from halton_meter import __version__

    if listen is None:
        return
    document = {
        "pid": os.getpid(),
        "host": listen[0],
        "port": listen[1],
        "started_at": datetime.now(UTC).isoformat(),
        "version": __version__,
    }
    tmp = paths.daemon_state.with_suffix(".tmp")
    tmp.write_text(json.dumps(document) + "\n", encoding="utf-8")
    tmp.replace(paths.daemon_state)


def read_state(paths: MeterPaths) -> dict[str, Any] | None:
    try:
        return json.loads(paths.daemon_state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def heartbeat(paths: MeterPaths) -> None:
    """The daemon is alive now (a no-op before ``daemon.json`` exists)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(paths.daemon_state)


def write_stopped(paths: MeterPaths) -> None:
    """A clean exit: keep when the daemon started and say when it stopped (no address: nothing listens)."""
    from halton_meter import __version__

    previous = read_state(paths) or {}
    document = {
        "pid": os.getpid(),
        "started_at": previous.get("started_at"),
        "stopped_at": datetime.now(UTC).isoformat(),
        "version": __version__,
    }
    tmp = paths.daemon_state.with_suffix(".tmp")
    tmp.write_text(json.dumps(document) + "\n", encoding="utf-8")
    tmp.replace(paths.daemon_state)


def last_seen(paths: MeterPaths, state: dict[str, Any] | None) -> datetime | None:
    """When the daemon was last known alive: its clean stop, else its last heartbeat; None if never run."""
    stopped = _stamp((state or {}).get("stopped_at"))
    if stopped is not None:
        return stopped
    try:
        return datetime.fromtimestamp(paths.daemon_state.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def started_at(state: dict[str, Any] | None) -> datetime | None:
    return _stamp((state or {}).get("started_at"))


def _stamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
