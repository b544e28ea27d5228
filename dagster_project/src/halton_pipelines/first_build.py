"""The first marts build of `halton-cloud up --demo`: a Dagster run of the marts job, executed in this process.

Left to the daemon, the demo's marts waited for the sensor's next tick (up to 15 s after the last batch), the
run's creation (its execution plan, from the code server), the run queue's next pass and a new run worker
loading these definitions: 30-45 s before dbt started, on top of `dagster dev`'s three processes taking the
CPU the demo's ingestion needed while they loaded (bench/RESULTS.md, "First run"). Here the definitions load
while the demo does, the run starts the moment `up` says the demo is in, and `up` starts `dagster dev` once
this process has exited, so runs never overlap. The run is recorded in the Dagster instance like any other
(the UI lists it; its tag tells the ingestion sensor which rows it covered).

    python -m halton_pipelines.first_build     # then the line "build" on stdin; end of input: no build

Exit code 0 once the run succeeded (or nothing was asked for), 1 when it failed.
"""

from __future__ import annotations

import signal
import sys
import time
import uuid

GO = "build"


def main() -> int:
    import dagster as dg

    from halton_pipelines.definitions import defs
    from halton_pipelines.defs.dbt import (
        FIRST_BUILD,
        IN_FLIGHT,
        INGESTED_THROUGH,
        MARTS_JOB,
        STARTED_BY,
        marts_request,
    )
    from halton_warehouse import WarehouseSettings, connect

    started = time.monotonic()
    job = defs.resolve_job_def(MARTS_JOB)
    instance = dg.DagsterInstance.get()
    # One killed with its process (SIGKILL, a power cut) would read as in flight for ever.
    stale = dg.RunsFilter(statuses=IN_FLIGHT, tags={STARTED_BY: FIRST_BUILD})
    for run in instance.get_runs(filters=stale):
        instance.report_run_canceled(run, message="the first build's process ended before the run did")
    _import_dbt_adapter()
    _say(f"first build: definitions loaded in {time.monotonic() - started:.1f} s; waiting for the demo")
    if sys.stdin.readline().strip() != GO:  # `up` stopped, or its demo did not load
        _say("first build: not asked to build")
        return 0
    _say("first build: the demo is in, building")
    settings = WarehouseSettings()
    client = connect(settings.clickhouse_url)
    try:
        newest = client.query(
            f"SELECT toString(max(ingested_at)) FROM {settings.databases.raw}.requests"
        ).result_rows[0][0]
    finally:
        client.close()
    request = marts_request(instance, tags={INGESTED_THROUGH: newest, STARTED_BY: FIRST_BUILD})
    run_id = str(uuid.uuid4())
    # `up` stops this process group with SIGTERM: unwind, so that the run ends as a failure, not in flight.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = job.execute_in_process(
            instance=instance,
            asset_selection=request.asset_selection,
            tags=request.tags,
            run_id=run_id,
            raise_on_error=False,
        )
    except KeyboardInterrupt:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in IN_FLIGHT:
            instance.report_run_canceled(run, message="`halton-cloud up` stopped during the first build")
        return 1
    return 0 if result.success else 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}", file=sys.stderr, flush=True)


def _import_dbt_adapter() -> None:
    """dagster-dbt opens a dbt adapter in this process before starting dbt (loading the project, registering
    the adapter, reading dbt's own macros: 5 s between the step's start and dbt's, at load 6): its imports
    are made while the demo loads, not after."""
    import dbt.adapters.clickhouse
    import dbt.adapters.factory
    import dbt.config.runtime
    import dbt.context.providers
    import dbt.mp_context
    import dbt.parser.manifest  # noqa: F401


if __name__ == "__main__":
    raise SystemExit(main())
