"""A secure multi-party computation participant (as with Cocos): upload an algorithm and this
party's dataset to a computation agent only after the agent proved, inside the TLS
handshake, that it runs the agreed guest image. An agent with any other measurement gets
nothing: the upload never starts.

The agreed reference values arrive as a Cocos attestation policy (JSON), imported into an
atls policy; the agent here is a simulated SEV-SNP guest in the same process.

Run: python examples/smpc_upload.py
"""

from __future__ import annotations

import base64
import hashlib
import json

import trio

from atls.attest import SimulatedAttester
from atls.errors import AttestationError
from atls.interop import profile_issuance, profile_verifier
from atls.interop.cocos import cocos_policy_from_json
from atls.pipeline import CertificateVerifier
from atls.policy import parse_policy
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested

AGENT_IMAGE = hashlib.sha384(b"cocos agent 0.8 (igvm)").digest()
MANIFEST = hashlib.sha256(b"computation 42: parties alice, bob; algorithm mean.py").digest()
ALGORITHM = b"import sys\nrows = [float(x) for x in sys.stdin]\nprint(sum(rows) / len(rows))\n"
DATASET = b"12.5\n13.0\n11.75\n"

# What the computation's owner distributes to every party (Cocos' policy file shape).
COCOS_POLICY = json.dumps(
    {
        "policy": {
            "measurement": base64.b64encode(AGENT_IMAGE).decode(),
            "host_data": base64.b64encode(MANIFEST).decode(),
            "policy": 196608,  # 0x30000: SMT allowed, no debug, no migration agent
            "vmpl": 0,
        },
        "root_of_trust": {"product_line": "Milan", "disallow_network": True},
    }
)


def frame(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


async def participate(port: int, verifier: CertificateVerifier) -> str:
    """Upload algorithm and dataset; raises AttestationError before sending anything."""
    stream = await open_attested_stream("127.0.0.1", port, verifier=verifier)
    async with stream:
        assert stream.attestation is not None  # the handshake accepted the evidence
        await stream.send_all(frame(b"A", ALGORITHM) + frame(b"D", DATASET))
        return (await stream.receive_some()).decode()


def make_agent(received: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    async def handler(stream: AttestedStream) -> None:
        buf = b""
        parts: dict[bytes, bytes] = {}
        while len(parts) < 2:
            data = await stream.receive_some()
            if not data:
                return
            buf += data
            while len(buf) >= 5 and len(buf) >= 5 + int.from_bytes(buf[1:5], "big"):
                n = int.from_bytes(buf[1:5], "big")
                parts[buf[:1]] = buf[5 : 5 + n]
                buf = buf[5 + n :]
        received.append((parts[b"A"], parts[b"D"]))
        digest = hashlib.sha256(parts[b"A"] + parts[b"D"]).hexdigest()
        await stream.send_all(b"accepted for computation, inputs sha256:" + digest.encode())

    return handler


async def main() -> tuple[str, list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], str]:
    policy = parse_policy(cocos_policy_from_json(COCOS_POLICY, name="computation-42"))
    good_received: list[tuple[bytes, bytes]] = []
    evil_received: list[tuple[bytes, bytes]] = []
    agent = SimulatedAttester("snp", measurement=AGENT_IMAGE, host_data=MANIFEST)
    impostor = SimulatedAttester(
        "snp", hierarchy=agent.hierarchy, measurement=b"\x66" * 48, host_data=MANIFEST
    )
    verifier = profile_verifier(
        "atls",
        policy=policy,
        trust=agent.trust_store(),
        collateral=agent.collateral(),
        allow_simulated=True,  # the agent is simulated; never set this in production
    )
    refused = ""
    async with trio.open_nursery() as n:
        ports = []
        for att, sink in ((agent, good_received), (impostor, evil_received)):
            creds = AttestedCredentials(att, mode="fresh", profile=profile_issuance("atls"))
            listeners = await n.start(
                lambda task_status, creds=creds, sink=sink: serve_attested(
                    make_agent(sink),
                    0,
                    credentials=creds,
                    host="127.0.0.1",
                    task_status=task_status,
                )
            )
            ports.append(listeners[0].socket.getsockname()[1])
        receipt = await participate(ports[0], verifier)
        print("agent verified, inputs uploaded:", receipt)
        try:
            await participate(ports[1], verifier)
        except AttestationError as e:
            refused = e.code
            print("refused the impostor agent before sending anything:", e.code)
        n.cancel_scope.cancel()
    return receipt, good_received, evil_received, refused


if __name__ == "__main__":
    trio.run(main)
