"""Halton's warehouse: ClickHouse schema, migrations, `connect(url)` and the embedded server."""

from halton_warehouse.warehouse_client import connect
from halton_warehouse.warehouse_settings import Databases, WarehouseSettings

__all__ = ["Databases", "WarehouseSettings", "connect"]
