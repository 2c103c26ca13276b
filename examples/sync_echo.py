"""Attested echo server and client over blocking sockets (threads), simulated SEV-SNP TEE.

Run: python examples/sync_echo.py
"""

from __future__ import annotations

from atls.attest import SimulatedAttester
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.tls import AttestedCredentials
from atls.tls.sync import AttestedConnection, connect, serve

MEASUREMENT = bytes.fromhex("3c" * 48)


def echo(conn: AttestedConnection) -> None:
    while data := conn.recv():
        conn.sendall(data)


def main() -> bytes:
    attester = SimulatedAttester("snp", measurement=MEASUREMENT)
    policy = parse_policy({"version": 1, "snp": {"measurement": MEASUREMENT.hex()}})
    verifier = AttestationVerifier(
        policy=policy, trust=attester.trust_store(), allow_simulated=True
    )
    with (
        serve(
            echo, "127.0.0.1", 0, credentials=AttestedCredentials(attester, mode="fresh")
        ) as server,
        connect("127.0.0.1", server.port, verifier=verifier) as conn,
    ):
        assert conn.attestation is not None
        print("verified:", conn.attestation.platform, conn.attestation.claims["measurement"])
        conn.sendall(b"hello over blocking sockets")
        reply = conn.recv()
        print("echo:", reply.decode())
    return reply


if __name__ == "__main__":
    main()
