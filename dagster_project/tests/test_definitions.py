"""The Definitions load as `dagster dev -m halton_pipelines.definitions` loads them."""

from __future__ import annotations

import dagster as dg


def test_definitions_load_with_every_domain(monkeypatch) -> None:
    monkeypatch.setenv("HALTON_CLICKHOUSE_URL", "http://127.0.0.1:8123")
    from halton_pipelines.definitions import defs, resources_for_environment

    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert {
        "billing/openai_billing", "billing/anthropic_billing", "billing/xai_billing", "billing/billing_statements",
        "control_plane/projects", "control_plane/devices", "control_plane/members", "control_plane/snapshots",
        "price_card/model_prices", "price_card/price_catalogue", "meter/requests", "staging/int_requests_priced", "daily_spend",
        "reconciliation", "reconciliation_daily", "reconciliation_requests", "prompt_clusters", "model_usage_30d",
        "budget_variance", "project_spend", "developer_spend", "cost_center_spend", "branch_spend", "ticket_spend",
        "budget_alerts", "spend_anomalies", "anomaly_alerts", "exports/parquet_export",
    } <= keys  # fmt: skip
    exports = graph.get(dg.AssetKey(["exports", "parquet_export"]))
    assert {k.to_user_string() for k in exports.parent_keys} == {
        "meter/requests",
        "daily_spend",
        "project_spend",
    }
    groups = {
        graph.get(dg.AssetKey(["daily_spend"])).group_name,
        graph.get(dg.AssetKey(["staging", "stg_meter__requests"])).group_name,
    }
    assert groups == {"marts", "staging"}
    billing_staging = graph.get(dg.AssetKey(["staging", "stg_billing__provider_costs"]))
    assert {k.to_user_string() for k in billing_staging.parent_keys} == {
        "billing/openai_billing",
        "billing/anthropic_billing",
        "billing/xai_billing",
    }
    assert {s.name for s in defs.schedules} == {
        "marts_every_15_minutes", "history_marts_hourly", "billing_daily_schedule", "price_card_daily",
        "recommendations_hourly", "price_catalogue_daily", "budget_alerts_hourly", "exports_daily_schedule",
    }  # fmt: skip
    job = defs.resolve_job_def("halton_marts")
    marts = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert "daily_spend" in marts and "control_plane/projects" in marts and "recommendations" in marts
    assert "budget_alerts" in marts  # evaluated after every marts build
    assert {"spend_anomalies", "anomaly_alerts"} <= marts  # runaway spend is caught by every marts build
    from halton_pipelines.defs.dbt import ROUTINE_MARTS

    routine = {k.to_user_string() for k in ROUTINE_MARTS}  # what every run but a deployment's first builds
    assert "daily_spend" in routine and "control_plane/projects" in routine
    assert {"spend_anomalies", "anomaly_alerts"} <= routine
    assert not routine & {"prompt_clusters", "model_usage_30d", "recommendations"}
    assert {s.name for s in defs.sensors} == {"marts_after_ingestion", "first_recommendations"}
    recommendations = graph.get(dg.AssetKey(["recommendations"]))
    assert {k.to_user_string() for k in recommendations.parent_keys} == {
        "model_usage_30d", "prompt_clusters", "staging/int_requests_priced", "staging/int_model_prices_windowed",
    }  # fmt: skip
    assert recommendations.group_name == "marts"
    schedule = next(s for s in defs.schedules if s.name == "recommendations_hourly")
    assert schedule.cron_schedule == "20 * * * *"
    assert defs.resolve_job_def("halton_recommendations").asset_layer.selected_asset_keys == {
        dg.AssetKey(["recommendations"])
    }
    assert set(resources_for_environment()) == {
        "warehouse",
        "alerts",
        "control_plane",
        "provider_keys",
        "export_destinations",
        "billing_apis",
        "price_source",
        "dbt",
    }
    defs.get_repository_def().load_all_definitions()


def test_recorded_billing_is_chosen_by_the_environment(monkeypatch, tmp_path) -> None:
    from halton_pipelines.definitions import resources_for_environment
    from halton_pipelines.resources import BillingAPIsResource, RecordedBillingResource

    assert isinstance(resources_for_environment()["billing_apis"], BillingAPIsResource)
    monkeypatch.setenv("HALTON_BILLING_FIXTURES", str(tmp_path))
    assert isinstance(resources_for_environment()["billing_apis"], RecordedBillingResource)


def test_the_first_recommendations_follow_the_first_marts_run() -> None:
    from halton_pipelines.defs.recommendation_assets import (
        FIRST_MARTS,
        RECOMMENDATIONS,
        first_recommendations,
    )

    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance)
        assert isinstance(first_recommendations(context), dg.SkipReason)  # no marts yet
        instance.report_runless_asset_event(dg.AssetMaterialization(FIRST_MARTS))
        request = first_recommendations(dg.build_sensor_context(instance=instance))
        assert isinstance(request, dg.RunRequest) and request.run_key.startswith("first-recommendations-")
        instance.report_runless_asset_event(dg.AssetMaterialization(RECOMMENDATIONS))
        skipped = first_recommendations(dg.build_sensor_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason) and "hourly" in skipped.skip_message


def test_marts_runs_never_overlap_the_schedule_skips_while_one_is_in_flight() -> None:
    """The 15-minute schedule once started a second full marts run beside the sensor's: both now ask the
    instance first, and a tick that finds a marts run in flight is skipped (its work is in that run)."""
    from halton_pipelines.defs.dbt import (
        HISTORY_MARTS,
        RECOMMENDATIONS,
        ROUTINE_MARTS,
        history_marts_hourly,
        marts_every_15_minutes,
        marts_job,
        marts_run_in_flight,
    )

    with dg.instance_for_test() as instance:
        assert marts_run_in_flight(instance) is None
        assert isinstance(marts_every_15_minutes(dg.build_schedule_context(instance=instance)), dg.RunRequest)
        run = instance.create_run_for_job(
            dg.GraphDefinition(name=marts_job.name, node_defs=[]).to_job(), status=dg.DagsterRunStatus.STARTED
        )
        assert marts_run_in_flight(instance).run_id == run.run_id
        skipped = marts_every_15_minutes(dg.build_schedule_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason) and run.run_id in skipped.skip_message
        assert isinstance(history_marts_hourly(dg.build_schedule_context(instance=instance)), dg.SkipReason)
        instance.report_run_failed(run)
        assert marts_run_in_flight(instance) is None
        first = marts_every_15_minutes(dg.build_schedule_context(instance=instance))
        assert first.asset_selection is None  # no recommendations yet: everything, history marts included
        instance.report_runless_asset_event(dg.AssetMaterialization(RECOMMENDATIONS))
        stale = marts_every_15_minutes(dg.build_schedule_context(instance=instance))
        assert set(stale.asset_selection) == set(ROUTINE_MARTS) | set(HISTORY_MARTS)  # history never built
        for key in HISTORY_MARTS:
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        routine = marts_every_15_minutes(dg.build_schedule_context(instance=instance))
        assert set(routine.asset_selection) == set(ROUTINE_MARTS)


def test_dbt_runs_the_executable_beside_the_interpreter(monkeypatch) -> None:
    """Started as `.venv/bin/halton-cloud` (no `uv run`), the environment's bin/ is not on PATH: dbt must be
    found beside the interpreter all the same."""
    import sys
    from pathlib import Path

    from halton_pipelines.dbt_cli import dbt_executable

    monkeypatch.setenv("PATH", "/nonexistent")
    assert Path(dbt_executable()) == Path(sys.executable).with_name("dbt")
    assert Path(dbt_executable()).is_file()


def test_a_first_build_left_in_flight_holds_no_later_run_back() -> None:
    """`up --demo`'s first build always ends before the daemon starts: one still "in flight" was killed with
    its process, and the sensor and schedules must not wait on it for ever; a daemon's run still counts."""
    import uuid

    from halton_pipelines.defs.dbt import FIRST_BUILD, MARTS_JOB, STARTED_BY, marts_run_in_flight

    with dg.instance_for_test() as instance:
        killed = dg.DagsterRun(
            job_name=MARTS_JOB,
            run_id=str(uuid.uuid4()),
            status=dg.DagsterRunStatus.STARTED,
            tags={STARTED_BY: FIRST_BUILD},
        )
        instance.add_run(killed)
        assert marts_run_in_flight(instance) is None
        daemons = dg.DagsterRun(
            job_name=MARTS_JOB, run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
        )
        instance.add_run(daemons)
        running = marts_run_in_flight(instance)
        assert running is not None and running.run_id == daemons.run_id


def test_the_export_schedule_asks_for_yesterday() -> None:
    from datetime import UTC, datetime

    from halton_pipelines.defs.parquet_exports import exports_daily_schedule

    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 1, 7, 30, tzinfo=UTC))
    request = exports_daily_schedule(context)
    assert (request.partition_key, request.run_key) == ("2026-02-28", "2026-02-28")
