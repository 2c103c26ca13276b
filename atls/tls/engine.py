"""Sans-I/O attested TLS over ``OpenSSL.SSL.Connection`` with memory BIOs.

The engine never touches a socket, a clock it was not given, or an event loop: bytes from
the network go in with :meth:`TLSEngine.receive_data`, bytes for the network come out of
:meth:`TLSEngine.data_to_send`. The trio and blocking drivers are thin loops around it.

Contract (measured facts in docs/design.md):

* TLS 1.3 only; no session tickets, no session cache, no resumption (resumption would skip
  the verify callback).
* The client's verify callback runs the attestation pipeline on the depth-0 certificate at
  its *first* call and returns 0 on any failure, so the server receives ``unknown_ca``. The
  typed error is kept and raised from :meth:`TLSEngine.handshake`; the alert stays in the
  outgoing buffer, and drivers always flush it (they send :meth:`data_to_send` after every
  step, also when the step raised).
* The server picks its certificate in the SNI callback (fresh mode mints one per nonce).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

from atls.errors import AtlsError, AttestationError, AttesterError, HandshakeError
from atls.pipeline import CertificateVerifier
from atls.policy import Accepted
from atls.tls._credentials import Credential, ServerCredentials, utcnow

__all__ = ["PinnedCertificateVerifier", "TLSEngine", "client_engine", "server_engine"]

_READ_CHUNK = 65536


def _base_context(method: int) -> SSL.Context:
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_COMPRESSION)
    ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    return ctx


def _client_verify(conn: SSL.Connection, cert: Any, errno: int, depth: int, ok: int) -> bool:
    engine = conn.get_app_data()
    assert isinstance(engine, TLSEngine)
    return engine._on_verify(cert, depth)


_CLIENT_CTX: SSL.Context | None = None


def _client_context() -> SSL.Context:
    global _CLIENT_CTX
    if _CLIENT_CTX is None:
        ctx = _base_context(SSL.TLS_CLIENT_METHOD)
        ctx.set_verify(SSL.VERIFY_PEER, _client_verify)
        _CLIENT_CTX = ctx
    return _CLIENT_CTX


def _server_sni(conn: SSL.Connection) -> None:
    engine = conn.get_app_data()
    assert isinstance(engine, TLSEngine)
    engine._on_server_name(conn)


def _server_context() -> SSL.Context:
    ctx = _base_context(SSL.TLS_SERVER_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE)
    ctx.set_tlsext_servername_callback(_server_sni)
    return ctx


_SERVER_CTX: SSL.Context | None = None


class PinnedCertificateVerifier:
    """Plain TLS (no attestation): accept exactly one certificate (baseline, tests)."""

    nonce_size = 0

    def __init__(self, certificate: x509.Certificate) -> None:
        self._der = certificate.public_bytes(Encoding.DER)

    def server_name(self, nonce: bytes) -> str | None:
        return None

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> Accepted | None:
        from atls.errors import VerificationError

        if cert_der != self._der:
            raise VerificationError("certificate is not the pinned one", code="cert.pin")
        return None  # plain TLS: nothing attested


class TLSEngine:
    """One TLS connection's state machine. Not thread-safe; one owner at a time."""

    def __init__(
        self,
        conn: SSL.Connection,
        *,
        server_side: bool,
        verifier: CertificateVerifier | None = None,
        nonce: bytes = b"",
        credentials: ServerCredentials | None = None,
        clock: Callable[[], _dt.datetime] = utcnow,
    ) -> None:
        self._conn = conn
        self.server_side = server_side
        self._verifier = verifier
        self.nonce = nonce
        self._credentials = credentials
        self._clock = clock
        self._error: AtlsError | None = None
        self._verify_called = False
        self._peer_ok = False
        self.attestation: Accepted | None = None
        self.handshake_done = False
        self.credential: Credential | None = None
        self.server_name: str | None = None
        conn.set_app_data(self)

    # ---- callbacks (run inside OpenSSL calls) ---------------------------------------
    def _on_verify(self, cert: Any, depth: int) -> bool:
        if self._verify_called:
            # later calls for the same (accepted) leaf
            return self._error is None
        self._verify_called = True
        try:
            # The first call may be for the top of a chain (errno 19/20); OpenSSL >= 3 has
            # stored the peer's chain by now, so take the leaf from it.
            peer = self._conn.get_peer_cert_chain(as_cryptography=True)
            if peer:
                chain = tuple(c.public_bytes(Encoding.DER) for c in peer)
            elif depth == 0:
                chain = (cert.to_cryptography().public_bytes(Encoding.DER),)
            else:
                raise HandshakeError("peer certificate chain unavailable", code="cert.chain")
            assert self._verifier is not None
            self.attestation = self._verifier.verify_certificate(
                chain[0], nonce=self.nonce, at=self._clock(), chain=chain[1:]
            )
            self._peer_ok = True
            return True
        except AtlsError as e:
            self._error = e
        except Exception as e:  # a verifier bug must fail closed, never crash the loop
            self._error = AttestationError(
                f"internal error while verifying: {e!r}", code="internal"
            )
        return False

    def _on_server_name(self, conn: SSL.Connection) -> None:
        assert self._credentials is not None
        raw = conn.get_servername()
        self.server_name = raw.decode("ascii", "replace") if raw else None
        try:
            cred = self._credentials.select(self.server_name)
        except AtlsError as e:
            self._error = e
            return
        except Exception as e:
            self._error = AttesterError(f"could not mint credentials: {e!r}")
            return
        self.credential = cred
        conn.use_certificate(cred.certificate)
        conn.use_privatekey(cred.key)

    # ---- sans-I/O interface --------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Bytes received from the peer; ``b""`` means the transport reached EOF."""
        if data:
            self._conn.bio_write(data)
        else:
            self._conn.bio_shutdown()

    def data_to_send(self) -> bytes:
        """All bytes waiting to go to the peer (flush after every call, also after errors)."""
        out = []
        while True:
            try:
                chunk = self._conn.bio_read(_READ_CHUNK)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out.append(chunk)
        return b"".join(out)

    def _fail(self, e: Exception) -> AtlsError:
        if self._error is not None:
            return self._error
        if isinstance(e, SSL.SysCallError):
            return HandshakeError(
                "peer closed the connection during the handshake", code="handshake.eof"
            )
        return HandshakeError(f"TLS handshake failed: {e}", code="handshake.tls")

    def handshake(self) -> bool:
        """Advance the handshake. True when complete, False when more input is needed."""
        if self.handshake_done:
            return True
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            if self._error is not None:
                raise self._error from None
            return False
        except SSL.Error as e:
            raise self._fail(e) from e
        if self._error is not None:  # a callback failed but OpenSSL carried on: fail closed
            raise self._error
        if not self.server_side and not self._peer_ok:
            raise AttestationError(
                "the peer's certificate was never verified", code="internal.unverified"
            )
        self.handshake_done = True
        return True

    def send(self, data: bytes) -> None:
        """Encrypt application data (call only after the handshake completed)."""
        if not self.handshake_done:
            raise HandshakeError("handshake not complete", code="handshake.state")
        view = memoryview(data)
        while view:
            n = self._conn.send(view[:16384])
            view = view[n:]

    def recv(self, max_bytes: int) -> bytes | None:
        """Decrypted application data; ``b""`` at a clean close; None if more input is needed."""
        try:
            return self._conn.recv(max_bytes)
        except SSL.WantReadError:
            return None
        except SSL.ZeroReturnError:
            return b""
        except SSL.SysCallError as e:
            raise HandshakeError(
                f"connection closed without close_notify ({e})", code="tls.eof"
            ) from e
        except SSL.Error as e:
            raise HandshakeError(f"TLS error: {e}", code="tls.error") from e

    def close(self) -> None:
        """Queue a close_notify (send it with :meth:`data_to_send`)."""
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()


def client_engine(
    verifier: CertificateVerifier,
    *,
    clock: Callable[[], _dt.datetime] = utcnow,
    nonce: bytes | None = None,
    server_name: str | None = None,
) -> TLSEngine:
    """A client engine; makes a fresh nonce when the verifier wants one."""
    if nonce is None:
        nonce = os.urandom(verifier.nonce_size) if verifier.nonce_size else b""
    conn = SSL.Connection(_client_context(), None)
    conn.set_connect_state()
    sni = verifier.server_name(nonce) if nonce else server_name
    if sni:
        conn.set_tlsext_host_name(sni.encode("ascii"))
    return TLSEngine(conn, server_side=False, verifier=verifier, nonce=nonce, clock=clock)


def server_engine(credentials: ServerCredentials) -> TLSEngine:
    """A server engine presenting the credential ``credentials`` selects per SNI."""
    global _SERVER_CTX
    if _SERVER_CTX is None:
        _SERVER_CTX = _server_context()
    conn = SSL.Connection(_SERVER_CTX, None)
    conn.set_accept_state()
    return TLSEngine(conn, server_side=True, credentials=credentials)
