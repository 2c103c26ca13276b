"""``atls secretvm verify``: SecretVM's flow, with the quote fetched over the same connection."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from rich.markup import escape as esc

from atls.cli._common import (
    EXIT_ACCEPTED,
    EXIT_REJECTED,
    EXIT_USAGE,
    err_console,
    input_certificates,
    load_collateral_option,
    load_policy_option,
    load_trust,
    parse_at,
    print_json,
    simulated_banner,
)
from atls.errors import AtlsError, ConfigurationError, PolicyError, Violation

__all__ = ["secretvm_group"]


@click.group("secretvm")
def secretvm_group() -> None:
    """Verify SecretVM (SCRT Labs) virtual machines."""


@secretvm_group.command("verify")
@click.argument("url", metavar="https://HOST[:PORT]")
@click.option("--registry", metavar="CSV", help="SecretVM registry (tdx.csv) of MRTD/RTMR0-2.")
@click.option("--compose", metavar="FILE", help="docker-compose file measured into RTMR3.")
@click.option("--policy", "policy_path", metavar="FILE")
@click.option("--collateral", multiple=True, metavar="PATH")
@click.option("--trust-dir", metavar="DIR")
@click.option("--ca-file", metavar="PEM", help="CA bundle for the VM's TLS certificate.")
@click.option("--at", metavar="TIME")
@click.option("--legacy-certificate-binding", is_flag=True,
              help="Accept report_data = SHA-256(certificate DER) (older SecretVM images).")
@click.option("--allow-simulated", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def secretvm_verify(url: str, registry: str | None, compose: str | None,
                    policy_path: str | None, collateral: tuple[str, ...], trust_dir: str | None,
                    ca_file: str | None, at: str | None, legacy_certificate_binding: bool,
                    allow_simulated: bool, as_json: bool) -> None:
    """Fetch /cpu.html over one TLS connection to the VM's attestation port (29343), verify
    the quote, bind it to that connection's key, and compare it with the registry."""
    from atls.interop.secretvm import (
        ATTESTATION_PORT,
        check_secretvm_binding,
        extract_cpu_evidence,
        load_registry,
        match_registry,
    )
    from atls.pipeline import _spki_of, judge
    from atls.tls.https import get_over_one_connection

    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https" or not parts.hostname:
        raise click.BadParameter("expected https://HOST[:PORT]", param_hint="URL")
    try:
        coll = load_collateral_option(collateral, trust_dir)
        policy = load_policy_option(policy_path)
        when = parse_at(at)
        rows = load_registry(Path(registry).read_text()) if registry else None
    except (ConfigurationError, OSError) as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    try:
        resp = get_over_one_connection(parts.hostname, parts.port or ATTESTATION_PORT,
                                       "/cpu.html", cafile=ca_file)
        if resp.status != 200:
            raise ConfigurationError(f"/cpu.html answered HTTP {resp.status}",
                                     code="secretvm.http")
        evidence = extract_cpu_evidence(resp.body)
        trust = load_trust(trust_dir, allow_simulated=allow_simulated,
                           found_in=input_certificates(evidence, coll))
    except AtlsError as e:
        err_console.print(f"[red]error[/] {e.code}: {esc(e.message)}")
        sys.exit(EXIT_REJECTED)
    verdict = judge(evidence, trust=trust, collateral=coll, at=when, policy=policy,
                    allow_simulated=allow_simulated)
    extra: dict[str, object] = {}
    if verdict.verified is not None:
        v = verdict.verified
        try:
            extra["binding"] = check_secretvm_binding(
                v.report_data, spki_der=_spki_of(resp.certificate_der),
                cert_der=resp.certificate_der,
                allow_legacy_certificate_binding=legacy_certificate_binding)
            verdict.notes.clear()  # the binding *was* checked, on this connection
            violations: list[Violation] = []
            if rows is not None:
                row, violations = match_registry(v.claims, rows)
                extra["registry"] = row.to_json() if row else None
            if compose is not None:
                violations += _check_rtmr3(v.claims, Path(compose).read_bytes(),
                                           row.rootfs_data if rows and row else None)
            if violations:
                raise PolicyError(violations)
        except AtlsError as e:
            verdict.errors.append(e)
            verdict.accepted = None
        if v.simulated:
            simulated_banner()
    out = verdict.to_json()
    out.update(extra)
    if as_json:
        print_json(out)
    else:
        err_console.print(f"{out['verdict']}: platform={out['platform']} "
                          f"binding={extra.get('binding')} registry={extra.get('registry')}")
        for err in verdict.errors:
            err_console.print(f"[red]error[/] {err.code}: {esc(err.message)}")
    sys.exit(EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED)


def _check_rtmr3(claims: Mapping[str, Any], compose: bytes, rootfs: str | None
                 ) -> list[Violation]:
    from atls.measure.secretvm import secretvm_rtmr3

    if rootfs is None:
        return [Violation("secretvm.rtmr3", "a registry row giving rootfs_data",
                          "no registry match")]
    expected = secretvm_rtmr3(compose, bytes.fromhex(rootfs)).hex()
    have = str(claims.get("rtmr3", ""))
    return [] if have == expected else [Violation("rtmr3", expected, have)]
