"""AMD KDS requests and the parsing of their answers (pure; no I/O).

Endpoints (``{base}`` defaults to ``https://kdsintf.amd.com``, ``{product}`` is Milan, Genoa
or Turin, ``{key}`` is ``vcek`` or ``vlek``):

=========================================================================  ==================
``{base}/vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..``  VCEK (DER)
``{base}/vcek/v1/Turin/{hwid}?fmcSPL=..&blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..``
                                                                           Turin VCEK
``{base}/{key}/v1/{product}/cert_chain``                                   ASK (or ASVK) + ARK
``{base}/{key}/v1/{product}/crl``                                          CRL (DER)
=========================================================================  ==================

``hwid`` is CHIP_ID in lower-case hex: all 64 bytes, except on Turin where KDS uses only the
first 8 (the rest of CHIP_ID is zero). The SPLs are the REPORTED_TCB components in decimal.
KDS answers 429 with Retry-After when a client asks too often; see :class:`RetryPolicy`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from atls.collateral import Collateral
from atls.collateral._sniff import is_der_sequence, split_certificates
from atls.collateral.fetch._http import HttpResult
from atls.collateral.fetch._spec import (
    Piece,
    Spec,
    check_content_type,
    crl_from_body,
    malformed,
    mismatch,
    window,
)
from atls.collateral.fetch._x509 import CertInfo, vcek_extensions
from atls.errors import ConfigurationError

__all__ = [
    "AMD_KDS_URL",
    "PRODUCTS",
    "SnpTcb",
    "amd_base",
    "cert_chain_spec",
    "crl_spec",
    "hwid_for",
    "norm_key",
    "norm_product",
    "vcek_spec",
]

AMD_KDS_URL = "https://kdsintf.amd.com"
PRODUCTS = ("Milan", "Genoa", "Turin")

_CERT_TYPES = (
    "application/octet-stream",
    "application/pkix-cert",
    "application/x-x509-ca-cert",
    "application/x-x509-user-cert",
    "",
)
_CHAIN_TYPES = (
    "application/x-pem-file",
    "application/pem-certificate-chain",
    "application/octet-stream",
    "text/plain",
    "",
)
_CRL_TYPES = ("application/pkix-crl", "application/x-pkcs7-crl", "application/octet-stream", "")


def amd_base(url: str | None) -> str:
    base = (url or AMD_KDS_URL).strip().rstrip("/")
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ConfigurationError(f"KDS URL {url!r} is not an http(s) URL", code="usage.url")
    return base


def norm_product(product: str) -> str:
    """``milan``, ``Milan``, ``Milan-B0`` (a VCEK productName) -> ``Milan``."""
    p = product.strip().split("-", 1)[0].capitalize()
    if p not in PRODUCTS:
        raise ConfigurationError(
            f"AMD product {product!r} is not one of {', '.join(PRODUCTS)}", code="usage.product"
        )
    return p


def norm_key(key: str) -> str:
    k = key.lower()
    if k not in ("vcek", "vlek"):
        raise ConfigurationError(f"key must be 'vcek' or 'vlek', not {key!r}", code="usage.key")
    return k


@dataclass(frozen=True)
class SnpTcb:
    """The components of an SNP TCB_VERSION (REPORTED_TCB). ``fmc`` exists on Turin only."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    def __post_init__(self) -> None:
        for name in ("bootloader", "tee", "snp", "microcode", "fmc"):
            v = getattr(self, name)
            if v is None and name == "fmc":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255:
                raise ConfigurationError(f"TCB {name} must be 0..255", code="usage.tcb")

    @classmethod
    def from_bytes(cls, raw: bytes, product: str) -> SnpTcb:
        """From the 8 little-endian bytes of a TCB_VERSION field.

        Milan/Genoa: [0] boot loader, [1] TEE, [6] SNP, [7] microcode.
        Turin: [0] FMC, [1] boot loader, [2] TEE, [3] SNP, [7] microcode.
        """
        if len(raw) != 8:
            raise ConfigurationError("a TCB_VERSION is 8 bytes", code="usage.tcb")
        if norm_product(product) == "Turin":
            return cls(bootloader=raw[1], tee=raw[2], snp=raw[3], microcode=raw[7], fmc=raw[0])
        return cls(bootloader=raw[0], tee=raw[1], snp=raw[6], microcode=raw[7])

    @classmethod
    def from_int(cls, value: int, product: str) -> SnpTcb:
        """From the TCB_VERSION as a u64 (as read little-endian from the report)."""
        if not 0 <= value < 1 << 64:
            raise ConfigurationError("a TCB_VERSION is a u64", code="usage.tcb")
        return cls.from_bytes(value.to_bytes(8, "little"), product)

    def query(self) -> str:
        parts = [] if self.fmc is None else [f"fmcSPL={self.fmc:02d}"]
        parts += [
            f"blSPL={self.bootloader:02d}",
            f"teeSPL={self.tee:02d}",
            f"snpSPL={self.snp:02d}",
            f"ucodeSPL={self.microcode:02d}",
        ]
        return "&".join(parts)


def hwid_for(product: str, chip_id: bytes | str) -> str:
    """The KDS hwid path segment for ``chip_id`` (bytes or hex)."""
    if isinstance(chip_id, str):
        try:
            raw = bytes.fromhex(chip_id.strip())
        except ValueError as e:
            raise ConfigurationError("chip_id is not hex", code="usage.chip_id") from e
    else:
        raw = bytes(chip_id)
    if norm_product(product) == "Turin":
        if len(raw) == 64:
            if any(raw[8:]):
                raise ConfigurationError(
                    "a Turin CHIP_ID must be zero beyond its first 8 bytes", code="usage.chip_id"
                )
            raw = raw[:8]
        if len(raw) != 8:
            raise ConfigurationError("a Turin hwid is 8 bytes", code="usage.chip_id")
    elif len(raw) != 64:
        raise ConfigurationError("a CHIP_ID is 64 bytes", code="usage.chip_id")
    if not any(raw):
        raise ConfigurationError(
            "CHIP_ID is all zero (masked by the guest policy, or a VLEK-signed report): "
            "KDS has no VCEK for it",
            code="usage.chip_id",
        )
    return raw.hex()


def _check_tcb(product: str, tcb: SnpTcb) -> None:
    turin = product == "Turin"
    if turin and tcb.fmc is None:
        raise ConfigurationError("a Turin TCB has an FMC SPL", code="usage.tcb")
    if not turin and tcb.fmc is not None:
        raise ConfigurationError(f"a {product} TCB has no FMC SPL", code="usage.tcb")


def vcek_spec(base: str, *, product: str, hwid: str, tcb: SnpTcb) -> Spec:
    _check_tcb(product, tcb)
    url = f"{base}/vcek/v1/{product}/{hwid}?{tcb.query()}"
    what = f"{product} VCEK for hwid {hwid[:16]}..."

    def parse(res: HttpResult) -> Piece:
        check_content_type(res, what, _CERT_TYPES)
        body = res.body
        if not is_der_sequence(body):
            pems = split_certificates(body) if b"-----BEGIN" in body else []
            if len(pems) != 1:
                raise malformed(res, what, f"body ({len(body)} bytes) is not one certificate")
            body = pems[0]
        try:
            info = CertInfo(body)
            ext = vcek_extensions(body)
        except ValueError as e:
            raise malformed(res, what, str(e)) from e
        # The certificate must be the one asked for (the verifier checks it again).
        if ext.get("hwID") != bytes.fromhex(hwid):
            raise mismatch(res, what, "certificate hwID differs from the requested chip")
        wanted = {
            "blSPL": tcb.bootloader,
            "teeSPL": tcb.tee,
            "snpSPL": tcb.snp,
            "ucodeSPL": tcb.microcode,
        }
        if tcb.fmc is not None:
            wanted["fmcSPL"] = tcb.fmc
        for name, v in wanted.items():
            if ext.get(name) != v:
                raise mismatch(res, what, f"certificate {name} {ext.get(name)!r} != {v}")
        nb, na = window(res, not_before=[info.not_before], not_after=[info.not_after])
        return Piece(Collateral(certificates=(body,)), na, nb)

    return Spec(url, what, parse)


def cert_chain_spec(base: str, *, product: str, key: str = "vcek") -> Spec:
    url = f"{base}/{key}/v1/{product}/cert_chain"
    signer = "ASK" if key == "vcek" else "ASVK"
    what = f"{product} {signer}+ARK chain"
    signer_cn = f"SEV-{product}" if key == "vcek" else f"SEV-VLEK-{product}"

    def parse(res: HttpResult) -> Piece:
        check_content_type(res, what, _CHAIN_TYPES)
        ders = split_certificates(res.body)
        if len(ders) != 2:
            raise malformed(res, what, f"expected 2 PEM certificates, found {len(ders)}")
        try:
            infos = [CertInfo(d) for d in ders]
        except ValueError as e:
            raise malformed(res, what, str(e)) from e
        ask, ark = infos
        if not ark.self_issued or ark.subject_cn != f"ARK-{product}":
            raise mismatch(res, what, f"second certificate is {ark.subject_cn!r}, not the ARK")
        if ask.subject_cn != signer_cn or ask.issuer != ark.subject:
            raise mismatch(res, what, f"first certificate is {ask.subject_cn!r}, not {signer_cn}")
        nb, na = window(
            res,
            not_before=[i.not_before for i in infos],
            not_after=[i.not_after for i in infos],
        )
        return Piece(Collateral(certificates=tuple(ders)), na, nb)

    return Spec(url, what, parse)


def crl_spec(base: str, *, product: str, key: str = "vcek") -> Spec:
    url = f"{base}/{key}/v1/{product}/crl"
    what = f"{product} {key.upper()} CRL"

    def parse(res: HttpResult) -> Piece:
        check_content_type(res, what, _CRL_TYPES)
        crl = crl_from_body(res, what)
        if crl.issuer_cn != f"ARK-{product}":
            raise mismatch(res, what, f"CRL issued by {crl.issuer_cn!r}, not ARK-{product}")
        nb, na = window(res, not_before=[crl.this_update], not_after=[crl.next_update])
        return Piece(Collateral(crls=(crl.der,)), na, nb)

    return Spec(url, what, parse)
