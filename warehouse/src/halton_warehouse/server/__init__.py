"""The embedded warehouse server: ClickHouse's HTTP interface over chDB (see README.md for what it serves).

`python -m halton_warehouse.server --data-dir D --port P` runs it (listener.main).
"""
