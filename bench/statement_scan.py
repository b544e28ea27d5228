"""How long the warehouse server takes to read hostile statements (an unterminated comment, thousands of
comments, long quotes, deep parentheses, a long SELECT list): linear scans take milliseconds, a
backtracking one would take hours. The inputs are those of warehouse/tests/test_server_sql.py, which
checks that the scan finishes; the time is measured here.

Run: ``uv run python bench/statement_scan.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time

from halton_warehouse.http_sql import NeedMoreText, inspect_statement, split_insert

DBT_COMMENT = '/* {"app": "dbt", "dbt_version": "1.10.23", "node_id": "model.halton.daily_spend"} */\n'
INPUTS = {
    "open-comment": "/*" + "*" * 300_000,
    "many-comments": DBT_COMMENT * 5_000 + "SELECT 1",
    "quotes": "'" + "''" * 150_000,
    "parens": "SELECT " + "(" * 200_000,
    "long-select": "SELECT " + "a, " * 100_000 + "b FORMAT Native",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    for name, text in INPUTS.items():
        best = float("inf")
        for _ in range(args.runs):
            started = time.perf_counter()
            inspect_statement(text)
            with contextlib.suppress(NeedMoreText):
                split_insert("INSERT " + text, complete=False)
            best = min(best, time.perf_counter() - started)
        print(f"{name:>14}: {len(text):>9,} chars, best of {args.runs}: {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
