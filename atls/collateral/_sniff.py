"""Content sniffing for certificates and CRLs in PEM or DER (pure; no I/O)."""

from __future__ import annotations

import base64
import re

__all__ = ["is_der_sequence", "split_certificates", "split_crls", "split_pem"]

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)


def split_pem(data: bytes) -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, DER). Blocks with bad base64 are skipped."""
    out: list[tuple[str, bytes]] = []
    for m in _PEM_RE.finditer(data):
        try:
            der = base64.b64decode(b"".join(m.group(2).split()), validate=True)
        except (ValueError, base64.binascii.Error):  # type: ignore[attr-defined]
            continue
        out.append((m.group(1).decode("ascii"), der))
    return out


def is_der_sequence(data: bytes) -> bool:
    """True if ``data`` is exactly one DER SEQUENCE (tag 0x30, definite length)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    n = data[1]
    if n < 0x80:
        return len(data) == 2 + n
    k = n & 0x7F
    if k == 0 or k > 4 or len(data) < 2 + k:
        return False
    length = int.from_bytes(data[2 : 2 + k], "big")
    return len(data) == 2 + k + length


def _der_kind(der: bytes) -> str | None:
    """'certificate', 'crl' or None for a DER blob (tbs structure shape)."""
    from cryptography import x509

    try:
        x509.load_der_x509_certificate(der)
        return "certificate"
    except ValueError:
        pass
    try:
        x509.load_der_x509_crl(der)
        return "crl"
    except ValueError:
        return None


def split_certificates(data: bytes) -> list[bytes]:
    """DER certificates found in ``data`` (a PEM bundle, or one DER certificate)."""
    pems = split_pem(data)
    if pems:
        return [d for label, d in pems if label in ("CERTIFICATE", "TRUSTED CERTIFICATE")]
    if is_der_sequence(data) and _der_kind(data) == "certificate":
        return [data]
    return []


def split_crls(data: bytes) -> list[bytes]:
    """DER CRLs found in ``data`` (PEM ``X509 CRL`` blocks, or one DER CRL)."""
    pems = split_pem(data)
    if pems:
        return [d for label, d in pems if label == "X509 CRL"]
    if is_der_sequence(data) and _der_kind(data) == "crl":
        return [data]
    return []
