"""What every ``cloud …`` command needs of the pairing: the saved credentials (or what to run), the
workspace's devices page, and the advice for a machine its workspace no longer lets in."""

from __future__ import annotations

from halton_meter.cli.terminal import fail
from halton_meter.settings import Settings


def paired_credentials(settings: Settings):
    """The saved credentials, or exit with what to run."""
    from halton_meter.cloud.credentials import CredentialsProblem, load_credentials

    try:
        credentials = load_credentials(settings.paths)
    except CredentialsProblem as exc:
        fail(str(exc))
    if credentials is None:
        fail("this machine is not connected to Halton Meter Cloud: run `halton-meter cloud connect`")
    return credentials


def devices_page(settings: Settings, slug: str | None) -> str:
    return f"{settings.cloud_dashboard_origin}/{slug or '[workspace]'}/settings/devices"


def forbidden_advice(settings: Settings, slug: str | None) -> str:
    return (
        "Do not run `halton-meter cloud connect`: the token is still valid and connect would revoke it. "
        f"Ask a workspace owner to re-invite this machine at {devices_page(settings, slug)}, "
        "then run `halton-meter cloud resume`."
    )
