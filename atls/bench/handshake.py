"""Attested vs plain TLS 1.3 handshakes per second over loopback, in one run.

Both sides run in one trio event loop over real loopback TCP. "attested" is the full
path: the client verifies simulated SNP evidence (ECDSA P-384 report signature, the
VCEK/ASK/ARK chain, VCEK TCB and chip ID, the atls-v1 binding, the policy) with the
verifier's defaults, which reuse the authentication of the exact same certificate for up to
30 s (static mode; fresh-mode nonces never repeat). "attested_full" is the same with reuse
off, i.e. the evidence verified in full on every handshake. "plain" is the same engine with
an ordinary self-signed certificate pinned by the client. They are measured in alternating
rounds so that machine noise hits all alike.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import time

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atls.pipeline import AttestationVerifier, CertificateVerifier
from atls.policy import parse_policy
from atls.tls._credentials import AttestedCredentials, PlainCredentials, ServerCredentials
from atls.tls.engine import PinnedCertificateVerifier
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested

__all__ = ["main", "run"]


def _plain_cert() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=1))
        .not_valid_after(now + _dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


async def _handler(stream: AttestedStream) -> None:
    await stream.aclose()


async def _count(port: int, verifier: CertificateVerifier, seconds: float) -> int:
    n = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        s = await open_attested_stream("127.0.0.1", port, verifier=verifier)
        await trio.aclose_forcefully(s)
        n += 1
    return n


async def _bench(mode: str, seconds: float, rounds: int) -> dict[str, object]:
    from atls.attest import SimulatedAttester

    attester = SimulatedAttester("snp")
    att_creds = AttestedCredentials(attester, mode=mode)  # type: ignore[arg-type]
    measurement = attester.hierarchy.report(b"\0" * 64)[0x90:0xC0].hex()
    policy = parse_policy({"version": 1, "name": "bench", "snp": {"measurement": measurement}})
    attested = AttestationVerifier(
        policy=policy, trust=attester.trust_store(), fresh=mode == "fresh", allow_simulated=True
    )
    attested_full = AttestationVerifier(
        policy=policy,
        trust=attester.trust_store(),
        fresh=mode == "fresh",
        allow_simulated=True,
        reuse_seconds=0,
    )
    cert, key = _plain_cert()
    plain_creds = PlainCredentials(cert, key)
    plain = PinnedCertificateVerifier(cert)
    sides = ("attested", "attested_full", "plain")
    counts = dict.fromkeys(sides, 0)
    elapsed = dict.fromkeys(sides, 0.0)

    async with trio.open_nursery() as n:
        ports = {}
        creds: dict[str, ServerCredentials] = {"attested": att_creds, "plain": plain_creds}
        for name in ("attested", "plain"):
            c = creds[name]
            listeners = await n.start(
                lambda task_status, c=c: serve_attested(
                    _handler, 0, credentials=c, host="127.0.0.1", task_status=task_status
                )
            )
            ports[name] = listeners[0].socket.getsockname()[1]
        ports["attested_full"] = ports["attested"]
        verifiers: dict[str, CertificateVerifier] = {
            "attested": attested,
            "attested_full": attested_full,
            "plain": plain,
        }
        for name in sides:  # warm-up: contexts, caches, static minting
            await _count(ports[name], verifiers[name], 0.2)
        for _ in range(rounds):
            for name in sides:
                t0 = time.perf_counter()
                counts[name] += await _count(ports[name], verifiers[name], seconds / rounds)
                elapsed[name] += time.perf_counter() - t0
        n.cancel_scope.cancel()
    a, f, p = (counts[n] / elapsed[n] for n in sides)
    return {
        "mode": mode,
        "attested_per_s": round(a, 1),
        "plain_per_s": round(p, 1),
        "ratio": round(a / p, 3),
        "attested_full_per_s": round(f, 1),
        "full_ratio": round(f / p, 3),
    }


def run(mode: str = "static", seconds: float = 5.0, rounds: int = 5) -> dict[str, object]:
    return trio.run(_bench, mode, seconds, rounds)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m atls.bench handshake", description=__doc__)
    ap.add_argument("--mode", choices=["static", "fresh"], default="static")
    ap.add_argument("--seconds", type=float, default=5.0, help="per side, split in rounds")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.mode, args.seconds, args.rounds)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.mode}: attested {result['attested_per_s']}/s, plain "
            f"{result['plain_per_s']}/s, ratio {result['ratio']}; verified in full on every "
            f"handshake {result['attested_full_per_s']}/s, ratio {result['full_ratio']}"
        )
    return 0
