"""The window of time a metered call's `started_at` and `ended_at` must fall in to be ingested.

A row outside it is refused, with its batch (422 naming row and field), because nothing downstream holds it
truthfully: `raw.requests` files a row under `toDate(started_at)`, a Date that wraps past 2149 (2200-01-01
was filed under 2020-07-27), and the marts' hours are DateTimes that clamp to 1970 and 2106, which once made
the unique test of `hourly_spend` fail and the whole dbt build with it, for every workspace. The window is
a policy, set in `CloudSettings`: not before `ingest_earliest_date` (2020-01-01), not more than
`ingest_max_future_skew_hours` (24) ahead of this server's clock.

A meter sets a refused row aside with the message (`halton-meter cloud status` shows it) and sends the rest:
a laptop whose clock was set to 2019 keeps its other rows flowing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from halton_api.batch_decoding import FIELD, WireRow
from halton_api.cloud_settings import CloudSettings

TIME_FIELDS = ("started_at", "ended_at")


@dataclass(frozen=True)
class IngestWindow:
    """Times from `earliest` to `max_ahead` past `clock()`, both ends included."""

    earliest: datetime
    max_ahead: timedelta
    clock: Callable[[], datetime]  # the app's clock (`create_app(clock=…)`)

    @classmethod
    def from_settings(cls, settings: CloudSettings, clock: Callable[[], datetime]) -> IngestWindow:
        return cls(
            earliest=datetime.combine(settings.ingest_earliest_date, time(), UTC),
            max_ahead=timedelta(hours=settings.ingest_max_future_skew_hours),
            clock=clock,
        )

    def problems(self, rows: Sequence[WireRow]) -> list[dict[str, Any]]:
        """Each row with a time outside the window, as `{"row", "field", "message"}` (its first such field);
        none when every time is inside."""
        if not rows:
            return []
        now = self.clock()
        latest = now + self.max_ahead
        # Rows end no earlier than they start (validated before), so the batch's first start and last end
        # settle it in two passes at C speed; only a batch that fails is looked at row by row.
        if (
            min(map(FIELD["started_at"], rows)) >= self.earliest
            and max(map(FIELD["ended_at"], rows)) <= latest
        ):
            return []
        found = []
        for index, row in enumerate(rows):
            for name in TIME_FIELDS:
                message = self._outside(getattr(row, name), now, latest)
                if message:
                    found.append({"row": index, "field": name, "message": message})
                    break
        return found

    def _outside(self, value: datetime, now: datetime, latest: datetime) -> str | None:
        if value < self.earliest:
            return (
                f"{value.isoformat()} is before {self.earliest:%Y-%m-%d} (UTC), the earliest time this cloud "
                "accepts: the machine's clock was probably wrong when the call was made"
            )
        if value > latest:
            return (
                f"{value.isoformat()} is more than {_hours(self.max_ahead)} ahead of the cloud's clock "
                f"({now.isoformat(timespec='seconds')}): check the machine's clock"
            )
        return None


def _hours(span: timedelta) -> str:
    hours = span / timedelta(hours=1)
    return f"{hours:g} hour" + ("" if hours == 1 else "s")
