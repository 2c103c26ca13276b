"""``atls trust fetch`` and ``atls trust list``."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from atls.cli._common import EXIT_USAGE, err_console, print_json
from atls.collateral.fetch import PRODUCTS
from atls.errors import ConfigurationError
from atls.trust import default_trust_dir
from atls.trust.fetch import fetch_trust_anchors, list_trust

__all__ = ["trust_group"]

EXIT_FAILED = 1


@click.group("trust")
def trust_group() -> None:
    """Vendor roots: download them (checked against the pinned fingerprints) and list them."""


@trust_group.command("fetch")
@click.option("--trust-dir", metavar="DIR", help="Trust directory (default: per-user).")
@click.option(
    "--product",
    "products",
    multiple=True,
    type=click.Choice(list(PRODUCTS), case_sensitive=False),
    help="AMD product (repeatable; default: all).",
)
@click.option("--no-intel", is_flag=True, help="Skip the Intel SGX Root CA.")
@click.option("--no-amd", is_flag=True, help="Skip the AMD roots.")
@click.option("--no-vlek", is_flag=True, help="Skip the AMD VLEK chains (ASVK).")
@click.option("--kds-url", metavar="URL", help="AMD KDS base URL.")
@click.option("--intel-root-url", metavar="URL", help="Where to download the Intel SGX Root CA.")
@click.option("--ca-bundle", metavar="FILE", help="CA certificates for the TLS connections.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def trust_fetch_cmd(
    trust_dir: str | None,
    products: tuple[str, ...],
    no_intel: bool,
    no_amd: bool,
    no_vlek: bool,
    kds_url: str | None,
    intel_root_url: str | None,
    ca_bundle: str | None,
    as_json: bool,
) -> None:
    """Download the Intel SGX Root CA and the AMD ARK/ASK (and ASVK) certificates into the
    trust directory; a root is written only if it matches its pinned fingerprint.
    Exit 0 all fetched, 1 something failed, 2 usage error."""
    target = trust_dir or str(default_trust_dir())
    try:
        results = fetch_trust_anchors(
            target,
            intel=not no_intel,
            amd_products=() if no_amd else (products or PRODUCTS),
            include_vlek=not no_vlek,
            kds_url=kds_url,
            intel_root_url=intel_root_url,
            verify=ca_bundle,
        )
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    if as_json:
        print_json(
            {
                "trust_dir": target,
                "results": [
                    {
                        "name": r.name,
                        "url": r.url,
                        "path": str(r.path) if r.path else None,
                        "anchor": r.anchor is not None,
                        "sha256": r.anchor.sha256 if r.anchor else None,
                        "error": r.error.to_json() if r.error else None,
                    }
                    for r in results
                ],
            }
        )
    else:
        out = Console()
        for r in results:
            if r.ok:
                kind = "root (pinned)" if r.anchor is not None else "intermediate"
                out.print(f"[green]ok[/] {r.name:<18} {kind:<14} {esc(str(r.path))}")
            else:
                assert r.error is not None
                out.print(f"[red]FAILED[/] {r.name:<14} {r.error.code}: {esc(r.error.message)}")
        out.print(f"trust directory: {esc(target)}")
    sys.exit(0 if all(r.ok for r in results) else EXIT_FAILED)


@trust_group.command("list")
@click.option("--trust-dir", metavar="DIR", help="Trust directory (default: per-user).")
@click.option("--allow-simulated", is_flag=True, help="Also accept the simulated roots.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def trust_list_cmd(trust_dir: str | None, allow_simulated: bool, as_json: bool) -> None:
    """What the trust directory trusts (roots, checked against the pins) and from where."""
    target = trust_dir or str(default_trust_dir())
    try:
        items = list_trust(target, allow_simulated=allow_simulated)
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    if as_json:
        print_json(
            {
                "trust_dir": target,
                "items": [
                    {
                        "name": i.name,
                        "vendor": i.vendor,
                        "role": i.role,
                        "subject": i.subject,
                        "sha256": i.sha256,
                        "not_after": i.not_after.isoformat(),
                        "file": str(i.file),
                        "origin": i.origin,
                        "fetched": i.fetched,
                        "simulated": i.simulated,
                    }
                    for i in items
                ],
            }
        )
        return
    table = Table("name", "role", "vendor", "sha256", "valid until", "from")
    for i in items:
        role = "[bold red]SIMULATED[/]" if i.simulated else i.role
        origin = i.origin or str(i.file)
        table.add_row(
            esc(i.name),
            role,
            esc(i.vendor),
            i.sha256[:16] + "...",
            i.not_after.strftime("%Y-%m-%d"),
            esc(origin),
        )
    Console().print(table)
    if not items:
        err_console.print(f"[yellow]no certificates in {esc(target)}[/]")
