"""The ``atls`` command."""

from __future__ import annotations

import logging

import click

from atls import __version__
from atls.cli._net import connect_cmd, demo_cmd, serve_cmd
from atls.cli._policy_import import policy_import
from atls.cli._secretvm import secretvm_group
from atls.cli._verify import inspect_cmd, policy_group, verify_cmd
from atls.cli.collateral import collateral_group
from atls.cli.eventlog import eventlog_group
from atls.cli.measure import measure_group
from atls.cli.trust import trust_group

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atls")
@click.option("-v", "--verbose", count=True, help="More logging (repeatable).")
def main(verbose: int) -> None:
    """atls: attested TLS. A server in a TEE (Intel TDX, AMD SEV-SNP, TPM host) proves what it
    runs inside the TLS handshake; the client refuses it, before any application data, unless
    the evidence verifies and matches its policy."""
    logging.basicConfig(level=logging.WARNING - 10 * verbose, format="%(name)s: %(message)s")


policy_group.add_command(policy_import)

for _cmd in (
    demo_cmd,
    serve_cmd,
    connect_cmd,
    verify_cmd,
    inspect_cmd,
    policy_group,
    eventlog_group,
    measure_group,
    collateral_group,
    trust_group,
    secretvm_group,
):
    main.add_command(_cmd)
