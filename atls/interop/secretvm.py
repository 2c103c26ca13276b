"""SecretVM (SCRT Labs): evidence served over HTTPS on the VM's attestation port.

SecretVM does not put evidence into TLS. atls fixes its out-of-band gap by fetching the
quote over **the same TLS connection** whose certificate it then binds:
``report_data[0:32] == SHA-256(SPKI)`` (legacy images: ``SHA-256(certificate DER)``, only
with an explicit option). Reference values come from SecretVM's registry (CSV:
template, environment, version -> MRTD, RTMR0..2, rootfs digest), supplied by the user.
This module is pure; the HTTPS fetch lives in :mod:`atls.tls.https`.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import hmac
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from atls.errors import ConfigurationError, EvidenceParseError, VerificationError, Violation

if TYPE_CHECKING:
    import datetime as _dt

    from atls.policy import Accepted

__all__ = [
    "ATTESTATION_PORT",
    "RegistryRow",
    "SecretVmKeyVerifier",
    "check_secretvm_binding",
    "extract_cpu_evidence",
    "load_registry",
    "select_registry_row",
]

ATTESTATION_PORT = 29343
MAX_BODY = 1 << 20
_HEX_RUN = re.compile(rb"[0-9a-fA-F]{1000,}")
_B64_RUN = re.compile(rb"[A-Za-z0-9+/]{1000,}={0,2}")
_TAG = re.compile(rb"<[^>]{0,1000}>")


def extract_cpu_evidence(body: bytes) -> bytes:
    """The quote (hex) or SNP report (base64) in a ``/cpu`` or ``/cpu.html`` response body."""
    if len(body) > MAX_BODY:
        raise EvidenceParseError("response too large", format="secretvm", code="secretvm.parse")
    text = b"".join(_TAG.sub(b" ", body).split())
    # TDX quotes are served as hex, SNP reports as base64; a long run of hex digits can also
    # be base64, so each reading must also look like what it claims to be
    m = _HEX_RUN.search(text)
    if m and len(m.group(0)) % 2 == 0:
        quote = binascii.unhexlify(m.group(0))
        if _looks_like_tdx_quote(quote):
            return quote
    m = _B64_RUN.search(text)
    if m:
        try:
            report = base64.b64decode(m.group(0), validate=True)
        except binascii.Error:
            report = b""
        if _looks_like_snp_report(report):
            return report
    raise EvidenceParseError(
        "no TDX quote (hex) or SNP report (base64) in the response",
        format="secretvm",
        code="secretvm.parse",
    )


def _looks_like_tdx_quote(b: bytes) -> bool:
    """Header version 4 or 5 and TEE type 0x81 (TDX)."""
    return (
        len(b) >= 48
        and int.from_bytes(b[0:2], "little") in (4, 5)
        and int.from_bytes(b[4:8], "little") == 0x81
    )


def _looks_like_snp_report(b: bytes) -> bool:
    """At least the 1184 bytes of an ATTESTATION_REPORT, version 2..5."""
    return len(b) >= 1184 and 2 <= int.from_bytes(b[0:4], "little") <= 5


def check_secretvm_binding(
    report_data: bytes,
    *,
    spki_der: bytes,
    cert_der: bytes,
    allow_legacy_certificate_binding: bool = False,
) -> str:
    """Raise unless report_data[0:32] commits to this connection's certificate; returns the
    binding that matched (``"spki"`` or, with the legacy option, ``"certificate"``)."""
    from atls.errors import VerificationError

    head = report_data[:32]
    if hmac.compare_digest(head, hashlib.sha256(spki_der).digest()):
        return "spki"
    if hmac.compare_digest(head, hashlib.sha256(cert_der).digest()):
        if allow_legacy_certificate_binding:
            return "certificate"
        raise VerificationError(
            "report_data binds the whole certificate (legacy SecretVM image); accepted only "
            "with allow_legacy_certificate_binding",
            code="secretvm.legacy_binding",
        )
    raise VerificationError(
        "report_data[0:32] is not SHA-256 of this connection's key", code="secretvm.binding"
    )


@dataclass(frozen=True)
class RegistryRow:
    template: str
    environment: str
    version: str
    mr_td: str
    rtmr0: str
    rtmr1: str
    rtmr2: str
    rootfs_data: str

    def to_json(self) -> dict[str, str]:
        return {"template": self.template, "environment": self.environment, "version": self.version}


_COLUMNS = (
    "template_name",
    "vm_type",
    "artifacts_ver",
    "mrtd",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rootfs_data",
)


def load_registry(text: str) -> tuple[RegistryRow, ...]:
    """Parse SecretVM's ``tdx.csv`` registry (strict: known columns, hex lengths)."""
    try:
        return _load_registry(text)
    except csv.Error as e:
        raise ConfigurationError(f"registry is not valid CSV: {e}", code="secretvm.registry") from e


def _load_registry(text: str) -> tuple[RegistryRow, ...]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not set(_COLUMNS) <= set(reader.fieldnames):
        raise ConfigurationError(
            f"registry needs the columns {', '.join(_COLUMNS)}", code="secretvm.registry"
        )
    rows = []
    for i, r in enumerate(reader, start=2):
        mrtd, r0, r1, r2 = (r[c].strip().lower() for c in ("mrtd", "rtmr0", "rtmr1", "rtmr2"))
        vals = (mrtd, r0, r1, r2)
        if not all(re.fullmatch(r"[0-9a-f]{96}", v) for v in vals):
            raise ConfigurationError(
                f"registry line {i}: MRTD/RTMR values must be 48-byte hex", code="secretvm.registry"
            )
        rows.append(
            RegistryRow(
                r["template_name"],
                r["vm_type"],
                r["artifacts_ver"],
                mrtd,
                r0,
                r1,
                r2,
                r["rootfs_data"].strip().lower(),
            )
        )
    if not rows:
        raise ConfigurationError("registry is empty", code="secretvm.registry")
    return tuple(rows)


class SecretVmKeyVerifier:
    """The client verifier of a connection to a SecretVM service whose key was attested
    beforehand (``atls secretvm verify`` / ``atls connect --profile secretvm``).

    SecretVM binds its quote to the VM's TLS key (``report_data[0:32] = SHA-256(SPKI)``) and
    serves the same CA-issued certificate on its application ports. Once the quote has been
    verified and bound to that key over one connection, any further connection is accepted
    only if the server proves possession of exactly that key (the TLS handshake does) and its
    certificate is within its validity period; the CA that issued it is irrelevant.
    """

    nonce_size = 0

    def __init__(self, accepted: Accepted, spki_der: bytes, *, server_name: str | None) -> None:
        self.accepted = accepted
        self.spki_der = bytes(spki_der)
        self._server_name = server_name

    def server_name(self, nonce: bytes) -> str | None:
        return self._server_name

    def verify_certificate(
        self, cert_der: bytes, *, nonce: bytes, at: _dt.datetime, chain: tuple[bytes, ...] = ()
    ) -> Accepted:
        from cryptography import x509

        from atls.pipeline import _spki_of

        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except ValueError as e:
            raise VerificationError(
                f"peer certificate does not parse: {e}", code="cert.parse"
            ) from e
        if not hmac.compare_digest(_spki_of(cert_der), self.spki_der):
            raise VerificationError(
                "the server's key is not the key the SecretVM quote is bound to",
                code="secretvm.key_mismatch",
            )
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise VerificationError(
                f"peer certificate is not valid at {at.isoformat()}", code="cert.validity"
            )
        return self.accepted


def select_registry_row(
    claims: Mapping[str, Any], rows: Iterable[RegistryRow], compose: bytes | None
) -> tuple[tuple[RegistryRow, ...], list[Violation]]:
    """The registry rows that explain the verified claims.

    MRTD and RTMR0..2 select the candidate rows (many templates/versions share them). With
    the ``compose`` file, RTMR3 must be the replay of SHA-256(compose) and the row's
    ``rootfs_data``, which leaves the row(s) whose root filesystem this VM runs; without it
    RTMR3 is not checked and every candidate is returned."""
    from atls.measure.secretvm import secretvm_rtmr3

    have = tuple(str(claims.get(k, "")).lower() for k in ("mr_td", "rtmr0", "rtmr1", "rtmr2"))
    candidates = tuple(r for r in rows if (r.mr_td, r.rtmr0, r.rtmr1, r.rtmr2) == have)
    if not candidates:
        return (), [
            Violation(
                "secretvm.registry",
                "MRTD and RTMR0-2 of a registry row",
                f"mr_td {have[0][:16]}..., no matching row",
            )
        ]
    if compose is None:
        return candidates, []
    rtmr3 = str(claims.get("rtmr3", "")).lower()
    matched = []
    for r in candidates:
        try:
            rootfs = bytes.fromhex(r.rootfs_data)
        except ValueError:
            continue
        if secretvm_rtmr3(compose, rootfs).hex() == rtmr3:
            matched.append(r)
    if not matched:
        return (), [
            Violation(
                "rtmr3",
                f"the compose file on the rootfs of one of {len(candidates)} registry rows",
                rtmr3,
            )
        ]
    return tuple(matched), []
