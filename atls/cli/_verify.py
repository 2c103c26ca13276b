"""``atls verify``, ``atls inspect`` and ``atls policy``."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

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
    read_evidence,
    read_limited,
    simulated_banner,
)
from atls.collateral import Collateral
from atls.errors import AttestationError, ConfigurationError, HandshakeError
from atls.pipeline import Verdict, judge
from atls.policy import Policy
from atls.trust import TrustStore

__all__ = ["inspect_cmd", "policy_group", "verify_cmd"]

PLATFORMS = ["auto", "snp", "tdx", "sgx", "tpm"]


def _render(verdict: Verdict) -> None:
    out = Console()
    color = "green" if verdict.accepted else "red"
    out.print(
        f"[bold {color}]{'ACCEPTED' if verdict.accepted else 'REJECTED'}[/] "
        f"platform={verdict.platform} authentic={verdict.authentic}"
    )
    v = verdict.verified
    if v is not None:
        out.print(
            f"trust root: {v.trust_root}  tcb_status: {v.tcb_status}  "
            f"advisories: {', '.join(v.advisory_ids) or '-'}"
        )
        table = Table("claim", "value", show_header=True)
        for k, val in v.claims.items():
            table.add_row(k, val if isinstance(val, str) else json.dumps(val))
        out.print(table)
        unchecked = verdict.accepted.unchecked if verdict.accepted else v.unchecked
        for u in unchecked:
            out.print(f"[yellow]not checked:[/] {esc(u)}")
    for e in verdict.errors:
        out.print(f"[red]error[/] {e.code}: {esc(e.message)}")


def _verify_profile(
    profile: str,
    data: bytes,
    policy: Policy,
    trust: TrustStore,
    coll: Collateral,
    when: _dt.datetime,
    nonce: bytes,
    allow_simulated: bool,
    as_json: bool,
) -> NoReturn:
    """``atls verify --profile dstack|cocos CERT``: the profile's own client verifier on the
    certificate, as in a handshake (``--at`` is the handshake time)."""
    from atls.errors import AtlsError
    from atls.interop import profile_verifier

    verdict = Verdict(platform=None)
    try:
        verifier = profile_verifier(
            profile, policy=policy, trust=trust, collateral=coll, allow_simulated=allow_simulated
        )
        accepted = verifier.verify_certificate(data, nonce=nonce, at=when)
        if accepted is None:  # pragma: no cover - only plain-TLS baselines return None
            raise ConfigurationError("the profile attested nothing", code="usage.profile")
        verdict.platform = accepted.platform
        verdict.verified = accepted.verified
        verdict.accepted = accepted
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    except AtlsError as e:
        verdict.errors.append(e)
    if verdict.verified is not None and verdict.verified.simulated:
        simulated_banner()
    if as_json:
        out = verdict.to_json()
        out["profile"] = profile
        if verdict.accepted is not None:
            # a profile's Accepted may add attested claims (dstack: the replayed events)
            # and issuer-asserted values, which are kept apart from the claims
            extra = verdict.accepted.to_json()
            out["claims"] = extra["claims"]
            if "issuer_asserted" in extra:
                out["issuer_asserted"] = extra["issuer_asserted"]
        print_json(out)
    else:
        _render(verdict)
    sys.exit(EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED)


@click.command("verify")
@click.argument("evidence")
@click.option("--platform", type=click.Choice(PLATFORMS), default="auto", show_default=True)
@click.option(
    "--collateral",
    "collateral",
    multiple=True,
    metavar="PATH",
    help="Certificates, chains, CRLs, TCB info... (files or directories, by content).",
)
@click.option("--trust-dir", metavar="DIR", help="Directory of pinned vendor roots.")
@click.option("--at", metavar="TIME", help="Verification time: ISO 8601 or unix seconds.")
@click.option(
    "--policy",
    "policy_path",
    metavar="FILE",
    help="Policy (TOML); default: authentic, non-debug evidence, measurements not checked.",
)
@click.option("--nonce", metavar="HEX", help="Client nonce a fresh-mode certificate is bound to.")
@click.option("--allow-simulated", is_flag=True, help="Trust the simulated TEE's demo roots.")
@click.option(
    "--profile",
    type=click.Choice(["atls", "dstack", "cocos"]),
    default="atls",
    show_default=True,
    help="For a certificate: its format (atls native, dstack RA-TLS, Cocos; Cocos needs "
    "--nonce, the 64-byte client nonce).",
)
@click.option(
    "--event-log",
    metavar="FILE",
    help="TDX: a dstack JSON event log (or GetQuote response) or a CCEL log that must replay "
    "to the quote's RTMR0-3; its runtime events become claims ([tdx] events).",
)
@click.option(
    "--fetch",
    is_flag=True,
    help="If the evidence does not verify with the collateral at hand (given, stapled), "
    "fetch what it needs (Intel PCS/PCCS, AMD KDS; cached on disk) and verify again.",
)
@click.option(
    "--pcs-url", metavar="URL", envvar="ATLS_PCS_URL", help="With --fetch: Intel PCS/PCCS base URL."
)
@click.option("--kds-url", metavar="URL", envvar="ATLS_KDS_URL", help="With --fetch: AMD KDS URL.")
@click.option(
    "--ca-bundle",
    metavar="FILE",
    envvar="ATLS_FETCH_CA_BUNDLE",
    help="With --fetch: CA certificates for the connections to PCS/PCCS/KDS.",
)
@click.option("--cache-dir", metavar="DIR", help="With --fetch: cache directory.")
@click.option(
    "--allow-stale-for",
    metavar="DURATION",
    help="With --fetch: accept cached collateral expired at most this long ago when a "
    "refetch fails (e.g. 12h).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_cmd(
    evidence: str,
    platform: str,
    collateral: tuple[str, ...],
    trust_dir: str | None,
    at: str | None,
    policy_path: str | None,
    nonce: str | None,
    allow_simulated: bool,
    profile: str,
    event_log: str | None,
    fetch: bool,
    pcs_url: str | None,
    kds_url: str | None,
    ca_bundle: str | None,
    cache_dir: str | None,
    allow_stale_for: str | None,
    as_json: bool,
) -> None:
    """Verify EVIDENCE (raw report/quote, its hex or base64 text, or an attested certificate).

    Exit 0 accepted, 1 rejected (also: --fetch could not get collateral), 2 usage or
    configuration error."""
    from click.core import ParameterSource

    from atls.cli.collateral import fetch_for_verification, parse_duration
    from atls.errors import CollateralUnavailableError, UnsupportedEvidenceError

    try:
        ctx = click.get_current_context()
        given = [
            f"--{n.replace('_', '-')}"
            for n in ("pcs_url", "kds_url", "ca_bundle", "cache_dir", "allow_stale_for")
            if ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE
        ]
        if given and not fetch:
            raise ConfigurationError(f"{', '.join(given)} need(s) --fetch", code="usage.fetch")
        stale = parse_duration(allow_stale_for) if allow_stale_for else None
        data = read_evidence(evidence)
        coll = load_collateral_option(collateral, trust_dir, allow_simulated=allow_simulated)
        trust = load_trust(
            trust_dir, allow_simulated=allow_simulated, found_in=input_certificates(data, coll)
        )
        policy = load_policy_option(policy_path)
        when = parse_at(at)
        nonce_bytes = bytes.fromhex(nonce) if nonce else b""
        # the nonce sizes each profile binds: atls 32 (fresh) or none (static), Cocos
        # always 64, dstack none
        allowed = {"atls": (0, 32), "cocos": (64,), "dstack": (0,)}[profile]
        if len(nonce_bytes) not in allowed:
            sizes = " or ".join(f"{n} bytes" if n else "no --nonce" for n in allowed)
            raise ConfigurationError(
                f"--profile {profile} takes {sizes} (got {len(nonce_bytes)} bytes)",
                code="usage.nonce",
            )
        log = read_limited(event_log, "event log") if event_log else None
    except (ConfigurationError, ValueError) as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    if profile != "atls":
        if fetch or log is not None:
            err_console.print("[red]error:[/] --fetch and --event-log apply to --profile atls")
            sys.exit(EXIT_USAGE)
        _verify_profile(profile, data, policy, trust, coll, when, nonce_bytes, allow_simulated,
                        as_json)  # fmt: skip

    def run(trust: TrustStore, coll: Collateral) -> Verdict:
        return judge(
            data,
            trust=trust,
            collateral=coll,
            at=when,
            policy=policy,
            platform=platform,
            allow_simulated=allow_simulated,
            nonce=nonce_bytes,
            event_log=log,
        )

    verdict = run(trust, coll)
    fetched_from: list[str] | None = None
    if fetch and not verdict.authentic:
        # fetch on demand: only when what is at hand does not authenticate the evidence
        try:
            fetched = fetch_for_verification(
                data,
                pcs_url=pcs_url,
                kds_url=kds_url,
                ca_bundle=ca_bundle,
                cache_dir=cache_dir,
                allow_stale_for=stale,
                at=when,
            )
        except (CollateralUnavailableError, UnsupportedEvidenceError) as e:
            verdict.errors.append(e)
        except ConfigurationError as e:
            err_console.print(f"[red]error:[/] {esc(str(e))}")
            sys.exit(EXIT_USAGE)
        else:
            coll = coll.merged(fetched)
            trust = load_trust(
                trust_dir, allow_simulated=allow_simulated, found_in=input_certificates(data, coll)
            )
            verdict = run(trust, coll)
            fetched_from = list(fetched.sources)
    if verdict.verified is not None and verdict.verified.simulated:
        simulated_banner()
    if as_json:
        out = verdict.to_json()
        if fetch:
            out["collateral_fetched"] = fetched_from or []
        print_json(out)
    else:
        _render(verdict)
        for src in fetched_from or []:
            style = "bold yellow" if src.startswith(("stale-cache:", "stale:")) else "dim"
            err_console.print(f"[{style}]collateral:[/] {esc(src)}")
    sys.exit(EXIT_ACCEPTED if verdict.accepted else EXIT_REJECTED)


@click.command("inspect")
@click.argument("file")
def inspect_cmd(file: str) -> None:
    """Human-readable view of a certificate, report or quote (nothing is verified)."""
    from atls.inspect import describe

    try:
        data = read_evidence(file)
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    out = Console()
    for title, rows in describe(data):
        table = Table(title=title, show_header=False)
        for k, v in rows:
            table.add_row(k, v)
        out.print(table)


@click.group("policy")
def policy_group() -> None:
    """Write and check policies."""


@policy_group.command("init")
@click.option(
    "--from",
    "source",
    metavar="HOST:PORT|EVIDENCE",
    help="A running attested server, or an evidence file / certificate.",
)
@click.option(
    "--from-artifacts",
    "measured",
    multiple=True,
    metavar="FILE",
    help="Output of `atls measure tdx|snp --json` (repeatable: values are OR-ed).",
)
@click.option(
    "--allow-candidates",
    is_flag=True,
    help="With --from-artifacts: pin every candidate of an undetermined register "
    "(e.g. both MRTD page orders) instead of refusing.",
)
@click.option("-o", "--output", required=True, metavar="FILE")
@click.option("--trust-dir", metavar="DIR")
@click.option("--collateral", multiple=True, metavar="PATH")
@click.option("--at", metavar="TIME")
@click.option("--allow-simulated", is_flag=True)
@click.option("--name", default=None, help="Policy name (default: the source).")
@click.option(
    "--profile",
    type=click.Choice(["atls", "dstack", "cocos"]),
    default="atls",
    show_default=True,
    help="With --from HOST:PORT: the server's certificate format.",
)
def policy_init(
    source: str | None,
    measured: tuple[str, ...],
    allow_candidates: bool,
    output: str,
    trust_dir: str | None,
    collateral: tuple[str, ...],
    at: str | None,
    allow_simulated: bool,
    name: str | None,
    profile: str,
) -> None:
    """Write a policy pinning the measurements that a verified server or evidence file shows
    (--from), or that `atls measure` computed from build artifacts (--from-artifacts)."""
    from atls.policy import Policy, dump_policy, pin_claims

    if (source is None) == (not measured):
        raise click.UsageError("give exactly one of --from and --from-artifacts")
    if measured:
        from atls.cli.measure import policy_from_measured

        try:
            text = policy_from_measured(measured, name or "from-artifacts", allow_candidates)
        except ConfigurationError as e:
            err_console.print(f"[red]error:[/] {esc(str(e))}")
            sys.exit(EXIT_USAGE)
        Path(output).write_text(text, encoding="utf-8")
        err_console.print(f"wrote {output} (from {len(measured)} measured file(s))")
        return
    assert source is not None
    try:
        coll = load_collateral_option(collateral, trust_dir, allow_simulated=allow_simulated)
        when = parse_at(at)
        if Path(source).exists():
            data = read_evidence(source)
            trust = load_trust(
                trust_dir,
                allow_simulated=allow_simulated,
                found_in=input_certificates(data, coll),
            )
            verdict = judge(
                data,
                trust=trust,
                collateral=coll,
                at=when,
                policy=Policy.default(),
                allow_simulated=allow_simulated,
            )
            if verdict.verified is None or verdict.accepted is None:
                # only authentic evidence that the default policy accepts (non-debug, an
                # acceptable TCB status) is pinned: never write a fail-open policy
                for err in verdict.errors:
                    err_console.print(f"[red]error[/] {err.code}: {esc(err.message)}")
                sys.exit(EXIT_REJECTED)
            verified = verdict.verified
        else:
            from atls.cli._net import fetch_attestation

            trust = load_trust(
                trust_dir, allow_simulated=allow_simulated, found_in=coll.certificates
            )
            try:
                verified = fetch_attestation(
                    source,
                    trust=trust,
                    collateral=coll,
                    allow_simulated=allow_simulated,
                    profile=profile,
                )
            except (AttestationError, HandshakeError) as e:
                err_console.print(f"[red]error[/] {e.code}: {esc(e.message)}")
                sys.exit(EXIT_REJECTED)
        text = dump_policy(name or source, pin_claims(verified))
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    if verified.simulated:
        simulated_banner()
    Path(output).write_text(text, encoding="utf-8")
    err_console.print(f"wrote {output} ({verified.platform})")


@policy_group.command("check")
@click.argument("file")
def policy_check(file: str) -> None:
    """Load FILE strictly and report whether it is a valid policy."""
    from atls.policy import load_policy

    try:
        p = load_policy(file)
    except ConfigurationError as e:
        err_console.print(f"[red]invalid:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    click.echo(f"{file}: valid policy {p.name!r} for {', '.join(sorted(p.platforms))}")
