"""Dagster as `halton-cloud up` deploys it (`halton_api.orchestration`): run, event and schedule storage in the
control plane's PostgreSQL (a database of its own), the code location as its own process, and the run queue.
Two marts runs asked for at once run one after the other, never side by side."""

from __future__ import annotations

import itertools
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from halton_api import orchestration, postgres
from halton_meter.testing.processes import free_port
from halton_pipelines.definitions import defs
from halton_pipelines.defs.dbt import DBT_JOBS, DBT_RUN_TAG

pytestmark = pytest.mark.slow

ACTIVE = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


def test_every_dbt_job_carries_the_tag_the_queue_limits() -> None:
    assert orchestration.DBT_RUN_TAG == DBT_RUN_TAG
    for name in DBT_JOBS:
        assert defs.resolve_job_def(name).tags.get(DBT_RUN_TAG), name
    assert f'key: "{DBT_RUN_TAG}"' in orchestration.INSTANCE_YAML


@pytest.fixture
def deployment(
    postgres_url: str, warehouse, server_dir: Path, monkeypatch
) -> Iterator[orchestration.DagsterDeployment]:
    postgres.migrate(postgres_url)
    dagster_url = orchestration.dagster_database_url(postgres_url)
    assert orchestration.dagster_database_url(postgres_url) == dagster_url  # a second call finds it
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", dagster_url)  # for this test's own DagsterInstance
    env = {
        **os.environ,
        "HALTON_DATABASE_URL": postgres_url,
        "HALTON_CLICKHOUSE_URL": warehouse.url,
        "HALTON_CLICKHOUSE_DATABASE_PREFIX": warehouse.prefix,
        "HALTON_SECRET_KEY": secrets.token_urlsafe(48),
        "DAGSTER_POSTGRES_URL": dagster_url,
    }
    deployment = orchestration.DagsterDeployment(
        home=server_dir / "dagster", env=env, ui_port=free_port(), grpc_port=free_port(),
        log=server_dir / "dagster.log",
    )  # fmt: skip
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()
        name = conninfo_to_dict(postgres_url)["dbname"] + orchestration.DAGSTER_DATABASE_SUFFIX
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def submit_when_loaded(client: DagsterGraphQLClient, deployment, deadline: float) -> str:
    """The code server loads the definitions after it starts listening: ask until the job is there."""
    while True:
        try:
            return client.submit_job_execution("halton_marts", repository_location_name="halton")
        except DagsterGraphQLClientError as error:
            assert time.monotonic() < deadline, f"{error}\n{deployment.log.read_text()[-3000:]}"
            time.sleep(1)


@pytest.mark.timeout(900)  # two dbt builds one after the other, on a shared 2-core machine
def test_two_marts_runs_asked_for_at_once_run_one_at_a_time(deployment) -> None:
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{deployment.ui_port}/server_info", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, deployment.log.read_text()[-3000:]
        time.sleep(0.5)
    client = DagsterGraphQLClient("127.0.0.1", port_number=deployment.ui_port)
    first = submit_when_loaded(client, deployment, deadline)
    second = submit_when_loaded(client, deployment, deadline)

    instance = dg.DagsterInstance.from_config(str(deployment.home))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        seen_waiting = False
        deadline = time.monotonic() + 900
        while True:
            # Every dbt run there is (the sensors may have asked for one too), not only ours.
            runs = instance.get_runs(filters=dg.RunsFilter(tags={DBT_RUN_TAG: "build"}))
            active = [r.run_id for r in runs if r.status in ACTIVE]
            assert len(active) <= 1, f"dbt runs side by side: {active}"
            statuses = {r.run_id: r.status for r in runs}
            if active and dg.DagsterRunStatus.QUEUED in statuses.values():
                seen_waiting = True
            if all(statuses.get(run_id) in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
                   for run_id in (first, second)):  # fmt: skip
                break
            assert time.monotonic() < deadline, f"runs did not finish: {statuses}"
            time.sleep(0.2)
        assert seen_waiting, "the second run never waited in the queue"
        assert statuses[first] == statuses[second] == dg.DagsterRunStatus.SUCCESS, statuses
        records = sorted(
            instance.get_run_records(filters=dg.RunsFilter(tags={DBT_RUN_TAG: "build"})),
            key=lambda record: record.start_time or 0,
        )
        for earlier, later in itertools.pairwise(records):
            assert later.start_time >= earlier.end_time, "a dbt run started before the one before it ended"
    finally:
        instance.dispose()
