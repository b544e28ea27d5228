"""Control-plane data access: plain keyword-only functions that take a connection.

Functions that change something write their audit event through `audit.record` on the same connection,
so the change and its audit row commit (or roll back) together.
"""

from __future__ import annotations

from typing import TypeAlias

from psycopg import AsyncConnection
from psycopg.rows import DictRow

Connection: TypeAlias = AsyncConnection[DictRow]
