"""``atls demo``, ``atls serve`` and ``atls connect``."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import sys
from typing import Any

import click
import trio
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from atls.cli._common import (
    EXIT_REJECTED,
    EXIT_USAGE,
    err_console,
    load_collateral_option,
    load_policy_option,
    load_trust,
    print_json,
    simulated_banner,
)
from atls.collateral import Collateral
from atls.errors import AtlsError, AttestationError, ConfigurationError, HandshakeError
from atls.evidence import Verified
from atls.pipeline import AttestationVerifier
from atls.policy import Accepted, Policy, parse_policy
from atls.tls._credentials import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested
from atls.trust import TrustStore

__all__ = ["connect_cmd", "demo_cmd", "fetch_attestation", "serve_cmd"]

#: The measurement the demo's simulated guest reports (and the demo policy pins).
DEMO_MEASUREMENT = hashlib.sha384(b"atls demo guest").hexdigest()
DEMO_MR_TD = hashlib.sha384(b"atls demo TD").hexdigest()


def _read_stdin(n: int) -> bytes:
    buf = sys.stdin.buffer
    read1 = getattr(buf, "read1", None)
    return bytes(read1(n) if read1 is not None else buf.read(n))


def _hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def _claims_table(accepted: Accepted, title: str) -> Table:
    table = Table("claim", "value", title=title)
    for k, v in accepted.claims.items():
        if isinstance(v, (dict, list)):
            import json

            v = json.dumps(v)
        table.add_row(k, str(v))
    return table


async def _echo(stream: AttestedStream) -> None:
    while True:
        data = await stream.receive_some()
        if not data:
            return
        await stream.send_all(data)


def _forwarder(target: tuple[str, int]) -> Any:
    async def forward(stream: AttestedStream) -> None:
        upstream = await trio.open_tcp_stream(*target)
        async with upstream:

            async def up() -> None:
                while data := await stream.receive_some():
                    await upstream.send_all(data)
                await upstream.send_eof()

            async def down() -> None:
                while data := await upstream.receive_some():
                    await stream.send_all(data)
                await stream.aclose()

            async with trio.open_nursery() as n:
                n.start_soon(up)
                n.start_soon(down)

    return forward


def _attester(kind: str, platform: str, tcti: str | None) -> Any:
    if kind == "simulated":
        from atls.testing.demo import demo_attester

        return demo_attester(platform)
    if kind == "configfs-tsm":
        from atls.attest.configfs_tsm import ConfigfsTsmAttester

        return ConfigfsTsmAttester()
    if kind == "tpm":
        from atls.attest.tpm import TpmAttester

        if not tcti:
            raise ConfigurationError("--attester tpm needs --tcti (e.g. swtpm:host=...,port=...)")
        return TpmAttester(tcti)
    raise ConfigurationError(f"unknown attester {kind!r}")


@click.command("serve")
@click.option(
    "--attester",
    type=click.Choice(["simulated", "configfs-tsm", "tpm"]),
    default="simulated",
    show_default=True,
)
@click.option(
    "--platform",
    type=click.Choice(["snp", "tdx"]),
    default="snp",
    show_default=True,
    help="Platform of the simulated TEE.",
)
@click.option(
    "--mode",
    type=click.Choice(["static", "fresh"]),
    default="fresh",
    show_default=True,
    help="fresh: new evidence per client nonce (clients without "
    "a nonce get the static certificate).",
)
@click.option("--listen", required=True, metavar="HOST:PORT")
@click.option("--echo", is_flag=True, help="Echo what each client sends.")
@click.option("--forward", metavar="HOST:PORT", help="Forward each client to this TCP service.")
@click.option("--tcti", metavar="TCTI", help="TPM TCTI string (with --attester tpm).")
@click.option(
    "--profile",
    type=click.Choice(["atls", "cocos"]),
    default="atls",
    show_default=True,
    help="Certificate format: atls (native), cocos (Cocos' TDX extension and SHA3-512 "
    "nonce binding, for Cocos clients). dstack certificates are issued from Python "
    "(atls.interop.profile_issuance), since they need the TD's runtime events.",
)
@click.option(
    "--staple-fetch",
    is_flag=True,
    help="Staple collateral fetched for this server's own evidence (Intel PCS/PCCS, AMD KDS; "
    "cached, refreshed in the background) so clients need none: for TDX guests, whose "
    "attester holds no TCB info, QE identity or CRLs.",
)
@click.option("--pcs-url", metavar="URL", envvar="ATLS_PCS_URL", help="With --staple-fetch.")
@click.option("--kds-url", metavar="URL", envvar="ATLS_KDS_URL", help="With --staple-fetch.")
@click.option(
    "--ca-bundle", metavar="FILE", envvar="ATLS_FETCH_CA_BUNDLE", help="With --staple-fetch."
)
@click.option("--cache-dir", metavar="DIR", help="With --staple-fetch: cache directory.")
@click.option(
    "--max-concurrent",
    default=4,
    show_default=True,
    help="Bound on concurrent evidence generations (fresh mode).",
)
def serve_cmd(
    attester: str,
    platform: str,
    mode: str,
    listen: str,
    echo: bool,
    forward: str | None,
    tcti: str | None,
    profile: str,
    staple_fetch: bool,
    pcs_url: str | None,
    kds_url: str | None,
    ca_bundle: str | None,
    cache_dir: str | None,
    max_concurrent: int,
) -> None:
    """Wrap a TCP service (or an echo service) in attested TLS."""
    from atls.interop import profile_issuance

    if echo == bool(forward):
        raise click.UsageError("give exactly one of --echo or --forward HOST:PORT")
    host, port = _hostport(listen)
    handler = _echo if echo else _forwarder(_hostport(forward or ""))
    try:
        att = _attester(attester, platform, tcti)
        if profile == "cocos" and att.format_name != "tdx-quote":
            raise ConfigurationError(
                "--profile cocos issues Cocos' TDX certificates: it needs TDX evidence "
                f"(this attester produces {att.format_name})",
                code="usage.profile",
            )
        source = None
        if staple_fetch:
            from atls.collateral.cache import CollateralCache
            from atls.collateral.fetch import CollateralFetcher
            from atls.collateral.staple import fetching_source

            fetcher = CollateralFetcher(
                pcs_url=pcs_url,
                kds_url=kds_url,
                cache=CollateralCache(cache_dir) if cache_dir else True,
                verify=ca_bundle,
            )
            source = fetching_source(att, fetcher, valid_for=_dt.timedelta(hours=1))
        elif _given_on_command_line("pcs_url", "kds_url", "ca_bundle", "cache_dir"):
            raise ConfigurationError(
                "--pcs-url, --kds-url, --ca-bundle and --cache-dir need --staple-fetch",
                code="usage.fetch",
            )
        creds = AttestedCredentials(
            att,
            mode=mode,  # type: ignore[arg-type]
            max_concurrent=max_concurrent,
            profile=profile_issuance(profile),
            collateral_source=source,
        )
        # fail at start-up, not at the first client
        if profile == "cocos":
            # Cocos certificates always bind a client nonce: there is no static certificate
            if mode != "fresh":
                raise ConfigurationError("--profile cocos needs --mode fresh", code="usage.mode")
            att.attest(bytes(64))
        else:
            creds.static()
    except AtlsError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)
    if attester == "simulated":
        simulated_banner()

    async def run() -> None:
        async with trio.open_nursery() as n:
            listeners = await n.start(
                lambda task_status: serve_attested(
                    handler, port, credentials=creds, host=host, task_status=task_status
                )
            )
            addr = listeners[0].socket.getsockname()
            err_console.print(
                f"atls: serving {att.format_name} evidence ({mode} mode) on {addr[0]}:{addr[1]}"
            )

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(run)


def _given_on_command_line(*names: str) -> bool:
    """Whether any of these options was given on the command line (not by environment)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return any(ctx.get_parameter_source(n) is ParameterSource.COMMANDLINE for n in names)


def _verifier(
    policy: Policy,
    trust: TrustStore,
    collateral: Collateral,
    *,
    static: bool,
    allow_simulated: bool,
) -> AttestationVerifier:
    return AttestationVerifier(
        policy=policy,
        trust=trust,
        collateral=collateral,
        fresh=not static,
        allow_simulated=allow_simulated,
    )


def _secretvm_verifier(
    host: str,
    attestation_port: int,
    policy_path: str | None,
    trust_dir: str | None,
    collateral: tuple[str, ...],
    allow_simulated: bool,
    ca_file: str | None,
) -> Any:
    """Verify the SecretVM's quote over one connection to its attestation port, then return
    a verifier that accepts only a server presenting the attested key."""
    from atls.cli._secretvm import attest_secretvm
    from atls.interop.secretvm import SecretVmKeyVerifier

    try:
        res = attest_secretvm(
            host,
            attestation_port,
            trust_dir=trust_dir,
            collateral=collateral,
            policy_path=policy_path,
            at=_dt.datetime.now(_dt.UTC),
            allow_simulated=allow_simulated,
            ca_file=ca_file,
        )
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE if e.code.startswith("usage") else EXIT_REJECTED)
    except AtlsError as e:
        err_console.print(f"[red]atls: rejected:[/] {e.code}: {esc(e.message)}")
        sys.exit(EXIT_REJECTED)
    accepted = res.verdict.accepted
    if accepted is None:
        for err in res.verdict.errors:
            err_console.print(f"[red]atls: rejected:[/] {err.code}: {esc(err.message)}")
        sys.exit(EXIT_REJECTED)
    return SecretVmKeyVerifier(accepted, res.spki_der, server_name=host)


def fetch_attestation(
    target: str,
    *,
    trust: TrustStore,
    collateral: Collateral,
    allow_simulated: bool,
    profile: str = "atls",
) -> Verified:
    """Connect to ``target`` (speaking ``profile``) with the default policy and return what
    it proved."""
    from atls.interop import profile_verifier

    host, port = _hostport(target)
    verifier = profile_verifier(
        profile,
        policy=Policy.default(),
        trust=trust,
        collateral=collateral,
        allow_simulated=allow_simulated,
    )

    async def run() -> Verified:
        stream = await open_attested_stream(host, port, verifier=verifier)
        async with stream:
            assert stream.attestation is not None
            return stream.attestation.verified

    return trio.run(run)


@click.command("connect")
@click.argument("target", metavar="HOST:PORT")
@click.option("--policy", "policy_path", metavar="FILE")
@click.option("--trust-dir", metavar="DIR")
@click.option("--collateral", multiple=True, metavar="PATH")
@click.option("--allow-simulated", is_flag=True, help="Trust the simulated TEE's demo roots.")
@click.option("--static", is_flag=True, help="Accept key-only binding (no client nonce).")
@click.option(
    "--profile",
    type=click.Choice(["atls", "dstack", "cocos", "secretvm"]),
    default="atls",
    show_default=True,
    help="The server's certificate format: atls (native), dstack (RA-TLS, key-only binding), "
    "cocos (64-byte nonce in SNI), secretvm (quote from the attestation port, bound to the key "
    "the server then has to present).",
)
@click.option(
    "--attestation-port",
    default=29343,
    show_default=True,
    help="With --profile secretvm: the VM's attestation port on the same host.",
)
@click.option(
    "--ca-file",
    metavar="PEM",
    help="With --profile secretvm: CA bundle for the attestation port's certificate.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the attestation result as JSON on stderr."
)
def connect_cmd(
    target: str,
    policy_path: str | None,
    trust_dir: str | None,
    collateral: tuple[str, ...],
    allow_simulated: bool,
    static: bool,
    profile: str,
    attestation_port: int,
    ca_file: str | None,
    as_json: bool,
) -> None:
    """Attested connection: stdin to the server, the server to stdout.

    Exit 1 when the attestation is rejected; then nothing from stdin was sent."""
    from atls.interop import profile_verifier

    host, port = _hostport(target)
    verifier: Any
    if profile == "secretvm":
        verifier = _secretvm_verifier(
            host, attestation_port, policy_path, trust_dir, collateral, allow_simulated, ca_file
        )
    else:
        verifier = None
    try:
        verifier = verifier or profile_verifier(
            profile,
            policy=load_policy_option(policy_path),
            trust=load_trust(trust_dir, allow_simulated=allow_simulated),
            collateral=load_collateral_option(
                collateral, trust_dir, allow_simulated=allow_simulated
            ),
            allow_simulated=allow_simulated,
            fresh=False if static else None,
        )
    except ConfigurationError as e:
        err_console.print(f"[red]error:[/] {esc(str(e))}")
        sys.exit(EXIT_USAGE)

    async def run() -> int:
        try:
            stream = await open_attested_stream(host, port, verifier=verifier)
        except (AttestationError, HandshakeError) as e:
            if as_json:
                import json

                click.echo(json.dumps({"verdict": "rejected", "errors": [e.to_json()]}), err=True)
            err_console.print(f"[red]atls: rejected:[/] {e.code}: {esc(e.message)}")
            return EXIT_REJECTED
        accepted = stream.attestation
        assert accepted is not None
        if accepted.verified.simulated:
            simulated_banner()
        if as_json:
            import json

            click.echo(json.dumps({"verdict": "accepted", **accepted.to_json()}), err=True)
        broken: list[str] = []
        try:
            async with stream:

                async def pump_in() -> None:
                    while True:
                        data = await trio.to_thread.run_sync(
                            _read_stdin, 65536, abandon_on_cancel=True
                        )
                        if not data:
                            await stream.send_eof()
                            return
                        await stream.send_all(data)

                async with trio.open_nursery() as n:
                    n.start_soon(pump_in)
                    while data := await stream.receive_some():
                        sys.stdout.buffer.write(data)
                        sys.stdout.buffer.flush()
                    n.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError) as eg:
            # e.g. the peer closed without close_notify: the output may be truncated
            broken.append(str(eg.exceptions[0]))
        if broken:
            err_console.print(f"[red]atls: connection broken:[/] {esc(broken[0])}")
            return EXIT_REJECTED
        return 0

    sys.exit(trio.run(run))


class _DemoSetup:
    """What one demo run needs: an attester, the client's trust, a policy that matches the
    server and one that does not, and what to call the TEE in the output."""

    def __init__(
        self,
        attester: Any,
        trust: TrustStore,
        good: Policy,
        bad: Policy,
        label: str,
        *,
        simulated: bool,
    ) -> None:
        self.attester = attester
        self.trust = trust
        self.good = good
        self.bad = bad
        self.label = label
        self.simulated = simulated


def _simulated_demo(platform: str) -> _DemoSetup:
    from atls.attest import SimulatedAttester

    key, value = ("measurement", DEMO_MEASUREMENT) if platform == "snp" else ("mr_td", DEMO_MR_TD)
    attester = SimulatedAttester(platform, **{key: bytes.fromhex(value)})  # type: ignore[arg-type]
    good = parse_policy({"version": 1, "name": "demo", platform: {key: value}})
    bad = parse_policy({"version": 1, "name": "demo-wrong-measurement", platform: {key: "00" * 48}})
    return _DemoSetup(attester, attester.trust_store(), good, bad, "simulated TEE", simulated=True)


def _tpm_demo(stack: contextlib.ExitStack) -> _DemoSetup:
    """A real software TPM (swtpm): PCR 4 gets a "kernel" measurement, the TPM attester
    quotes PCRs 0-7, and the client's policy pins the AK's Name and those PCR values."""
    from atls.testing.tpm import Swtpm, swtpm_unavailable_reason, tpm2_pytss_unavailable_reason

    reason = swtpm_unavailable_reason() or tpm2_pytss_unavailable_reason()
    if reason is not None:
        raise ConfigurationError(f"atls demo --attester tpm: {reason}", code="usage.tpm")
    from atls.attest.tpm import TpmAttester

    swtpm = stack.enter_context(Swtpm.start())
    kernel = hashlib.sha256(b"atls demo kernel").digest()
    swtpm.extend(4, {"sha256": kernel})
    pcrs = {str(i): "00" * 32 for i in range(8)}
    pcrs["4"] = hashlib.sha256(bytes(32) + kernel).hexdigest()
    attester = stack.enter_context(TpmAttester(swtpm.tcti, pcrs=range(8)))
    ak = attester.ak_name.hex()
    good = parse_policy(
        {"version": 1, "name": "demo", "tpm": {"ak_name": ak, "pcrs": {"sha256": pcrs}}}
    )
    bad = parse_policy(
        {
            "version": 1,
            "name": "demo-wrong-pcr",
            "tpm": {"ak_name": ak, "pcrs": {"sha256": {**pcrs, "4": "00" * 32}}},
        }
    )
    return _DemoSetup(attester, TrustStore(), good, bad, "swtpm", simulated=False)


@click.command("demo")
@click.option(
    "--attester",
    "attester_kind",
    type=click.Choice(["simulated", "tpm"]),
    default="simulated",
    show_default=True,
    help="simulated: the simulated TEE (no hardware); tpm: a real software TPM (needs swtpm "
    "and the atls[tpm] extra).",
)
@click.option(
    "--platform",
    type=click.Choice(["snp", "tdx"]),
    default="snp",
    show_default=True,
    help="Platform of the simulated TEE.",
)
@click.option("--mode", type=click.Choice(["static", "fresh"]), default="fresh", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the verified claims as JSON.")
def demo_cmd(attester_kind: str, platform: str, mode: str, as_json: bool) -> None:
    """Run an attested server and an attested client on loopback and show the verdicts: the
    client whose policy matches gets its echo; a client expecting other values is refused."""
    with contextlib.ExitStack() as stack:
        try:
            setup = _tpm_demo(stack) if attester_kind == "tpm" else _simulated_demo(platform)
        except AtlsError as e:
            err_console.print(f"[red]error:[/] {esc(e.message)}")
            sys.exit(EXIT_USAGE)
        sys.exit(_run_demo(setup, mode, as_json))


def _run_demo(setup: _DemoSetup, mode: str, as_json: bool) -> int:
    creds = AttestedCredentials(setup.attester, mode=mode)  # type: ignore[arg-type]
    received: list[bytes] = []
    static = mode == "static"

    async def handler(stream: AttestedStream) -> None:
        while data := await stream.receive_some():
            received.append(data)
            await stream.send_all(data)

    async def run() -> int:
        async with trio.open_nursery() as n:
            listeners = await n.start(
                lambda task_status: serve_attested(
                    handler, 0, credentials=creds, host="127.0.0.1", task_status=task_status
                )
            )
            port = listeners[0].socket.getsockname()[1]
            v = _verifier(
                setup.good,
                setup.trust,
                Collateral(),
                static=static,
                allow_simulated=setup.simulated,
            )
            stream = await open_attested_stream("127.0.0.1", port, verifier=v)
            async with stream:
                await stream.send_all(b"hello from an attested client")
                echo = await stream.receive_some()
            accepted = stream.attestation
            assert accepted is not None
            # A client whose policy expects other values must refuse the same server.
            rejected: AttestationError | None = None
            before = len(received)
            try:
                s2 = await open_attested_stream(
                    "127.0.0.1",
                    port,
                    verifier=_verifier(
                        setup.bad,
                        setup.trust,
                        Collateral(),
                        static=static,
                        allow_simulated=setup.simulated,
                    ),
                )
                await s2.aclose()
            except AttestationError as e:
                rejected = e
            n.cancel_scope.cancel()
        if as_json:
            print_json(
                {
                    "accepted": accepted.to_json(),
                    "echo": echo.decode(),
                    "rejected": rejected.to_json() if rejected else None,
                }
            )
        else:
            out = Console()
            out.print(
                _claims_table(
                    accepted, f"verified {accepted.platform} claims ({setup.label}, {mode} mode)"
                )
            )
            out.print(f"[green]accepted[/] by policy {accepted.policy!r}; echo: {echo!r}")
            for u in accepted.unchecked:
                out.print(f"[yellow]not checked:[/] {esc(u)}")
            if rejected is not None:
                out.print(
                    f"[green]as expected, a client expecting other values refused "
                    f"the server[/]: {rejected.code}: {esc(rejected.message)}"
                )
        if setup.simulated:
            simulated_banner()
        else:
            err_console.print(
                f"[yellow]{setup.label} is a software TPM: its quote proves what was extended "
                "into it, nothing about hardware. The client trusted its AK because the policy "
                "pins the AK's Name.[/]"
            )
        if rejected is None or len(received) != before or echo != received[0]:
            err_console.print("[red]demo failed: the wrong-policy client was not refused[/]")
            return EXIT_REJECTED
        return 0

    return trio.run(run)
