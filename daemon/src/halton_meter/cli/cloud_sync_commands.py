"""``cloud status``, ``sync``, ``reconcile``, ``pause`` and ``resume``: watching and steering the sync."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from halton_meter.cli.cloud_access import forbidden_advice, paired_credentials
from halton_meter.cli.terminal import console, err_console, fail, print_json, settings_or_exit


def _label(name: str, value: object) -> None:
    """One aligned ``Name:  value`` line, as the product documents show them."""
    console.print(f"{name + ':':<17}{value}", highlight=False, markup=False)


def _ready_to_sync():
    """Settings, credentials, cloud status and an open store for a command that talks to the cloud on the
    meter's behalf, or exit with what to run first (not paired, sync off, sync paused, store unreadable)."""
    from halton_meter.cloud import state
    from halton_meter.store import StoreError, open_store

    settings = settings_or_exit()
    credentials = paired_credentials(settings)
    current = state.load_status(settings)
    if current.state == state.NOT_CONFIGURED:
        fail(
            current.problem or "cloud sync is off ([cloud] enabled = false): run `halton-meter cloud connect`"
        )
    if current.paused_reason:
        fail(f"sync is paused ({current.paused_reason}): run `halton-meter cloud resume` first")
    try:
        conn = open_store(settings.paths.db)
    except StoreError as exc:
        fail(str(exc))
    return settings, credentials, current, conn


@click.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cloud_status(as_json: bool) -> None:
    """ACTIVE, DEGRADED, PAUSED or NOT-CONFIGURED; last sync, unsynced rows, rejected rows, last error."""
    from halton_meter.cloud import state
    from halton_meter.status import probe_daemon

    settings = settings_or_exit()
    daemon = probe_daemon(settings)
    result = state.with_daemon(
        state.load_status(settings),
        daemon.state,
        started_at=daemon.started_at,
        last_seen_at=daemon.last_seen_at,
    )
    if as_json:
        print_json(result.to_json())
        return
    _label("State", result.state)
    if result.paused_reason:
        _label("Paused reason", result.paused_reason)
    _label("Last sync", state.ago(result.age_seconds(result.last_sync_at)))
    _label("Unsynced rows", result.unsynced_rows)
    reconciled = state.ago(result.age_seconds(result.last_reconcile_at))
    if result.last_reconcile:
        found = result.last_reconcile
        reconciled += (
            f" ({found['matched_days']} days matched, {found['resent_rows']} rows re-sent, "
            f"{len(found['differences'])} differences)"
        )
    _label("Last reconcile", reconciled)
    if result.rejected_rows:
        first = result.rejected[0][1] if result.rejected else ""
        _label("Rejected rows", f"{result.rejected_rows} set aside (newest: {first})")
    if result.degraded_reason and result.state == state.DEGRADED:
        _label("Degraded", result.degraded_reason)
    if result.last_error:
        _label("Last error", f"{result.last_error} ({state.ago(result.age_seconds(result.last_error_at))})")
    if result.problem:
        _label("Problem", result.problem)
    if result.state == state.NOT_RUNNING:
        seen = result.age_seconds(result.daemon_last_seen_at)
        since = f" (last seen {state.ago(seen)})" if seen is not None else ""
        _label("Daemon", f"stopped{since}: rows wait locally until `halton-meter start`")
    elif result.state != state.NOT_CONFIGURED and result.daemon_state == state.DAEMON_UNRESPONSIVE:
        _label("Daemon", "not answering on its port: see `halton-meter status` and the daemon log")
    hints = {
        state.PAUSED_MANUAL: "run `halton-meter cloud resume` to restart sync",
        state.PAUSED_UNAUTHORISED: "run `halton-meter cloud resume` (it checks the token); if the token is "
        "revoked, run `halton-meter cloud connect`",
        state.PAUSED_FORBIDDEN: forbidden_advice(settings, result.workspace_slug),
    }
    if result.paused_reason in hints:
        _label("Next", hints[result.paused_reason])
    elif result.state == state.NOT_CONFIGURED and not result.problem:
        _label("Next", "run `halton-meter cloud connect` to pair this machine")


def _post_line(post) -> str:
    if post.status is None:
        text = f"POST /v1/requests/batch  →  no answer  ({post.rows} rows): {post.detail}"
    elif 200 <= post.status < 300:
        counts = f"{post.accepted} rows accepted"
        if post.duplicates:
            counts += f", {post.duplicates} duplicates"
        text = f"POST /v1/requests/batch  →  {post.status} {post.reason}  ({counts})"
    else:
        text = f"POST /v1/requests/batch  →  {post.status} {post.reason}  ({post.rows} rows): {post.detail}"
    return "  " * post.depth + text


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def sync(as_json: bool) -> None:
    """Send unsynced rows now (the daemon also does this on its own; the cloud ignores duplicates)."""
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient
    from halton_meter.cloud.sync import FORBIDDEN, UNAUTHORISED, Uploader

    settings, credentials, current, conn = _ready_to_sync()
    printer = (
        None if as_json else (lambda post: console.print(_post_line(post), highlight=False, markup=False))
    )
    try:
        with CloudClient(settings.cloud_base_url) as client:
            uploader = Uploader(
                conn,
                client,
                credentials.token,
                batch_rows=settings.cloud_batch_rows,
                batch_bytes=settings.cloud_batch_bytes,
                on_post=printer,
            )
            result = uploader.run_pass(budget_s=3600.0)
        at = state.now_utc()
        pairing_id = credentials.pairing_id
        if result.stopped is None:
            state.record_success(
                conn,
                pairing_id,
                at=at,
                accepted=result.accepted,
                duplicates=result.duplicates,
                uploaded=result.uploaded,
            )
            # The cloud took everything this pass read: whatever the worker flagged is over (it flags
            # again if its own next passes fail or fall behind).
            state.set_degraded(conn, pairing_id, None)
        else:
            if result.uploaded:
                state.record_progress(
                    conn, pairing_id, accepted=result.accepted, duplicates=result.duplicates, at=at
                )
            state.record_failure(conn, pairing_id, at=at, error=result.error or "sync failed", count=False)
            if result.stopped in (UNAUTHORISED, FORBIDDEN):
                reason = (
                    state.PAUSED_UNAUTHORISED if result.stopped == UNAUTHORISED else state.PAUSED_FORBIDDEN
                )
                state.set_paused(conn, pairing_id, reason, result.error)
    finally:
        conn.close()
    if as_json:
        print_json(
            {
                "posts": [
                    {
                        "rows": p.rows,
                        "status": p.status,
                        "accepted": p.accepted,
                        "duplicates": p.duplicates,
                        "detail": p.detail,
                        "depth": p.depth,
                    }
                    for p in result.posts
                ],
                "synced": result.synced,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "set_aside": [{"request_uid": uid, "reason": reason} for uid, reason in result.set_aside],
                "stopped": result.stopped,
                "error": result.error,
                "unsynced_rows": result.remaining,
            }
        )
    else:
        if not result.posts and not result.set_aside:
            console.print("Nothing to sync: 0 unsynced rows.")
        if result.set_aside:
            console.print(
                f"Set aside {len(result.set_aside)} row(s) the cloud refused: {result.set_aside[0][1]} "
                "(listed by `halton-meter cloud status --json`)",
                highlight=False,
                markup=False,
            )
        if result.stopped == UNAUTHORISED:
            err_console.print(
                "Sync paused (paused_unauthorised): run `halton-meter cloud resume`, which checks the token; "
                "if it is revoked, run `halton-meter cloud connect`.",
                highlight=False,
            )
        elif result.stopped == FORBIDDEN:
            err_console.print(
                f"Sync paused (paused_forbidden): a workspace owner removed this machine. "
                f"{forbidden_advice(settings, current.workspace_slug)}",
                highlight=False,
            )
        elif result.stopped is not None:
            err_console.print(
                f"Could not sync: {escape(result.error or 'unknown error')}. The rows stay queued; the daemon "
                "retries with backoff.",
                highlight=False,
            )
    if result.stopped is not None:
        sys.exit(1)


@click.command()
@click.option(
    "--days",
    type=click.IntRange(1, 90),  # the cloud's default reconcile_max_days
    default=30,
    show_default=True,
    help="UTC days to compare, today included.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def reconcile(days: int, as_json: bool) -> None:
    """Compare this machine's rows and cost per day with the cloud's; mark what it lacks for re-sending."""
    from halton_meter.cloud import reconcile as reconciling
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient, CloudError

    settings, credentials, current, conn = _ready_to_sync()
    try:
        with CloudClient(settings.cloud_base_url) as client:
            result = reconciling.reconcile(
                conn,
                client,
                credentials.token,
                machine_id=current.machine_id or "",
                days=days,
                now=state.now_utc(),
            )
        reconciling.record(conn, credentials.pairing_id, result)
    except CloudError as exc:
        fail(f"reconcile failed: {exc}")
    finally:
        conn.close()
    if as_json:
        print_json(result.to_json())
        return
    console.print(
        f"Reconciled {result.first_day} to {result.last_day} (UTC): {result.summary()}.", highlight=False
    )
    for day in result.differences:
        console.print(
            f"  {day.day}: meter {day.meter_rows} rows / ${day.meter_cost_usd}, cloud {day.cloud_rows} rows / "
            f"${day.cloud_cost_usd}; {day.resent_rows} to re-send, {day.cloud_only_rows} only in the cloud",
            highlight=False,
            markup=False,
        )
    if result.resent_rows:
        console.print(
            "The daemon re-sends them on its next pass (or run `halton-meter cloud sync` now).",
            highlight=False,
        )
    if result.cloud_only_rows:
        console.print(
            "Rows only in the cloud were left as they are (this machine's database was reset or copied?).",
            highlight=False,
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pause(as_json: bool) -> None:
    """Stop sending rows to the cloud (capture continues locally)."""
    from halton_meter.cloud import state
    from halton_meter.store import open_store

    settings = settings_or_exit()
    credentials = paired_credentials(settings)
    current = state.load_status(settings)
    conn = open_store(settings.paths.db)
    try:
        if current.paused_reason and current.paused_reason != state.PAUSED_MANUAL:
            message = f"Sync is already paused ({current.paused_reason}); left as it is."
        else:
            state.set_paused(
                conn,
                credentials.pairing_id,
                state.PAUSED_MANUAL,
                "halton-meter cloud pause",
                keep_manual=False,
            )
            message = "Cloud sync paused (paused_manual). Capture continues locally; `halton-meter cloud resume` restarts it."
    finally:
        conn.close()
    if as_json:
        print_json(state.load_status(settings).to_json())
    else:
        console.print(message, highlight=False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def resume(as_json: bool) -> None:
    """Resume sync after checking the token with the cloud (whoami)."""
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused
    from halton_meter.store import open_store

    settings = settings_or_exit()
    credentials = paired_credentials(settings)
    current = state.load_status(settings)
    was, slug = current.paused_reason, current.workspace_slug
    lines: list[str] = []
    failure: str | None = None
    unanswered: str | None = None
    conn = open_store(settings.paths.db)
    try:
        with CloudClient(settings.cloud_base_url) as client:
            try:
                identity = client.whoami(credentials.token)
            except CloudRefused as exc:
                if exc.status == 401:
                    state.set_paused(
                        conn, credentials.pairing_id, state.PAUSED_UNAUTHORISED, str(exc), keep_manual=False
                    )
                    failure = (
                        f"The token is revoked ({client.host} answered HTTP 401 to whoami): run "
                        "`halton-meter cloud connect` to pair this machine again."
                    )
                elif exc.status == 403:
                    state.set_paused(
                        conn, credentials.pairing_id, state.PAUSED_FORBIDDEN, str(exc), keep_manual=False
                    )
                    failure = (
                        f"A workspace owner removed this machine from {slug or 'the workspace'} (HTTP 403). "
                        f"{forbidden_advice(settings, slug)}"
                    )
                else:
                    unanswered = f"{client.host} could not check the token ({exc})"
            except CloudError as exc:
                unanswered = f"could not check the token: {exc}"
            else:
                state.clear_pause(conn, credentials.pairing_id)
                lines.append(f"Token OK: workspace {identity.workspace_slug}, machine {identity.machine_id}.")
                lines.append(
                    f"Cloud sync resumed (was {was})."
                    if was
                    else "Cloud sync was not paused; nothing to resume."
                )
        if unanswered is not None:
            # The cloud did not answer: a manual pause is lifted anyway (the worker retries with
            # backoff); a pause the cloud caused stays until the cloud confirms the token.
            if was in (None, state.PAUSED_MANUAL):
                state.clear_pause(conn, credentials.pairing_id)
                lines.append(f"Warning: {unanswered}. Sync resumed anyway; the daemon retries with backoff.")
            else:
                failure = f"{unanswered}; still paused ({was}). Retry when the cloud is reachable."
    finally:
        conn.close()
    if as_json:
        print_json({**state.load_status(settings).to_json(), "resume_error": failure})
    else:
        for line in lines:
            console.print(line, highlight=False, markup=False)
    if failure is not None:
        if not as_json:
            err_console.print(f"[bold red]error:[/] {escape(failure)}", highlight=False)
        sys.exit(1)
