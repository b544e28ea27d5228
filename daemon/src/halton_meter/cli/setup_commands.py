"""``ca``, ``doctor``, ``fingerprint``: trusting the meter's CA, checking calls reach it, and tagging an
API key with a project."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from halton_meter.cli.terminal import console, fail, print_json, settings_or_exit
from halton_meter.settings import key_fingerprint


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ca(as_json: bool) -> None:
    """Where the meter's CA is, and how to trust it (system and per tool)."""
    from halton_meter.ca import CaProblem, inspect_ca, write_bundle
    from halton_meter.pidfile import read_state, running_pid

    settings = settings_or_exit()
    paths = settings.paths
    # The port the running daemon listens on (it may have been started with --port), else the configured one.
    running = (read_state(paths) if running_pid(paths.pidfile) is not None else None) or {}
    proxy = f"http://127.0.0.1:{running.get('port') or settings.port}"
    try:
        info = inspect_ca(paths)
        if not paths.ca_bundle.exists():
            write_bundle(paths)
    except CaProblem as exc:
        fail(str(exc))
    cert, bundle = info.cert_path, info.bundle_path
    if as_json:
        print_json(
            {
                **info.to_json(),
                "trust": {
                    "macos": f"sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}",
                    "linux": f"sudo cp {cert} /usr/local/share/ca-certificates/halton-meter.crt && sudo update-ca-certificates",
                    "env": {
                        "NODE_EXTRA_CA_CERTS": str(cert),
                        "REQUESTS_CA_BUNDLE": str(bundle),
                        "SSL_CERT_FILE": str(bundle),
                        "HTTPS_PROXY": proxy,
                    },
                },
            }
        )
        return
    console.print(f"[bold]CA certificate:[/] {cert}")
    console.print(f"  {info.subject} · SHA-256 {info.sha256}")
    console.print(f"  valid until {info.not_after:%Y-%m-%d}")
    console.print(f"[bold]CA bundle[/] (public roots + the meter's CA): {bundle}\n")
    console.print("[bold]Trust it system-wide[/]")
    console.print("  macOS:")
    console.print(
        f"    sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("  Linux (Debian/Ubuntu):")
    console.print(
        f"    sudo cp {cert} /usr/local/share/ca-certificates/halton-meter.crt",
        highlight=False,
        soft_wrap=True,
    )
    console.print("    sudo update-ca-certificates")
    console.print(
        "\n[bold]Or per tool[/] (these replace the trust store, so use the bundle, except Node which adds):"
    )
    console.print(f"  export NODE_EXTRA_CA_CERTS={cert}", highlight=False, soft_wrap=True)
    console.print(f"  export REQUESTS_CA_BUNDLE={bundle}", highlight=False, soft_wrap=True)
    console.print(f"  export SSL_CERT_FILE={bundle}", highlight=False, soft_wrap=True)
    console.print(f"\nThen send calls through the meter: export HTTPS_PROXY={proxy}", highlight=False)
    console.print(
        f"(or skip the CA entirely with base URLs, e.g. ANTHROPIC_BASE_URL={proxy}/anthropic)",
        highlight=False,
    )


@click.command()
@click.option("--port", type=int, default=None, help="Check this port instead of the configured one.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(port: int | None, as_json: bool) -> None:
    """Check that calls can reach the meter: port, CA, a test call through the proxy, environment."""
    from halton_meter.doctor import FAIL, WARN, run_checks

    checks = run_checks(port=port)
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        print_json({"ok": not failed, "checks": [c.to_json() for c in checks]})
    else:
        marks = {"ok": "[green]✓[/]", WARN: "[yellow]![/]", FAIL: "[red]✗[/]"}
        for check in checks:
            console.print(
                f"{marks[check.status]} [bold]{check.name}[/]: {escape(check.detail)}", highlight=False
            )
            if check.fix and check.status != "ok":
                console.print(f"    → {escape(check.fix)}", highlight=False)
        console.print("\n[green]All good.[/]" if not failed else "\n[red]Some checks failed.[/]")
    if failed:
        sys.exit(1)


@click.command()
def fingerprint() -> None:
    """Print the fingerprint of an API key read from stdin, for [attribution.api_keys] in config.toml."""
    key = click.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.read()
    key = key.strip()
    if not key:
        fail("no key given on stdin", 2)
    short = key_fingerprint(key)[: len("sha256:") + 16]
    console.print(short, highlight=False)
    console.print(
        f'[dim]config.toml, under {escape("[attribution.api_keys]")}:[/]  "{short}" = "your-project"',
        highlight=False,
    )
