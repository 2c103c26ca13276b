"""Trust stores.

A :class:`TrustStore` is plain data: a tuple of :class:`Anchor` (a root certificate plus
its pin name). Loading one from a directory is the only I/O here and lives in
:meth:`TrustStore.from_directory`; verifiers receive the store as an argument.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from atls.errors import ConfigurationError
from atls.trust.pins import PINS

__all__ = ["SIMULATED_MARKER", "Anchor", "TrustStore", "default_trust_dir", "fingerprint"]

#: Organisation name carried by every simulated root that atls.testing creates.
SIMULATED_MARKER = "atls simulated TEE - NOT SECURE"

ENV_TRUST_DIR = "ATLS_TRUST_DIR"


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lower-case hex (what the pins list)."""
    return hashlib.sha256(der).hexdigest()


def default_trust_dir() -> Path:
    """``$ATLS_TRUST_DIR``, else ``$XDG_DATA_HOME/atls/trust`` (``~/.local/share/atls/trust``)."""
    env = os.environ.get(ENV_TRUST_DIR)
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "atls" / "trust"


@dataclass(frozen=True, eq=False)
class Anchor:
    """A root certificate trusted by name. ``simulated`` roots come from atls.testing."""

    name: str
    vendor: str
    der: bytes
    certificate: x509.Certificate
    simulated: bool = False
    source: str = ""

    @property
    def sha256(self) -> str:
        return fingerprint(self.der)


def _text(v: str | bytes) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _self_issued(der: bytes) -> bool:
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return True  # let anchor_from_der report it
    return cert.issuer == cert.subject


def _is_simulated(cert: x509.Certificate) -> bool:
    orgs = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return any(a.value == SIMULATED_MARKER for a in orgs)


class TrustStore:
    """An immutable set of trust anchors.

    Simulated anchors are refused unless ``allow_simulated=True`` is given (keyword-only).
    """

    __slots__ = ("_anchors", "allow_simulated")

    def __init__(self, anchors: Iterable[Anchor] = (), *, allow_simulated: bool = False) -> None:
        anchors = tuple(anchors)
        for a in anchors:
            if a.simulated and not allow_simulated:
                raise ConfigurationError(
                    f"trust anchor {a.name!r} is a simulated root; pass allow_simulated=True "
                    "(CLI: --allow-simulated) to trust simulated evidence",
                    code="trust.simulated_not_allowed",
                )
        self._anchors = anchors
        self.allow_simulated = allow_simulated

    @property
    def anchors(self) -> tuple[Anchor, ...]:
        return self._anchors

    def by_vendor(self, vendor: str) -> tuple[Anchor, ...]:
        return tuple(a for a in self._anchors if a.vendor == vendor)

    def by_name(self, name: str) -> Anchor | None:
        for a in self._anchors:
            if a.name == name:
                return a
        return None

    def merged(self, other: TrustStore) -> TrustStore:
        seen = {a.der for a in self._anchors}
        extra = [a for a in other._anchors if a.der not in seen]
        return TrustStore(
            (*self._anchors, *extra), allow_simulated=self.allow_simulated or other.allow_simulated
        )

    def __len__(self) -> int:
        return len(self._anchors)

    @staticmethod
    def anchor_from_der(der: bytes, *, source: str = "", allow_simulated: bool = False) -> Anchor:
        """Check ``der`` against the pins (or the simulated marker) and make an Anchor."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError as e:
            raise ConfigurationError(
                f"{source or 'certificate'}: not a certificate: {e}", code="trust.not_a_certificate"
            ) from e
        fp = fingerprint(der)
        for pin in PINS:
            if pin.sha256 == fp:
                return Anchor(pin.name, pin.vendor, der, cert, False, source)
        if _is_simulated(cert):
            if not allow_simulated:
                raise ConfigurationError(
                    f"{source or 'certificate'} is a simulated root; it is trusted only with "
                    "allow_simulated=True (--allow-simulated)",
                    code="trust.simulated_not_allowed",
                )
            vendor = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
            v = _text(vendor[0].value) if vendor else "simulated"
            cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            name = f"simulated:{_text(cn[0].value)}" if cn else f"simulated:{fp[:16]}"
            return Anchor(name, v, der, cert, True, source)
        raise ConfigurationError(
            f"{source or 'certificate'} (sha256 {fp}) matches no pinned vendor root",
            code="trust.unpinned",
        )

    @classmethod
    def from_certificates(
        cls, ders: Iterable[bytes], *, allow_simulated: bool = False, source: str = ""
    ) -> TrustStore:
        return cls(
            (cls.anchor_from_der(d, source=source, allow_simulated=allow_simulated) for d in ders),
            allow_simulated=allow_simulated,
        )

    @classmethod
    def pinned_among(cls, ders: Iterable[bytes], *, source: str = "") -> TrustStore:
        """The certificates among ``ders`` whose SHA-256 fingerprint is pinned in
        :mod:`atls.trust.pins`; everything else is ignored (it is not an anchor).

        A pin names one exact certificate, so a pinned root is as trustworthy when it arrives
        inside a quote's PCK chain or a collateral bundle as when it was read from the trust
        directory: this is how ``atls verify`` works offline without ``atls trust fetch``.
        Simulated roots are never picked up this way."""
        pinned = {pin.sha256 for pin in PINS}
        anchors: list[Anchor] = []
        seen: set[bytes] = set()
        for der in ders:
            if der in seen or fingerprint(der) not in pinned:
                continue
            seen.add(der)
            anchors.append(cls.anchor_from_der(der, source=source))
        return cls(anchors)

    @classmethod
    def from_directory(
        cls, path: str | os.PathLike[str], *, allow_simulated: bool = False
    ) -> TrustStore:
        """Load every certificate file (PEM or DER, any name) in ``path``.

        Every self-signed certificate must match a pin (or be a simulated root with the
        opt-in); anything else is a :class:`ConfigurationError`, so a planted file cannot
        widen trust. Certificates that are not self-signed (ASK, intermediates) are not
        anchors and are ignored, as are non-certificate files.
        """
        from atls.collateral._sniff import split_certificates

        p = Path(path)
        if not p.is_dir():
            raise ConfigurationError(f"trust directory {p} does not exist", code="trust.no_dir")
        anchors: list[Anchor] = []
        seen: set[bytes] = set()
        for f in sorted(p.iterdir()):
            if not f.is_file() or f.stat().st_size > 1 << 20:
                continue
            for der in split_certificates(f.read_bytes()):
                if der in seen:
                    continue
                seen.add(der)
                if not _self_issued(der):
                    continue
                anchors.append(
                    cls.anchor_from_der(der, source=str(f), allow_simulated=allow_simulated)
                )
        return cls(anchors, allow_simulated=allow_simulated)
