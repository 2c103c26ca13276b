"""Server credentials: which certificate and key a connection presents.

:class:`AttestedCredentials` mints a P-256 key, evidence over its ``atls-v1`` binding and a
self-signed certificate carrying that evidence:

* **static** mode: once at start-up, then again when half the certificate lifetime has
  passed (rotation); every client gets the current certificate.
* **fresh** mode: for every client that sends a nonce in SNI, a new key, new evidence and a
  new certificate bound to that nonce; clients without a nonce get the static certificate.
  At most ``max_concurrent`` evidence generations run at once; a handshake that cannot get
  a slot within ``busy_timeout`` fails with ``AttesterError(code="attester.busy")``.

**Stapled collateral** (extension ``.2``): every certificate carries the collateral last taken
from ``collateral_source`` (default: ``attester.collateral()``), so a client with no network
and an empty cache can verify. The source is never called from a TLS callback: it is called
once in the constructor (an explicit ``collateral_source`` may fetch from Intel PCS / AMD
KDS) and afterwards only by the background refresh, which starts ``staple_refresh_before``
ahead of the earliest ``nextUpdate`` / ``notAfter`` among the stapled items
(:meth:`refresh_collateral`). A caller
with its own schedule (e.g. an async fetcher) pushes new collateral with
:meth:`set_collateral`. A certificate never outlives the collateral stapled in it: its
``notAfter`` is capped at that earliest expiry. A failed refresh keeps the current staple
(logged) and is retried after ``staple_retry``.
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
from atls.collateral._validity import collateral_expiry
from atls.errors import AtlsError, AttesterError, CollateralUnavailableError
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
        staple: bool = True,
        collateral_source: Callable[[], Collateral] | None = None,
        staple_refresh_before: _dt.timedelta = _dt.timedelta(hours=1),
        staple_retry: _dt.timedelta = _dt.timedelta(minutes=1),
    ) -> None:
        if mode not in ("static", "fresh"):
            raise ValueError("mode must be 'static' or 'fresh'")
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be >= 1")
        if staple_refresh_before < _dt.timedelta(0) or staple_retry <= _dt.timedelta(0):
            raise ValueError("staple_refresh_before must be >= 0 and staple_retry > 0")
        if collateral_source is not None and not staple:
            raise ValueError("collateral_source needs staple=True")
        self.attester = attester
        self.profile: IssuanceProfile = profile or NativeProfile()
        self.mode = mode
        self.lifetime = lifetime
        self.fresh_lifetime = fresh_lifetime
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.staple = staple
        self.staple_refresh_before = staple_refresh_before
        self.staple_retry = staple_retry
        self._source: Callable[[], Collateral] = collateral_source or attester.collateral
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._lock = threading.Lock()
        self._static: Credential | None = None
        self._static_minted: _dt.datetime | None = None
        self._rotating = False
        self._staple_lock = threading.Lock()
        self._stapled: Collateral | None = None
        self._staple_expiry: _dt.datetime | None = None
        self._staple_next_try: _dt.datetime | None = None
        self._refreshing = False
        self.minted = 0
        #: How often the collateral source was called (it is never called per handshake).
        self.collateral_refreshes = 0
        if staple:
            # the first staple is taken now, at start-up: the source (which may fetch) is
            # then only called by the background refresh, never inside a handshake
            self.refresh_collateral()

    # ---- stapled collateral ---------------------------------------------------------

    @property
    def stapled_collateral(self) -> Collateral | None:
        """The collateral the next certificate carries (None before the first staple)."""
        with self._staple_lock:
            return self._stapled

    @property
    def staple_expiry(self) -> _dt.datetime | None:
        """The earliest ``nextUpdate``/``notAfter`` among the stapled items."""
        with self._staple_lock:
            return self._staple_expiry

    def set_collateral(self, collateral: Collateral) -> None:
        """Staple ``collateral`` from the next certificate on (push-style refresh). Already
        issued certificates keep theirs; in static mode the next rotation picks it up."""
        expiry = collateral_expiry(collateral)
        with self._staple_lock:
            self._stapled = collateral
            self._staple_expiry = expiry
            self._staple_next_try = None
        if expiry is not None and expiry <= self.clock():
            log.warning("stapled collateral is already expired (%s)", expiry.isoformat())

    def refresh_collateral(self) -> Collateral:
        """Call the collateral source and staple its answer. Raises
        :class:`~atls.errors.CollateralUnavailableError` (or the source's own
        :class:`~atls.errors.AtlsError`); the current staple stays in place then."""
        self.collateral_refreshes += 1
        try:
            c = self._source()
        except AtlsError:
            raise
        except Exception as e:  # a source bug must not kill the server
            raise CollateralUnavailableError(
                f"collateral source failed: {e!r}", code="collateral.source"
            ) from e
        if not isinstance(c, Collateral):
            raise CollateralUnavailableError(
                f"collateral source returned {type(c).__name__}, not Collateral",
                code="collateral.source",
            )
        self.set_collateral(c)
        return c

    def _staple_due(self, now: _dt.datetime) -> bool:
        """True when the background refresh should run (never blocks, never fetches)."""
        if not self.staple:
            return False
        with self._staple_lock:
            if self._stapled is None or self._refreshing:
                return False
            if self._staple_next_try is not None and now < self._staple_next_try:
                return False
            exp = self._staple_expiry
            return exp is not None and now >= exp - self.staple_refresh_before

    def _staple_for_mint(self) -> Collateral:
        if not self.staple:
            return Collateral()
        with self._staple_lock:
            cur = self._stapled
        assert cur is not None, "the constructor takes the first staple"
        return cur

    def _background_refresh(self) -> None:
        """Refresh the staple, then (static mode) mint the next static credential."""
        try:
            try:
                self.refresh_collateral()
            except AtlsError as e:
                log.warning("stapled collateral refresh failed (will retry): %s", e)
                with self._staple_lock:
                    self._staple_next_try = self.clock() + self.staple_retry
                return
            with self._lock:
                remint = self._static is not None
            if remint:
                self._rotate()
        finally:
            with self._staple_lock:
                self._refreshing = False

    def _kick_refresh(self, now: _dt.datetime) -> None:
        if self._staple_due(now):
            with self._staple_lock:
                if self._refreshing:
                    return
                self._refreshing = True
            threading.Thread(
                target=self._background_refresh, name="atls-staple-refresh", daemon=True
            ).start()

    # ---- minting --------------------------------------------------------------------

    def mint(self, nonce: bytes = b"", lifetime: _dt.timedelta | None = None) -> Credential:
        """A new key, evidence over its binding (and ``nonce``), and its certificate.

        The certificate carries the current staple and expires no later than it."""
        if not self._slots.acquire(timeout=self.busy_timeout):
            raise AttesterError("too many concurrent evidence generations", code="attester.busy")
        try:
            key = ec.generate_private_key(ec.SECP256R1())
            report_data = self.profile.report_data(spki_der(key.public_key()), nonce)
            try:
                evidence = self.attester.attest(report_data)
                staple = self._staple_for_mint()
            except AtlsError:
                raise
            except Exception as e:  # an attester bug must not kill the server
                raise AttesterError(f"attester failed: {e!r}") from e
            now = self.clock()
            not_before = now - _dt.timedelta(minutes=1)
            total = (lifetime or self.lifetime) + _dt.timedelta(minutes=1)
            expiry = self.staple_expiry if staple else None
            if expiry is not None:
                if expiry > now + _dt.timedelta(minutes=1):
                    total = min(total, expiry - not_before)
                else:
                    log.warning(
                        "stapling collateral that expires at %s (refresh failing?)",
                        expiry.isoformat(),
                    )
            cert = self.profile.certificate(
                key,
                self.attester.format_name,
                evidence,
                staple,
                not_before=not_before,
                lifetime=total,
            )
            self.minted += 1
            return Credential(cert, key, cert.not_valid_after_utc)
        finally:
            self._slots.release()

    def static(self) -> Credential:
        """The current static credential.

        After half its lifetime (or when the stapled collateral is due for refresh) a
        background thread mints the next one while handshakes go on with the current (still
        valid) certificate; only the very first mint, or one after the current certificate
        expired, blocks the caller.
        """
        now = self.clock()
        self._kick_refresh(now)
        with self._lock:
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
        with self._lock:
            self._rotating = True
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
            self._kick_refresh(self.clock())
            return self.mint(nonce, self.fresh_lifetime)
        return self.static()
