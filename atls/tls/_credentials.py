"""Server credentials: which certificate and key a connection presents.

:class:`AttestedCredentials` mints a P-256 key, evidence over its ``atls-v1`` binding and a
self-signed certificate carrying that evidence:

* **static** mode: once at start-up, then again when half the certificate lifetime has
  passed (rotation); every client gets the current certificate.
* **fresh** mode: for every client that sends a nonce in SNI, a new key, new evidence and a
  new certificate bound to that nonce; clients without a nonce get the static certificate.
  At most ``max_concurrent`` evidence generations run at once; a handshake that cannot get
  a slot within ``busy_timeout`` fails with ``AttesterError(code="attester.busy")``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from atls.attest._base import Attester
from atls.binding import ATLS_V1, atls_v1_report_data
from atls.collateral._bundle import Collateral
from atls.errors import AtlsError, AttesterError
from atls.tls._sni import decode_nonce_sni
from atls.x509ext import issue_attested_cert, spki_der

__all__ = [
    "AttestedCredentials",
    "Credential",
    "IssuanceProfile",
    "NativeProfile",
    "PlainCredentials",
    "ServerCredentials",
    "utcnow",
]


log = logging.getLogger("atls.tls")


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


@dataclass(frozen=True)
class Credential:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    not_after: _dt.datetime


class ServerCredentials(Protocol):
    def select(self, server_name: str | None) -> Credential:
        """The credential for a connection whose ClientHello carried ``server_name`` (SNI,
        which may encode the client's nonce; None when the client sent none)."""
        ...


class PlainCredentials:
    """A fixed certificate without attestation (baseline benchmarks, tests)."""

    def __init__(self, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        self._cred = Credential(certificate, key, certificate.not_valid_after_utc)

    def select(self, server_name: str | None) -> Credential:
        return self._cred


class IssuanceProfile(Protocol):
    """How a server binds evidence to its key and carries it: the native ``atls-v1``
    profile, or a foreign system's (atls.interop)."""

    name: str

    def decode_nonce(self, server_name: str | None) -> bytes | None:
        """The client nonce carried in SNI (None if there is none)."""
        ...

    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        """The 64 bytes the evidence must carry for this key (and nonce)."""
        ...

    def certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        evidence_format: str,
        evidence: bytes,
        collateral: Collateral,
        *,
        not_before: _dt.datetime,
        lifetime: _dt.timedelta,
    ) -> x509.Certificate:
        """The certificate for ``key`` carrying ``evidence``."""
        ...


class NativeProfile:
    """``atls-v1``: nonce in SNI as two 32-hex labels; evidence and collateral in the
    project's extensions."""

    name = ATLS_V1

    def decode_nonce(self, server_name: str | None) -> bytes | None:
        return decode_nonce_sni(server_name)

    def report_data(self, spki_der: bytes, nonce: bytes) -> bytes:
        return atls_v1_report_data(spki_der, nonce)

    def certificate(
        self,
        key: ec.EllipticCurvePrivateKey,
        evidence_format: str,
        evidence: bytes,
        collateral: Collateral,
        *,
        not_before: _dt.datetime,
        lifetime: _dt.timedelta,
    ) -> x509.Certificate:
        return issue_attested_cert(
            key,
            evidence_format=evidence_format,
            evidence=evidence,
            binding=ATLS_V1,
            collateral=collateral,
            not_before=not_before,
            lifetime=lifetime,
        )


class AttestedCredentials:
    """Certificates carrying evidence from ``attester`` (see the module docstring)."""

    def __init__(
        self,
        attester: Attester,
        *,
        mode: Literal["static", "fresh"] = "static",
        lifetime: _dt.timedelta = _dt.timedelta(hours=1),
        fresh_lifetime: _dt.timedelta = _dt.timedelta(minutes=5),
        max_concurrent: int = 4,
        busy_timeout: float = 10.0,
        clock: Callable[[], _dt.datetime] = utcnow,
        profile: IssuanceProfile | None = None,
    ) -> None:
        if mode not in ("static", "fresh"):
            raise ValueError("mode must be 'static' or 'fresh'")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        self.attester = attester
        self.profile: IssuanceProfile = profile or NativeProfile()
        self.mode = mode
        self.lifetime = lifetime
        self.fresh_lifetime = fresh_lifetime
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._static: Credential | None = None
        self._static_minted: _dt.datetime | None = None
        self._rotating = False
        self.minted = 0

    def mint(self, nonce: bytes = b"", lifetime: _dt.timedelta | None = None) -> Credential:
        """A new key, evidence over its binding (and ``nonce``), and its certificate."""
        if not self._slots.acquire(timeout=self.busy_timeout):
            raise AttesterError("too many concurrent evidence generations", code="attester.busy")
        try:
            key = ec.generate_private_key(ec.SECP256R1())
            report_data = self.profile.report_data(spki_der(key.public_key()), nonce)
            try:
                evidence = self.attester.attest(report_data)
                staple = self.attester.collateral()
            except AtlsError:
                raise
            except Exception as e:  # an attester bug must not kill the server
                raise AttesterError(f"attester failed: {e!r}") from e
            now = self.clock()
            cert = self.profile.certificate(
                key,
                self.attester.format_name,
                evidence,
                staple,
                not_before=now - _dt.timedelta(minutes=1),
                lifetime=(lifetime or self.lifetime) + _dt.timedelta(minutes=1),
            )
            self.minted += 1
            return Credential(cert, key, cert.not_valid_after_utc)
        finally:
            self._slots.release()

    def static(self) -> Credential:
        """The current static credential.

        After half its lifetime a background thread mints the next one while handshakes go
        on with the current (still valid) certificate; only the very first mint, or one
        after the current certificate expired, blocks the caller.
        """
        with self._lock:
            now = self.clock()
            cur = self._static
            if cur is None or now >= cur.not_after - _dt.timedelta(seconds=30):
                cur = self._static = self.mint()
                self._static_minted = now
                return cur
            assert self._static_minted is not None
            if now >= self._static_minted + self.lifetime / 2 and not self._rotating:
                self._rotating = True
                threading.Thread(target=self._rotate, name="atls-rotate", daemon=True).start()
            return cur

    def _rotate(self) -> None:
        try:
            cred = self.mint()
        except AtlsError as e:
            log.warning("static certificate rotation failed (will retry): %s", e)
        else:
            with self._lock:
                self._static = cred
                self._static_minted = self.clock()
        finally:
            self._rotating = False

    def select(self, server_name: str | None) -> Credential:
        nonce = self.profile.decode_nonce(server_name)
        if self.mode == "fresh" and nonce:
            return self.mint(nonce, self.fresh_lifetime)
        return self.static()
