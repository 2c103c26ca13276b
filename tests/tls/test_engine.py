"""The sans-I/O engine on its own: a server that sends a CA chain is judged on its leaf at
the first verify call, and the server receives unknown_ca."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from conftest import HmacFormat
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from atls.errors import VerificationError
from atls.pipeline import AttestationVerifier
from atls.policy import Policy
from atls.tls.engine import client_engine
from atls.trust import TrustStore

NOW = dt.datetime.now(dt.UTC)


def _cert(name, key, issuer, issuer_key, ca):
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + dt.timedelta(hours=1))
    )
    if ca:
        b = b.add_extension(x509.BasicConstraints(True, None), critical=True)
    return b.sign(issuer_key, hashes.SHA256())


def test_chain_is_judged_on_its_leaf_and_server_gets_unknown_ca():
    rk = ec.generate_private_key(ec.SECP256R1())
    lk = ec.generate_private_key(ec.SECP256R1())
    root = _cert("root", rk, "root", rk, True)
    leaf = _cert("leaf", lk, "root", rk, False)
    sctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    sctx.use_certificate(leaf)
    sctx.use_privatekey(lk)
    sctx.add_extra_chain_cert(root)
    server = SSL.Connection(sctx, None)
    server.set_accept_state()
    verifier = AttestationVerifier(
        policy=Policy.default(), trust=TrustStore(), fresh=False, formats=[HmacFormat()]
    )
    client = client_engine(verifier)
    server_error = None
    with pytest.raises(VerificationError) as e:
        for _ in range(5):
            try:
                client.handshake()
            finally:
                server.bio_write(client.data_to_send() or b"")
            try:
                server.do_handshake()
            except SSL.WantReadError:
                pass
            except SSL.Error as err:
                server_error = err
            with contextlib.suppress(SSL.WantReadError):
                client.receive_data(server.bio_read(65536))
    # the leaf (not the root at depth 1) was judged: it is not self-issued
    assert e.value.code == "cert.not_self_issued"
    if server_error is None:
        try:
            server.do_handshake()
        except SSL.Error as err:
            server_error = err
    assert server_error is not None and "unknown ca" in str(server_error)
