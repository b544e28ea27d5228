"""``cloud …``: pairing this machine with a Halton Meter Cloud workspace, and watching the sync."""

from __future__ import annotations

import signal
import sys

import click
from rich.markup import escape

from halton_meter.cli.terminal import console, err_console, fail, print_json, settings_or_exit
from halton_meter.settings import Settings


@click.group()
def cloud() -> None:
    """Pair this machine with a Halton Meter Cloud workspace, and watch the sync.

    Off by default: nothing leaves this machine until `cloud connect` is approved in the browser.
    """


def _base_url_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from halton_meter.settings import cloud_base_url

    if value is None:
        return None
    try:
        return cloud_base_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _label(name: str, value: object) -> None:
    """One aligned ``Name:  value`` line, as the product documents show them."""
    console.print(f"{name + ':':<17}{value}", highlight=False, markup=False)


def _paired(settings: Settings):
    """The saved credentials, or exit with what to run."""
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        fail(str(exc))
    if credentials is None:
        fail("this machine is not connected to Halton Meter Cloud: run `halton-meter cloud connect`")
    return credentials


def _ready_to_sync():
    """Settings, credentials, cloud status and an open store for a command that talks to the cloud on the
    meter's behalf, or exit with what to run first (not paired, sync off, sync paused, store unreadable)."""
    from halton_meter.cloud import state
    from halton_meter.store import StoreError, open_store

    settings = settings_or_exit()
    credentials = _paired(settings)
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


def _devices_page(settings: Settings, slug: str | None) -> str:
    return f"{settings.cloud_dashboard_origin}/{slug or '[workspace]'}/settings/devices"


def _forbidden_advice(settings: Settings, slug: str | None) -> str:
    return (
        "Do not run `halton-meter cloud connect`: the token is still valid and connect would revoke it. "
        f"Ask a workspace owner to re-invite this machine at {_devices_page(settings, slug)}, "
        "then run `halton-meter cloud resume`."
    )


def _withdraw(client, ticket) -> None:
    """Cancel an abandoned code on the cloud; a second Ctrl-C must not cut the cancel short."""
    from halton_meter.cloud import pairing

    if ticket is None:
        return
    previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        err_console.print(escape(pairing.withdraw(client, ticket)), highlight=False)
    finally:
        signal.signal(signal.SIGINT, previous_handler)


@cloud.command()
@click.option(
    "--base-url",
    callback=_base_url_option,
    help="Cloud API to pair with (self-hosted or development). Saved to config.toml on approval. "
    "Default: [cloud] base_url, HALTON_METER_CLOUD_URL, https://api.haltonmeter.com.",
)
@click.option(
    "--poll-interval-seconds",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="How often to ask the cloud whether the code was approved.",
)
@click.option(
    "--timeout-seconds",
    type=click.FloatRange(min=0.1),
    default=600.0,
    show_default=True,
    help="Give up after this long (codes expire after 10 minutes anyway).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Re-pair a paired machine without asking, even one the workspace removed (HTTP 403). "
    "The current token keeps working until the new pairing is approved.",
)
def connect(base_url: str | None, poll_interval_seconds: float, timeout_seconds: float, force: bool) -> None:
    """Pair this machine: print a one-time code, wait for approval in the browser, save the token."""
    from halton_meter.cloud import link, pairing, state
    from halton_meter.cloud.client import CloudClient, host_of
    from halton_meter.cloud.config_table import ConfigEditError
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials
    from halton_meter.home import HomeProblem, load_machine_id
    from halton_meter.status import probe_daemon

    settings = settings_or_exit()
    paths = settings.paths
    if probe_daemon(settings).state != "running":
        fail("daemon not running: run halton-meter status and halton-meter start")
    try:
        machine_id = load_machine_id(paths)
        previous = load_credentials(paths)
    except (HomeProblem, CredentialsProblem) as exc:
        fail(str(exc))
    if previous is not None:
        current = state.load_status(settings)
        if current.paused_reason == state.PAUSED_FORBIDDEN and not force:
            fail(
                f"the workspace removed this machine (paused_forbidden). {_forbidden_advice(settings, current.workspace_slug)} "
                "To pair anyway (the old token is revoked), run `halton-meter cloud connect --force`."
            )
        # A revoked token (paused_unauthorised) has nothing left to lose: re-pairing is its cure.
        if current.paused_reason != state.PAUSED_UNAUTHORISED and not force:
            paired_to = (
                f"this machine is paired with workspace {current.workspace_slug or previous.workspace_id!r}"
            )
            if not sys.stdin.isatty():
                fail(
                    f"{paired_to}: to pair it again, run `halton-meter cloud connect --force` "
                    "(the current token keeps working until the new pairing is approved)"
                )
            if not click.confirm(
                f"{paired_to.capitalize()}. Pair it again? The current token keeps working until the new "
                "pairing is approved, then it is revoked",
                default=False,
            ):
                fail("nothing changed: this machine stays paired as before")
    target = base_url or settings.cloud_base_url
    client = CloudClient(target)
    ticket = None
    try:
        console.print(f"Requesting pairing code from {host_of(target)}…", highlight=False)
        ticket = pairing.request_code(client, machine_id=machine_id, hostname=link.hostname_snapshot())
        console.print(f"Pairing code: {ticket.code}", highlight=False, markup=False)
        console.print(f"Approve at: {ticket.approve_url}", highlight=False, markup=False)
        console.print("Waiting for approval… (Ctrl-C to cancel)", highlight=False)
        approval = pairing.wait_for_approval(
            client,
            ticket,
            poll_interval=poll_interval_seconds,
            timeout=timeout_seconds,
            on_retry=lambda message: err_console.print(f"[yellow]{escape(message)}[/]", highlight=False),
        )
        # Writing the files must not be cut half-way by a late Ctrl-C.
        previous_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            paired = link.complete_pairing(
                paths,
                base_url=target,
                approval=approval,
                machine_id=machine_id,
                hostname=link.hostname_snapshot(),
                base_url_by_meter=base_url is None and settings.cloud_base_url_by_meter,
                dashboard_origin=None if settings.cloud_dashboard_origin_chosen else ticket.dashboard_origin,
            )
        finally:
            signal.signal(signal.SIGINT, previous_handler)
    except KeyboardInterrupt:
        kept = " This machine stays paired as before." if previous is not None else ""
        err_console.print(
            f"Cancelled: nothing was written.{kept} Run `halton-meter cloud connect` again when you are ready.",
            highlight=False,
        )
        _withdraw(client, ticket)
        sys.exit(130)
    except pairing.PairingFailed as exc:
        if exc.kind in pairing.WITHDRAW_ON:
            err_console.print(escape(str(exc)), highlight=False)
            _withdraw(client, ticket)
            sys.exit(1)
        fail(str(exc))
    except (link.PairingMismatch, ConfigEditError, OSError) as exc:
        fail(str(exc))
    finally:
        client.close()
    if previous is not None:
        revoked, sentence = link.revoke_replaced(settings.cloud_base_url, previous.token)
        (console if revoked else err_console).print(sentence, highlight=False, markup=False)
    console.print(
        f"Approved: paired with workspace {paired.workspace_slug} ({paired.workspace_name}) as machine {machine_id}.",
        highlight=False,
        markup=False,
    )
    console.print(f"Token saved to {paths.cloud_credentials} (0600).", highlight=False)
    console.print(
        "The daemon starts syncing on its next supervisor tick (≤ 15s). Check with: halton-meter cloud status",
        highlight=False,
    )


@cloud.command(name="status")
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
        state.PAUSED_FORBIDDEN: _forbidden_advice(settings, result.workspace_slug),
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


@cloud.command()
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
                f"{_forbidden_advice(settings, current.workspace_slug)}",
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


@cloud.command()
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


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def pause(as_json: bool) -> None:
    """Stop sending rows to the cloud (capture continues locally)."""
    from halton_meter.cloud import state
    from halton_meter.store import open_store

    settings = settings_or_exit()
    credentials = _paired(settings)
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


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def resume(as_json: bool) -> None:
    """Resume sync after checking the token with the cloud (whoami)."""
    from halton_meter.cloud import state
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused
    from halton_meter.store import open_store

    settings = settings_or_exit()
    credentials = _paired(settings)
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
                        f"{_forbidden_advice(settings, slug)}"
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


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def whoami(as_json: bool) -> None:
    """Which workspace and machine the saved token belongs to (asks the cloud)."""
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused

    settings = settings_or_exit()
    credentials = _paired(settings)
    with CloudClient(settings.cloud_base_url) as client:
        try:
            identity = client.whoami(credentials.token)
        except CloudRefused as exc:
            if exc.status == 401:
                fail(
                    f"{client.host} rejected the token (HTTP 401): run `halton-meter cloud resume` to check it; "
                    "if it is revoked, run `halton-meter cloud connect`"
                )
            if exc.status == 403:
                fail(
                    f"this machine was removed from its workspace (HTTP 403). {_forbidden_advice(settings, None)}"
                )
            fail(f"{client.host} answered {exc}")
        except CloudError as exc:
            fail(str(exc))
    if as_json:
        print_json({**identity.to_json(), "base_url": settings.cloud_base_url})
        return
    for name, value in (
        ("Workspace", identity.workspace_slug),
        ("Machine id", identity.machine_id),
        ("Hostname", identity.hostname),
    ):
        console.print(f"{name + ':':<12}{value}", highlight=False, markup=False)


@cloud.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def disconnect(as_json: bool) -> None:
    """Revoke the token at the cloud, then wipe it locally and set cloud.enabled = false."""
    from halton_meter.cloud import link, state
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused, host_of
    from halton_meter.cloud.config_table import ConfigEditError
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    settings = settings_or_exit()
    host = host_of(settings.cloud_base_url)
    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        err_console.print(f"[yellow]warning:[/] {escape(str(exc))}", highlight=False)
        credentials = None
    slug = state.load_status(settings).workspace_slug
    revoked: str
    warning: str | None = None
    if credentials is None:
        revoked = "no_token"
        if not as_json:
            console.print("No token on this machine: nothing to revoke.")
    else:
        if not as_json:
            console.print(f"Revoking token at {host}…", highlight=False)
        with CloudClient(settings.cloud_base_url) as client:
            try:
                client.disconnect(credentials.token)
                revoked = "revoked"
            except CloudRefused as exc:
                if exc.status == 401:
                    revoked = "already_revoked"
                else:
                    revoked = "failed"
                    warning = f"{host} refused to revoke the token ({exc})"
            except CloudError as exc:
                revoked = "failed"
                warning = str(exc)
        if not as_json:
            if revoked == "revoked":
                console.print("Token revoked.")
            elif revoked == "already_revoked":
                console.print("Token was already revoked.")
            elif warning is not None:
                err_console.print(
                    f"[bold red]Could not revoke the token:[/] {escape(warning)}", highlight=False
                )
    try:
        link.wipe_local(settings.paths)
    except (ConfigEditError, OSError) as exc:
        fail(f"could not wipe the local credentials: {exc}")
    advice = (
        f"the token stays valid until you revoke this machine at {_devices_page(settings, slug)}"
        if revoked == "failed"
        else None
    )
    if as_json:
        print_json(
            {
                "revoked": revoked,
                "error": warning,
                "warning": advice,
                "enabled": False,
                "credentials_wiped": True,
            }
        )
    else:
        console.print("Local: cloud.enabled = false; credentials wiped.")
        if advice is not None:
            err_console.print(f"[bold yellow]Warning:[/] {escape(advice)}.", highlight=False)
        console.print("Capture continues locally; `halton-meter report` keeps working.", highlight=False)
    if revoked == "failed":
        sys.exit(1)
