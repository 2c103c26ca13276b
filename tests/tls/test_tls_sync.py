"""The blocking driver: same engine, same guarantees."""

from __future__ import annotations

import socket
import threading

import pytest
from conftest import MEASUREMENT, HmacAttester, HmacFormat

from atls.errors import HandshakeError, PolicyError, VerificationError
from atls.pipeline import AttestationVerifier
from atls.policy import parse_policy
from atls.tls import AttestedCredentials
from atls.tls.sync import AttestedConnection, connect, serve
from atls.trust import TrustStore


def verifier(measurement=MEASUREMENT, fresh=True):
    policy = parse_policy({"version": 1, "snp": {"measurement": measurement.hex()}})
    return AttestationVerifier(
        policy=policy, trust=TrustStore(), fresh=fresh, formats=[HmacFormat()]
    )


class Echo:
    def __init__(self):
        self.received = b""
        self.lock = threading.Lock()

    def __call__(self, conn: AttestedConnection) -> None:
        while data := conn.recv():
            with self.lock:
                self.received += data
            conn.sendall(data)


@pytest.mark.parametrize("mode", ["static", "fresh"])
def test_round_trip(mode):
    echo = Echo()
    srv = serve(echo, credentials=AttestedCredentials(HmacAttester(), mode=mode))
    with srv, connect("127.0.0.1", srv.port, verifier=verifier(fresh=mode == "fresh")) as c:
            assert c.attestation is not None
            assert c.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            # kernel timeouts, the socket itself stays blocking
            assert c.socket.gettimeout() is None
            c.sendall(b"x" * 100_000)
            got = b""
            while len(got) < 100_000:
                got += c.recv()
            assert got == b"x" * 100_000
    assert echo.received == b"x" * 100_000


@pytest.mark.parametrize(
    "kw,exc",
    [
        (dict(corrupt_mac=True), VerificationError),
        (dict(measurement=b"\x02" * 48), PolicyError),
        (dict(wrong_report_data=True), VerificationError),
    ],
)
def test_rejection_sends_nothing_and_server_keeps_serving(kw, exc):
    echo = Echo()
    with serve(echo, credentials=AttestedCredentials(HmacAttester(**kw), mode="fresh")) as srv:
        with pytest.raises(exc):
            connect("127.0.0.1", srv.port, verifier=verifier())
        with pytest.raises(exc):
            connect("127.0.0.1", srv.port, verifier=verifier())
    assert echo.received == b""
    assert srv.served == 0


def test_connection_refused_is_typed():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(HandshakeError) as e:
        connect("127.0.0.1", port, verifier=verifier())
    assert e.value.code == "tls.connect"


def test_silent_server_times_out_with_kernel_timeout():
    lsock = socket.create_server(("127.0.0.1", 0))
    try:
        with pytest.raises(HandshakeError) as e:
            connect("127.0.0.1", lsock.getsockname()[1], verifier=verifier(), timeout=0.3)
        assert e.value.code == "tls.timeout"
    finally:
        lsock.close()
