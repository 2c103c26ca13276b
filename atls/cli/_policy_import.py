"""``atls policy import``: turn another system's expected-values file into an atls policy.

Whatever the source file says that an atls policy cannot express is listed on stderr as not
carried over; nothing is dropped silently.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape as esc

from atls.cli._common import EXIT_USAGE, err_console, read_limited
from atls.errors import ConfigurationError

__all__ = ["policy_import"]


def rattestation_policy(text: bytes) -> tuple[dict[str, Any], list[str]]:
    """The ``[tpm]`` section for a GyroidOS ``rattestation.conf`` and what is not carried."""
    from atls.evidence.tpm import parse_rattestation_conf

    cfg = parse_rattestation_conf(text)
    if not cfg.pcr_values:
        raise ConfigurationError(
            "rattestation.conf lists no pcr_values: the policy would pin nothing",
            code="tpm.rattestation",
        )
    section: dict[str, Any] = {"pcrs": {k: dict(v) for k, v in cfg.expected_pcrs_hex().items()}}
    dropped = [
        f"kmod_sign_cert {cfg.kmod_sign_cert!r}: IMA module signatures are not verified; pin "
        "IMA file hashes with ima_allowed / ima_denied instead",
    ]
    if cfg.tpm_cert:
        dropped.append(
            f"tpm_cert {cfg.tpm_cert!r}: not an AK trust anchor here; pin the AK with ak_name "
            "or trust its CA"
        )
    if cfg.verify_containers:
        dropped.append(
            f"verify_containers (PCR {cfg.container_pcr}): container measurements "
            "are checked only through the PCR values above"
        )
    return section, dropped


@click.command("import")
@click.option(
    "--rattestation",
    "rattestation",
    metavar="FILE",
    help="GyroidOS rattestation.conf (expected TPM PCR values).",
)
@click.option("--cocos", "cocos", metavar="FILE", help="Cocos attestation policy JSON (SEV-SNP).")
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="FIELD",
    help="With --cocos: a field (dotted, e.g. pcr_values, policy.minimum_build) whose "
    "check you knowingly give up; without it such a field is an error. Repeatable.",
)
@click.option("-o", "--output", required=True, metavar="FILE")
@click.option("--name", default=None, help="Policy name (default: the source file name).")
def policy_import(
    rattestation: str | None,
    cocos: str | None,
    ignore: tuple[str, ...],
    output: str,
    name: str | None,
) -> None:
    """Write an atls policy from a GyroidOS rattestation.conf or a Cocos policy JSON.

    Whatever the source requires that an atls policy cannot check is an error (Cocos) or is
    listed as not carried over (rattestation)."""
    from atls.policy import dump_policy

    if (rattestation is None) == (cocos is None):
        raise click.UsageError("give exactly one of --rattestation and --cocos")
    source = rattestation or cocos
    assert source is not None
    if ignore and cocos is None:
        raise click.UsageError("--ignore applies to --cocos only")
    try:
        data = read_limited(source, "policy source", 1 << 20)
        if rattestation is not None:
            section, dropped = rattestation_policy(data)
            sections = {"tpm": section}
        else:
            from atls.interop.cocos import cocos_policy_from_json

            doc = cocos_policy_from_json(data.decode("utf-8", "replace"), ignore=ignore)
            sections = {k: v for k, v in doc.items() if k not in ("version", "name")}
            dropped = [f"{f}: ignored as asked (--ignore)" for f in ignore]
        text = dump_policy(name or Path(source).name, sections)
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    for d in dropped:
        err_console.print(f"[yellow]not carried over:[/] {esc(d)}")
    Path(output).write_text(text, encoding="utf-8")
    err_console.print(f"wrote {output}")
