"""Attested TLS end to end with a real software TPM (swtpm) behind the TPM attester: the
client gets data only when the quote verifies, binds the TLS key and nonce, and its PCRs
match the policy."""

from __future__ import annotations

import hashlib

import pytest
import trio

from atls.errors import AttestationError
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.testing.tpm import Swtpm, swtpm_fixture
from atls.tls import AttestedCredentials
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested
from atls.trust import TrustStore

swtpm = swtpm_fixture("module")

KERNEL = hashlib.sha256(b"tls test kernel").digest()


@pytest.fixture(scope="module")
def attester(swtpm: Swtpm):
    from atls.attest.tpm import TpmAttester

    swtpm.extend(5, {"sha256": KERNEL})
    with TpmAttester(swtpm.tcti, pcrs=range(8)) as a:
        yield a


def _verifier(ak_name: bytes, pcr5: str, mode: str) -> AttestationVerifier:
    pcrs = {str(i): "00" * 32 for i in range(8)}
    pcrs["5"] = pcr5
    policy = parse_policy(
        {"version": 1, "tpm": {"ak_name": ak_name.hex(), "pcrs": {"sha256": pcrs}}}
    )
    return AttestationVerifier(policy=policy, trust=TrustStore(), fresh=mode == "fresh")


@pytest.mark.parametrize("mode", ["fresh", "static"])
async def test_tpm_attested_tls(attester, mode: str) -> None:
    received: list[bytes] = []

    async def handler(stream: AttestedStream) -> None:
        while data := await stream.receive_some():
            received.append(data)
            await stream.send_all(data)

    expected_pcr5 = hashlib.sha256(bytes(32) + KERNEL).hexdigest()
    creds = AttestedCredentials(attester, mode=mode)  # type: ignore[arg-type]
    async with trio.open_nursery() as n:
        listeners = await n.start(
            lambda task_status: serve_attested(
                handler, 0, credentials=creds, host="127.0.0.1", task_status=task_status
            )
        )
        port = listeners[0].socket.getsockname()[1]
        good = _verifier(attester.ak_name, expected_pcr5, mode)
        s = await open_attested_stream("127.0.0.1", port, verifier=good)
        async with s:
            await s.send_all(b"confidential")
            assert await s.receive_some() == b"confidential"
        assert s.attestation is not None
        assert s.attestation.platform == "tpm"
        assert s.attestation.claims["pcrs"]["sha256"]["5"] == expected_pcr5

        # a client expecting another PCR 5 value is refused before any data is sent
        bad = _verifier(attester.ak_name, "00" * 32, mode)
        before = len(received)
        with pytest.raises(AttestationError):
            s2 = await open_attested_stream("127.0.0.1", port, verifier=bad)
            await s2.send_all(b"must not arrive")
        # another AK (a TPM the client did not enrol) is refused too
        other = _verifier(b"\x00\x0b" + bytes(32), expected_pcr5, mode)
        with pytest.raises(AttestationError):
            s3 = await open_attested_stream("127.0.0.1", port, verifier=other)
            await s3.send_all(b"must not arrive")
        await trio.sleep(0.05)
        assert len(received) == before
        n.cancel_scope.cancel()
