"""Attested echo server and client with trio, on loopback, using the simulated SEV-SNP TEE.

Run: python examples/trio_echo.py
The client pins the guest measurement; the server echoes what the client sends.
"""

from __future__ import annotations

import trio

from atls.attest import SimulatedAttester
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested

MEASUREMENT = bytes.fromhex("5a" * 48)


async def echo(stream: AttestedStream) -> None:
    while data := await stream.receive_some():
        await stream.send_all(data)


async def main() -> bytes:
    attester = SimulatedAttester("snp", measurement=MEASUREMENT)
    credentials = AttestedCredentials(attester, mode="fresh")
    policy = parse_policy({"version": 1, "name": "echo", "snp": {"measurement": MEASUREMENT.hex()}})
    verifier = AttestationVerifier(
        policy=policy, trust=attester.trust_store(), allow_simulated=True
    )
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: serve_attested(
                echo, 0, credentials=credentials, host="127.0.0.1", task_status=task_status
            )
        )
        port = listeners[0].socket.getsockname()[1]
        stream = await open_attested_stream("127.0.0.1", port, verifier=verifier)
        async with stream:
            assert stream.attestation is not None
            print("server measurement:", stream.attestation.claims["measurement"])
            await stream.send_all(b"hello, attested world")
            reply = await stream.receive_some()
            print("echo:", reply.decode())
        nursery.cancel_scope.cancel()
    return reply


if __name__ == "__main__":
    trio.run(main)
