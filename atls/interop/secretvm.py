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
from typing import Any

from atls.errors import ConfigurationError, EvidenceParseError, Violation

__all__ = [
    "ATTESTATION_PORT",
    "RegistryRow",
    "check_secretvm_binding",
    "extract_cpu_evidence",
    "load_registry",
    "match_registry",
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
    m = _HEX_RUN.search(text)
    if m and len(m.group(0)) % 2 == 0:
        return binascii.unhexlify(m.group(0))
    m = _B64_RUN.search(text)
    if m:
        try:
            return base64.b64decode(m.group(0), validate=True)
        except binascii.Error:
            pass
    raise EvidenceParseError(
        "no hex quote or base64 report in the response", format="secretvm", code="secretvm.parse"
    )


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
    reader = csv.DictReader(io.StringIO(text))
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


def match_registry(
    claims: Mapping[str, Any], rows: Iterable[RegistryRow]
) -> tuple[RegistryRow | None, list[Violation]]:
    """The registry row whose MRTD and RTMR0..2 all equal the verified claims."""
    have = tuple(str(claims.get(k, "")).lower() for k in ("mr_td", "rtmr0", "rtmr1", "rtmr2"))
    for row in rows:
        if (row.mr_td, row.rtmr0, row.rtmr1, row.rtmr2) == have:
            return row, []
    return None, [
        Violation(
            "secretvm.registry",
            "MRTD and RTMR0-2 of a registry row",
            f"mr_td {have[0][:16]}..., no matching row",
        )
    ]
