"""The call journal: every answered call is on disk before its last byte reaches the client.

The store's writer commits calls to SQLite in batches every 50 ms, off the proxy's event loop; a call
still queued when the process dies would be lost although its client has its answer. So the moment a
call is answered (see :mod:`halton_meter.capture`), one record of it is appended here, on the event
loop, with a single ``write()``. The start replays what the journal holds into SQLite, skipping calls
already there, and a clean stop does the same for whatever the writer did not commit.

Durability: a ``write()`` that returned is in the kernel's page cache, which outlives the process:
a ``kill -9`` (or a crash) cannot lose it, so no ``fsync`` is made (an fsync per call would put a
disk flush on every call's latency). A power cut can lose the last records, as it can lose SQLite's
last commits (see :mod:`halton_meter.store`).

Layout: ``journal/NNNNNNNN.log`` segments under the meter's home, appended in order. A record is
``HMJ1``, the payload's length and its CRC-32 (big-endian u32 each), then the payload: it delimits
and checks itself, so a torn last record (the process died mid-write) or a damaged one is found,
skipped and counted, never mistaken for a call. A segment is deleted once every call recorded in it
is committed to SQLite; the current one is sealed and a new one started past :data:`SEGMENT_BYTES`.

Fail open: if the journal cannot be written the call still goes through, unjournaled, and the
failure is counted (``journal.write``, shown by ``halton-meter status``).
"""

from __future__ import annotations

import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from halton_meter.health import Health

logger = logging.getLogger(__name__)

MAGIC = b"HMJ1"
_HEADER = struct.Struct(">4sII")  # magic, payload length, CRC-32 of the payload
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a length above this is damage, not a record
SEGMENT_BYTES = 4 * 1024 * 1024
_SEGMENT_NAME = re.compile(r"^(\d{8})\.log$")


def frame(payload: bytes) -> bytes:
    """One complete record: header and payload, written with one ``write()``."""
    return _HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


@dataclass(frozen=True)
class Damage:
    """Bytes of a segment that are not a valid record (a torn tail, or corruption)."""

    segment: Path
    offset: int
    length: int
    tail: bool  # nothing valid follows: the process died while writing this record


def read_records(data: bytes, segment: Path) -> tuple[list[bytes], list[Damage]]:
    """The payloads of every valid record in a segment's bytes, and the stretches that were not."""
    payloads: list[bytes] = []
    damage: list[Damage] = []
    offset, size = 0, len(data)
    while offset < size:
        ok = False
        if size - offset >= _HEADER.size:
            magic, length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if magic == MAGIC and length <= MAX_RECORD_BYTES and end <= size:
                payload = data[offset + _HEADER.size : end]
                if zlib.crc32(payload) == crc:
                    payloads.append(payload)
                    offset = end
                    ok = True
        if not ok:
            # Resynchronise on the next record's magic: one bad record never hides the ones after it.
            following = data.find(MAGIC, offset + 1)
            stop = size if following < 0 else following
            damage.append(Damage(segment, offset, stop - offset, tail=following < 0))
            offset = stop
    return payloads, damage


class Journal:
    """Append-only segments of call records. See the module docstring.

    ``append`` runs on the proxy's event loop; ``release`` runs in the store's writer thread once the
    calls are committed. A lock guards the per-segment counts of calls not yet committed.
    """

    def __init__(self, folder: Path, health: Health, *, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.health = health
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._outstanding: dict[int, int] = {}
        self._current: int | None = None
        self._fd: int | None = None
        self._size = 0
        self._closed = True
        self._failing = False

    # -- what is on disk -----------------------------------------------------------------------

    def segments(self) -> list[Path]:
        """Existing segments, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _SEGMENT_NAME.match(p.name)]
        return sorted(found, key=lambda p: p.name)

    def read(self, segments: Iterable[Path]) -> Iterator[tuple[Path, list[bytes], list[Damage]]]:
        for segment in segments:
            try:
                data = segment.read_bytes()
            except FileNotFoundError:
                continue
            payloads, damage = read_records(data, segment)
            yield segment, payloads, damage

    # -- writing -------------------------------------------------------------------------------

    def open(self) -> None:
        """Start appending, to a new segment after any already on disk (call after replaying them)."""
        existing = self.segments()
        with self._lock:
            last = int(_SEGMENT_NAME.match(existing[-1].name).group(1)) if existing else 0
            self._current = last + 1
            self._closed = False
        self._roll()

    def append(self, payload: bytes) -> int | None:
        """Write one record; the segment it went to, or None if it could not be written (counted)."""
        if self._closed:
            return None
        record = frame(payload)
        if self._fd is None or self._size >= self.segment_bytes:
            self._roll()
            if self._fd is None:
                self._failed("the journal folder cannot be written")
                return None
        try:
            # No fsync: once write() returns the record is in the page cache, which survives the
            # process being killed; only a power cut could lose it (and SQLite's last commits too).
            written = os.write(self._fd, record)
        except OSError as exc:
            self._failed(str(exc))
            return None
        if written != len(record):
            # Disk full mid-record: cut the torn bytes off so the next record starts clean.
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                self._size += written  # the reader skips the torn record and resynchronises
            self._failed(f"short write ({written} of {len(record)} bytes)")
            return None
        self._size += written
        if self._failing:
            self._failing = False
            logger.info("the journal is written again (%s)", self.folder)
        with self._lock:
            segment = self._current
            self._outstanding[segment] = self._outstanding.get(segment, 0) + 1
        return segment

    def release(self, segments: Iterable[int]) -> None:
        """These records' calls are committed to SQLite: delete sealed segments that hold no other."""
        done: list[int] = []
        with self._lock:
            for segment in segments:
                left = self._outstanding.get(segment, 0) - 1
                if left > 0:
                    self._outstanding[segment] = left
                    continue
                self._outstanding.pop(segment, None)
                if segment != self._current:
                    done.append(segment)
        for segment in done:
            self._path(segment).unlink(missing_ok=True)

    def close(self) -> list[Path]:
        """Stop appending; delete segments whose calls are all committed; return those still holding some."""
        with self._lock:
            self._closed = True
            current, self._current = self._current, None
            pending = set(self._outstanding)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if current is not None and current not in pending:
            self._path(current).unlink(missing_ok=True)
        return [p for p in self.segments() if int(_SEGMENT_NAME.match(p.name).group(1)) in pending]

    def delete(self, segments: Iterable[Path]) -> None:
        for segment in segments:
            segment.unlink(missing_ok=True)

    # -- internals -----------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.folder / f"{segment:08d}.log"

    def _roll(self) -> None:
        """Seal the open segment (deleted now if all its calls are committed) and open the next one.

        With no segment open (the last attempt failed), try the same number again."""
        with self._lock:
            sealed = self._current if self._fd is not None else None
            if sealed is not None:
                self._current = sealed + 1
            nothing_left = sealed is not None and sealed not in self._outstanding
            current = self._current
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if sealed is not None and nothing_left:
            self._path(sealed).unlink(missing_ok=True)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self._fd = os.open(self._path(current), flags, 0o600)
            self._size = 0
        except OSError as exc:
            logger.debug("cannot open a journal segment in %s: %s", self.folder, exc)

    def _failed(self, detail: str) -> None:
        self.health.error("journal.write", detail)
        if not self._failing:
            self._failing = True
            logger.error(
                "cannot write the call journal in %s (%s): calls still go through and are stored, "
                "but a crash before they reach the database would lose them",
                self.folder,
                detail,
            )
