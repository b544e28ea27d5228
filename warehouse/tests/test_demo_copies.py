"""The demo's requests copied inside the warehouse (benchmarks at 10-100M rows): every copy is a request of its
own, prompts repeat within a copy and never across copies, and the providers bill every copy."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from halton_warehouse import connect
from halton_warehouse.demo.demo_data import Billing, Demo, DemoConfig
from halton_warehouse.demo.demo_warehouse import load_demo


def test_copies_are_requests_of_their_own_with_their_own_prompts(warehouse) -> None:
    client = connect(warehouse.url)
    config = DemoConfig(seed=7, requests=2_000, days=14, chunk_size=1_000, copies=3)
    demo = Demo(config)
    loaded = load_demo(client, warehouse.databases, demo, control_plane=False)
    assert loaded.requests == 6_000
    prompts = Counter(h for chunk in demo.chunks() for h in chunk.prompt_hash)
    rows, uids, hashes, repeated = client.query(
        "SELECT sum(n), sum(uids), count(), countIf(n >= 2) FROM (SELECT prompt_hash, count() AS n,"
        f" uniqExact(request_uid) AS uids FROM {warehouse.databases.raw}.requests"
        " WHERE workspace_id = %(ws)s GROUP BY prompt_hash)",
        parameters={"ws": str(demo.workspace.workspace_id)},
    ).result_rows[0]
    assert (rows, uids) == (6_000, 6_000)
    # Each copy hashes its prompts anew: three times the distinct prompts, three times the repeated ones.
    assert (hashes, repeated) == (3 * len(prompts), 3 * sum(1 for n in prompts.values() if n >= 2))

    single = Demo(replace(config, copies=1))
    once, copied = Billing(single), Billing(demo)
    for chunk in single.chunks():
        once.add(chunk)
    for chunk in demo.chunks():
        copied.add(chunk)
    assert np.array_equal(copied._nanos, 3 * once._nanos)  # what every copy's calls truly cost
