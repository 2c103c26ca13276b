"""The few certificate and CRL fields the fetchers need (validity windows, names, VCEK ids).

asn1crypto is used rather than cryptography because AMD VCEKs carry serial number 0, which
cryptography deprecates and will refuse. Nothing here verifies a signature: verifiers do that.
Every malformed input raises :class:`ValueError`; callers translate it.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from asn1crypto import crl as _crl
from asn1crypto import x509 as _x509

__all__ = [
    "CertInfo",
    "CrlInfo",
    "cert_info",
    "crl_info",
    "vcek_extensions",
]

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)

# AMD VCEK/VLEK extensions (AMD SEV-SNP "Versioned Chip Endorsement Key" spec, KDS 57230).
_AMD_ARC = "1.3.6.1.4.1.3704.1"
VCEK_OIDS: dict[str, str] = {
    f"{_AMD_ARC}.1": "structVersion",
    f"{_AMD_ARC}.2": "productName",
    f"{_AMD_ARC}.3.1": "blSPL",
    f"{_AMD_ARC}.3.2": "teeSPL",
    f"{_AMD_ARC}.3.3": "snpSPL",
    f"{_AMD_ARC}.3.8": "ucodeSPL",
    f"{_AMD_ARC}.3.9": "fmcSPL",
    f"{_AMD_ARC}.4": "hwID",
}


def _cn(name: _x509.Name) -> str:
    native: Any = name.native
    if isinstance(native, dict):
        cn = native.get("common_name")
        if isinstance(cn, str):
            return cn
        if isinstance(cn, list) and cn and isinstance(cn[0], str):
            return cn[0]
    return ""


def _utc(v: Any, what: str) -> _dt.datetime:
    if not isinstance(v, _dt.datetime):
        raise ValueError(f"{what} is not a time")
    return v if v.tzinfo else v.replace(tzinfo=_dt.UTC)


class CertInfo:
    """Fields of one DER certificate (parsed strictly: no trailing bytes)."""

    __slots__ = ("der", "issuer", "issuer_cn", "not_after", "not_before", "subject", "subject_cn")

    def __init__(self, der: bytes) -> None:
        try:
            cert = _x509.Certificate.load(der, strict=True)
            tbs = cert["tbs_certificate"]
            validity = tbs["validity"]
            self.not_before = _utc(validity["not_before"].native, "notBefore")
            self.not_after = _utc(validity["not_after"].native, "notAfter")
            self.subject: _x509.Name = tbs["subject"]
            self.issuer: _x509.Name = tbs["issuer"]
            self.subject_cn = _cn(self.subject)
            self.issuer_cn = _cn(self.issuer)
        except _PARSE_ERRORS as e:
            raise ValueError(f"not a DER certificate: {e}") from e
        self.der = der

    @property
    def self_issued(self) -> bool:
        return bool(self.subject == self.issuer)


class CrlInfo:
    """Fields of one DER CRL (parsed strictly)."""

    __slots__ = ("der", "issuer", "issuer_cn", "next_update", "revoked", "this_update")

    def __init__(self, der: bytes) -> None:
        try:
            crl = _crl.CertificateList.load(der, strict=True)
            tbs = crl["tbs_cert_list"]
            self.this_update = _utc(tbs["this_update"].native, "thisUpdate")
            nu = tbs["next_update"].native
            self.next_update = None if nu is None else _utc(nu, "nextUpdate")
            self.issuer: _x509.Name = tbs["issuer"]
            self.issuer_cn = _cn(self.issuer)
            revoked = tbs["revoked_certificates"]
            self.revoked = 0 if revoked.native is None else len(revoked)
        except _PARSE_ERRORS as e:
            raise ValueError(f"not a DER CRL: {e}") from e
        self.der = der


def cert_info(der: bytes) -> CertInfo:
    return CertInfo(der)


def crl_info(der: bytes) -> CrlInfo:
    return CrlInfo(der)


def vcek_extensions(der: bytes) -> dict[str, int | str | bytes]:
    """The AMD extensions of a VCEK/VLEK: SPLs as int, productName as str, hwID as bytes."""
    out: dict[str, int | str | bytes] = {}
    try:
        cert = _x509.Certificate.load(der, strict=True)
        exts = cert["tbs_certificate"]["extensions"]
        for ext in exts:
            name = VCEK_OIDS.get(ext["extn_id"].dotted)
            if name is None:
                continue
            raw: bytes = ext["extn_value"].contents
            if name == "hwID":
                out[name] = raw
            elif name == "productName":
                out[name] = _parse_ia5(raw)
            else:
                out[name] = _parse_integer(raw)
    except _PARSE_ERRORS as e:
        raise ValueError(f"bad VCEK extensions: {e}") from e
    return out


def _parse_integer(raw: bytes) -> int:
    from asn1crypto.core import Integer

    v = Integer.load(raw, strict=True).native
    if not isinstance(v, int):
        raise ValueError("not an INTEGER")
    return v


def _parse_ia5(raw: bytes) -> str:
    from asn1crypto.core import IA5String

    v = IA5String.load(raw, strict=True).native
    if not isinstance(v, str):
        raise ValueError("not an IA5String")
    return v
