"""Send a confidential payload (code and data) only to a server that proves it runs the
expected guest. The payload leaves this process only after the handshake accepted the
evidence; a server with any other measurement gets nothing.

Run: python examples/confidential_upload.py
"""

from __future__ import annotations

import hashlib

import trio

from atls.attest import SimulatedAttester
from atls.errors import AttestationError
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested

EXPECTED = hashlib.sha384(b"confidential-analytics v1.2").digest()
PAYLOAD = b"def analyse(rows): return sum(rows)\n---\n1,2,3,4\n"


async def upload(port: int, verifier: AttestationVerifier) -> str:
    """Returns the server's receipt, or raises AttestationError before sending anything."""
    stream = await open_attested_stream("127.0.0.1", port, verifier=verifier)
    async with stream:
        await stream.send_all(len(PAYLOAD).to_bytes(4, "big") + PAYLOAD)
        return (await stream.receive_some()).decode()


def make_server(received: list[bytes]):  # type: ignore[no-untyped-def]
    async def handler(stream: AttestedStream) -> None:
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "big"):
            data = await stream.receive_some()
            if not data:
                return
            buf += data
        received.append(buf[4:])
        await stream.send_all(b"sha256:" + hashlib.sha256(buf[4:]).hexdigest().encode())

    return handler


async def main() -> tuple[str, list[bytes], list[bytes]]:
    policy = parse_policy(
        {"version": 1, "name": "analytics", "snp": {"measurement": EXPECTED.hex()}}
    )
    good_received: list[bytes] = []
    evil_received: list[bytes] = []
    good = SimulatedAttester("snp", measurement=EXPECTED)
    evil = SimulatedAttester("snp", hierarchy=good.hierarchy, measurement=b"\x66" * 48)
    verifier = AttestationVerifier(policy=policy, trust=good.trust_store(), allow_simulated=True)
    async with trio.open_nursery() as n:
        ports = []
        for att, sink in ((good, good_received), (evil, evil_received)):
            listeners = await n.start(
                lambda task_status, att=att, sink=sink: serve_attested(
                    make_server(sink),
                    0,
                    credentials=AttestedCredentials(att, mode="fresh"),
                    host="127.0.0.1",
                    task_status=task_status,
                )
            )
            ports.append(listeners[0].socket.getsockname()[1])
        receipt = await upload(ports[0], verifier)
        print("uploaded to the verified server:", receipt)
        try:
            await upload(ports[1], verifier)
        except AttestationError as e:
            print("refused the other server before sending anything:", e.code)
        n.cancel_scope.cancel()
    return receipt, good_received, evil_received


if __name__ == "__main__":
    trio.run(main)
