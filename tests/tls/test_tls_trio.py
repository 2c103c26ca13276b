"""Attested TLS over trio: acceptance, every rejection class, and 'no application data'."""

from __future__ import annotations

import datetime as dt

import pytest
import trio
import trio.testing
from conftest import MEASUREMENT, HmacAttester, HmacFormat
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from atls.errors import AttestationError, HandshakeError, PolicyError, VerificationError
from atls.pipeline import AttestationVerifier
from atls.policy import Policy, parse_policy
from atls.tls import AttestedCredentials, PlainCredentials
from atls.tls.engine import PinnedCertificateVerifier, client_engine, server_engine
from atls.tls.trio import AttestedStream, open_attested_stream, serve_attested
from atls.trust import TrustStore

POLICY = parse_policy({"version": 1, "snp": {"measurement": MEASUREMENT.hex()}})


def verifier(*, fresh=True, policy=POLICY):
    return AttestationVerifier(
        policy=policy, trust=TrustStore(), fresh=fresh, formats=[HmacFormat()]
    )


def plain_cert():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


class Recorder:
    def __init__(self):
        self.received = b""
        self.handled = 0

    async def __call__(self, stream: AttestedStream) -> None:
        self.handled += 1
        while data := await stream.receive_some():
            self.received += data
            await stream.send_all(data)


async def _serve(nursery, credentials, rec):
    listeners = await nursery.start(
        lambda task_status: serve_attested(
            rec, 0, credentials=credentials, host="127.0.0.1", task_status=task_status
        )
    )
    return listeners[0].socket.getsockname()[1]


@pytest.mark.parametrize("mode", ["static", "fresh"])
async def test_accepted_connection_carries_data(mode):
    att = HmacAttester()
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(att, mode=mode), rec)
        s = await open_attested_stream("127.0.0.1", port, verifier=verifier(fresh=mode == "fresh"))
        async with s:
            assert s.attestation is not None
            assert s.attestation.claims["measurement"] == MEASUREMENT.hex()
            await s.send_all(b"ping")
            assert await s.receive_some() == b"ping"
        n.cancel_scope.cancel()
    assert rec.received == b"ping"
    # one mint: the static certificate, or the one bound to this client's nonce
    assert len(att.calls) == 1


REJECTIONS = [
    ("bad signature", dict(corrupt_mac=True), {}, VerificationError, "test.signature"),
    ("wrong binding", dict(wrong_report_data=True), {}, VerificationError, "binding.key_mismatch"),
    ("policy mismatch", dict(measurement=b"\x01" * 48), {}, PolicyError, "policy"),
]


@pytest.mark.parametrize("name,att_kw,_v,exc,code", REJECTIONS, ids=[r[0] for r in REJECTIONS])
@pytest.mark.parametrize("mode", ["static", "fresh"])
async def test_rejections_send_no_application_data(name, att_kw, _v, exc, code, mode):
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(HmacAttester(**att_kw), mode=mode), rec)
        with pytest.raises(exc) as e:
            await open_attested_stream("127.0.0.1", port, verifier=verifier(fresh=mode == "fresh"))
        if code == "binding.key_mismatch" and mode == "fresh":
            code = "binding.nonce_mismatch"  # with a nonce the two cannot be told apart
        assert e.value.code == code
        await trio.sleep(0.05)
        n.cancel_scope.cancel()
    assert rec.handled == 0 and rec.received == b""


async def test_wrong_nonce_static_server_fresh_client():
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(HmacAttester(), mode="static"), rec)
        with pytest.raises(VerificationError) as e:
            await open_attested_stream("127.0.0.1", port, verifier=verifier(fresh=True))
        assert e.value.code == "binding.nonce_mismatch"
        n.cancel_scope.cancel()
    assert rec.handled == 0


async def test_missing_extension_is_rejected():
    cert, key = plain_cert()
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, PlainCredentials(cert, key), rec)
        with pytest.raises(VerificationError) as e:
            await open_attested_stream("127.0.0.1", port, verifier=verifier(fresh=False))
        assert e.value.code == "cert.no_evidence"
        n.cancel_scope.cancel()
    assert rec.handled == 0


async def test_server_sees_unknown_ca_alert_and_keeps_serving():
    """The rejected client's alert reaches the server; a good client is served afterwards."""
    rec = Recorder()
    cert, key = plain_cert()
    a, b = trio.testing.memory_stream_pair()
    client = AttestedStream(a, client_engine(verifier(fresh=False)))
    server = AttestedStream(b, server_engine(PlainCredentials(cert, key)))

    async def srv():
        with pytest.raises(HandshakeError, match="unknown ca"):
            await server.do_handshake()

    async with trio.open_nursery() as n:
        n.start_soon(srv)
        with pytest.raises(AttestationError):
            await client.do_handshake()
    # and a real server keeps serving good clients after bad ones
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(HmacAttester(), mode="fresh"), rec)
        other = parse_policy({"version": 1, "snp": {"measurement": "01" * 48}})
        with pytest.raises(PolicyError):
            await open_attested_stream("127.0.0.1", port, verifier=verifier(policy=other))
        s = await open_attested_stream("127.0.0.1", port, verifier=verifier())
        async with s:
            await s.send_all(b"ok")
            assert await s.receive_some() == b"ok"
        n.cancel_scope.cancel()


async def test_garbage_client_does_not_stop_the_server():
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(HmacAttester(), mode="fresh"), rec)
        junk = await trio.open_tcp_stream("127.0.0.1", port)
        await junk.send_all(b"\x16\x03\x01\xff\xff" + b"garbage" * 100)
        await junk.aclose()
        s = await open_attested_stream("127.0.0.1", port, verifier=verifier())
        async with s:
            assert s.attestation is not None
            await s.send_all(b"still serving")
            assert await s.receive_some() == b"still serving"
        n.cancel_scope.cancel()
    assert rec.received == b"still serving"  # the garbage never reached a handler


async def test_check_two_way_stream():
    cert, key = plain_cert()

    async def maker():
        a, b = trio.testing.memory_stream_pair()
        return (
            AttestedStream(a, client_engine(PinnedCertificateVerifier(cert))),
            AttestedStream(b, server_engine(PlainCredentials(cert, key))),
        )

    await trio.testing.check_two_way_stream(maker, None)


async def test_check_half_closeable_stream_attested():
    att = HmacAttester()
    creds = AttestedCredentials(att, mode="fresh")

    async def maker():
        a, b = trio.testing.memory_stream_pair()
        return (
            AttestedStream(a, client_engine(verifier())),
            AttestedStream(b, server_engine(creds)),
        )

    await trio.testing.check_half_closeable_stream(maker, None)


async def test_default_policy_accepts_and_reports_unchecked():
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, AttestedCredentials(HmacAttester(), mode="fresh"), rec)
        s = await open_attested_stream(
            "127.0.0.1", port, verifier=verifier(policy=Policy.default())
        )
        assert any("measurements" in u for u in s.attestation.unchecked)
        await s.aclose()
        n.cancel_scope.cancel()


async def test_fresh_mode_bounds_concurrent_evidence_generation():
    import threading
    import time

    active = 0
    peak = 0
    lock = threading.Lock()

    class Slow(HmacAttester):
        def attest(self, rd):
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.05)
            with lock:
                active -= 1
            return super().attest(rd)

    creds = AttestedCredentials(Slow(), mode="fresh", max_concurrent=2)
    rec = Recorder()
    async with trio.open_nursery() as n:
        port = await _serve(n, creds, rec)

        async def one():
            s = await open_attested_stream("127.0.0.1", port, verifier=verifier())
            await s.aclose()

        async with trio.open_nursery() as clients:
            for _ in range(6):
                clients.start_soon(one)
        n.cancel_scope.cancel()
    assert peak == 2


def test_static_rotation_happens_in_the_background():
    """After half the lifetime the next certificate is minted off the caller's thread; the
    current one is served meanwhile; an expired one is replaced before use."""
    import threading
    import time

    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    gate = threading.Event()

    class Gated(HmacAttester):
        def attest(self, rd):
            if self.calls:  # every mint after the first waits for the gate
                gate.wait(5)
            return super().attest(rd)

    att = Gated()
    creds = AttestedCredentials(
        att, mode="static", lifetime=dt.timedelta(minutes=10), clock=lambda: now[0]
    )
    first = creds.static()
    now[0] += dt.timedelta(minutes=6)
    t0 = time.perf_counter()
    assert creds.static() is first  # served at once although rotation is due
    assert time.perf_counter() - t0 < 1
    gate.set()
    for _ in range(100):
        if creds.minted == 2:
            break
        time.sleep(0.02)
    assert creds.minted == 2
    second = creds.static()
    assert second is not first
    now[0] += dt.timedelta(minutes=30)  # long past expiry: a blocking re-mint
    assert creds.static() is not second
    assert creds.minted == 3
