"""One daemon per home: the pid lock and the state file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from halton_meter.paths import MeterPaths
from halton_meter.pidfile import AlreadyRunning, PidLock, read_state, running_pid, write_state


def test_the_lock_is_exclusive_and_released(tmp_path: Path):
    path = tmp_path / "daemon.pid"
    assert running_pid(path) is None
    with PidLock(path):
        assert running_pid(path) == os.getpid()
        with pytest.raises(AlreadyRunning) as raised:
            PidLock(path).acquire()
        assert raised.value.pid == os.getpid()
    assert running_pid(path) is None and not path.exists()


def test_a_crashed_daemon_does_not_block_the_next_start(tmp_path: Path):
    path = tmp_path / "daemon.pid"
    code = f"from halton_meter.pidfile import PidLock; PidLock(__import__('pathlib').Path({str(path)!r})).acquire(); print('ok', flush=True); import time; time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ok"
    assert running_pid(path) == child.pid
    child.kill()
    child.wait()  # reaped: the kernel has dropped its lock
    assert path.exists() and running_pid(path) is None  # stale file, no lock
    with PidLock(path):
        assert running_pid(path) == os.getpid()


def test_state_file(tmp_path: Path):
    paths = MeterPaths.resolve(tmp_path)
    assert read_state(paths) is None
    write_state(paths, ("127.0.0.1", 8090))
    state = read_state(paths)
    assert (state["pid"], state["host"], state["port"]) == (os.getpid(), "127.0.0.1", 8090)
