"""``atls secretvm verify``: SecretVM's flow, with the quote fetched over the same connection;
and :func:`attest_secretvm`, which ``atls connect --profile secretvm`` shares."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
from atls.pipeline import Verdict

__all__ = ["SecretVmAttestation", "attest_secretvm", "secretvm_group"]


@dataclass
class SecretVmAttestation:
    """The verdict on a SecretVM's quote, fetched and bound over one connection."""

    verdict: Verdict
    certificate_der: bytes
    spki_der: bytes
    extra: dict[str, object] = field(default_factory=dict)


def attest_secretvm(
    host: str,
    port: int,
    *,
    trust_dir: str | None,
    collateral: Sequence[str],
    policy_path: str | None,
    at: _dt.datetime,
    allow_simulated: bool,
    registry: str | None = None,
    compose: str | None = None,
    ca_file: str | None = None,
    legacy_certificate_binding: bool = False,
    path: str = "/cpu.html",
) -> SecretVmAttestation:
    """GET ``path`` over one TLS connection to ``host:port``, verify the quote in it, bind it
    to that connection's key, and compare it with the registry and compose file if given.
    Raises :class:`ConfigurationError` for bad local inputs and :class:`AtlsError` when the
    VM cannot be reached or serves no evidence; verification failures are in the verdict."""
    from atls.interop.secretvm import (
        check_secretvm_binding,
        extract_cpu_evidence,
        load_registry,
        select_registry_row,
    )
    from atls.pipeline import _spki_of, judge
    from atls.tls.https import get_over_one_connection

    coll = load_collateral_option(collateral, trust_dir, allow_simulated=allow_simulated)
    policy = load_policy_option(policy_path)
    try:
        rows = load_registry(Path(registry).read_text()) if registry else None
        compose_bytes = Path(compose).read_bytes() if compose else None
    except OSError as e:
        raise ConfigurationError(f"{e.filename}: {e.strerror}", code="usage.file") from e
    resp = get_over_one_connection(host, port, path, cafile=ca_file)
    if resp.status != 200:
        raise ConfigurationError(f"{path} answered HTTP {resp.status}", code="secretvm.http")
    evidence = extract_cpu_evidence(resp.body)
    trust = load_trust(
        trust_dir, allow_simulated=allow_simulated, found_in=input_certificates(evidence, coll)
    )
    verdict = judge(
        evidence, trust=trust, collateral=coll, at=at, policy=policy,
        allow_simulated=allow_simulated,
    )  # fmt: skip
    spki = _spki_of(resp.certificate_der)
    out = SecretVmAttestation(verdict, resp.certificate_der, spki)
    v = verdict.verified
    if v is None:
        return out
    try:
        out.extra["binding"] = check_secretvm_binding(
            v.report_data,
            spki_der=spki,
            cert_der=resp.certificate_der,
            allow_legacy_certificate_binding=legacy_certificate_binding,
        )
        # the binding *was* checked, against this connection's key
        verdict.notes[:] = [n for n in verdict.notes if not n.startswith("binding:")]
        violations: list[Violation] = []
        out.extra["registry"] = None
        checked: list[str] = []
        if rows is not None:
            matched, violations = select_registry_row(v.claims, rows, compose_bytes)
            out.extra["registry"] = [r.to_json() for r in matched]
            checked.append("mr_td, rtmr0-2 (registry)")
            if compose_bytes is None:
                verdict.notes.append("rtmr3: no compose file given, the workload is not checked")
            else:
                checked.append("rtmr3 (compose file)")
        else:
            verdict.notes.append("secretvm: no registry given, MRTD and RTMR0-2 not compared")
            if compose_bytes is not None:
                violations.append(
                    Violation("secretvm.registry", "a registry (--registry) for the rootfs", "none")
                )
        if violations:
            raise PolicyError(violations)
        accepted = verdict.accepted
        if accepted is not None:
            unchecked = list(accepted.unchecked)
            if checked:
                # the registry compared the measurements even if no --policy did
                unchecked = [u for u in unchecked if not u.startswith("measurements:")]
                out.extra["measurements_checked"] = checked
            verdict.accepted = dataclasses.replace(
                accepted, binding=f"secretvm-{out.extra['binding']}", unchecked=tuple(unchecked)
            )
    except AtlsError as e:
        verdict.errors.append(e)
        verdict.accepted = None
    return out


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
@click.option(
    "--legacy-certificate-binding",
    is_flag=True,
    help="Accept report_data = SHA-256(certificate DER) (older SecretVM images).",
)
@click.option("--allow-simulated", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def secretvm_verify(
    url: str,
    registry: str | None,
    compose: str | None,
    policy_path: str | None,
    collateral: tuple[str, ...],
    trust_dir: str | None,
    ca_file: str | None,
    at: str | None,
    legacy_certificate_binding: bool,
    allow_simulated: bool,
    as_json: bool,
) -> None:
    """Fetch /cpu.html over one TLS connection to the VM's attestation port (29343), verify
    the quote, bind it to that connection's key, and compare it with the registry.

    Exit 0 accepted, 1 rejected or unreachable, 2 usage error."""
    from atls.interop.secretvm import ATTESTATION_PORT

    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https" or not parts.hostname:
        raise click.BadParameter("expected https://HOST[:PORT]", param_hint="URL")
    try:
        when = parse_at(at)
        res = attest_secretvm(
            parts.hostname,
            parts.port or ATTESTATION_PORT,
            trust_dir=trust_dir,
            collateral=collateral,
            policy_path=policy_path,
            at=when,
            allow_simulated=allow_simulated,
            registry=registry,
            compose=compose,
            ca_file=ca_file,
            legacy_certificate_binding=legacy_certificate_binding,
        )
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE if e.code.startswith("usage") else EXIT_REJECTED)
    except AtlsError as e:
        err_console.print(f"[red]error[/] {e.code}: {esc(e.message)}")
        sys.exit(EXIT_REJECTED)
    verdict = res.verdict
    if verdict.verified is not None and verdict.verified.simulated:
        simulated_banner()
    out = verdict.to_json()
    out.update(res.extra)
    if as_json:
        print_json(out)
    else:
        err_console.print(
            f"{out['verdict']}: platform={out['platform']} binding={res.extra.get('binding')} "
            f"registry={res.extra.get('registry')}"
        )
        for err in verdict.errors:
            err_console.print(f"[red]error[/] {err.code}: {esc(err.message)}")
    sys.exit(EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED)
