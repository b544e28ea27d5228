"""``cloud connect``, ``cloud whoami`` and ``cloud disconnect``: pairing this machine with a workspace."""

from __future__ import annotations

import signal
import sys

import click
from rich.markup import escape

from halton_meter.cli.cloud_access import devices_page, forbidden_advice, paired_credentials
from halton_meter.cli.terminal import console, err_console, fail, print_json, settings_or_exit


def _base_url_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from halton_meter.settings import cloud_base_url

    if value is None:
        return None
    try:
        return cloud_base_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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


@click.command()
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
                f"the workspace removed this machine (paused_forbidden). {forbidden_advice(settings, current.workspace_slug)} "
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def whoami(as_json: bool) -> None:
    """Which workspace and machine the saved token belongs to (asks the cloud)."""
    from halton_meter.cloud.client import CloudClient, CloudError, CloudRefused

    settings = settings_or_exit()
    credentials = paired_credentials(settings)
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
                    f"this machine was removed from its workspace (HTTP 403). {forbidden_advice(settings, None)}"
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


@click.command()
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
        f"the token stays valid until you revoke this machine at {devices_page(settings, slug)}"
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
