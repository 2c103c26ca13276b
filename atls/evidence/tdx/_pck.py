"""The PCK certificate chain carried in a quote, and the Intel SGX extension of the PCK
certificate (FMSPC, PCE-ID, TCB component SVNs, PCESVN, CPUSVN, PPID, SGX type).

Checks (Intel QVL 4.1.2.5.x, PCK certificate chain and revocation):

1. The chain is exactly PCK certificate, PCK Platform/Processor CA, root CA.
2. The root is byte-for-byte an Intel trust anchor of the trust store (pinned Intel SGX
   Root CA, or a simulated root the caller opted into).
3. The intermediate is a CA named "Intel SGX PCK Platform CA" or "... Processor CA",
   issued by the root; the PCK certificate ("Intel SGX PCK Certificate") is issued by it;
   both signatures are ECDSA P-256 / SHA-256 over the received TBS bytes.
4. Every certificate (root included) is valid at the verification time.
5. The root CA CRL (signed by the root, current at the verification time) does not revoke
   the intermediate; the PCK CRL (signed by the intermediate, current) does not revoke the
   PCK certificate.
6. The PCK certificate carries a well-formed SGX extension.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec

from atls.errors import VerificationError
from atls.evidence.tdx._der import (
    TAG_BOOLEAN,
    TAG_ENUMERATED,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    DerError,
    encode_oid,
    read_tlv,
    to_int,
)
from atls.evidence.tdx._x509 import (
    Cert,
    CrlInfo,
    check_validity,
    load_cert,
    select_crl,
    verify_issued_by,
)
from atls.trust import Anchor

__all__ = [
    "SGX_EXTENSION_OID",
    "PckChain",
    "SgxExtension",
    "parse_sgx_extension",
    "verify_pck_chain",
]

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_SGX_OID = encode_oid(SGX_EXTENSION_OID)


def _o(suffix: str) -> bytes:
    return encode_oid(f"{SGX_EXTENSION_OID}.{suffix}")


_PPID, _TCB, _PCE_ID, _FMSPC, _SGX_TYPE, _PII, _CONF = (
    _o("1"),
    _o("2"),
    _o("3"),
    _o("4"),
    _o("5"),
    _o("6"),
    _o("7"),
)
_TCB_COMPS = tuple(_o(f"2.{i}") for i in range(1, 17))
_PCESVN, _CPUSVN = _o("2.17"), _o("2.18")
_CONF_DYN, _CONF_CACHED, _CONF_SMT = _o("7.1"), _o("7.2"), _o("7.3")


class SgxExtension(NamedTuple):
    """Values of the Intel SGX extension of a PCK certificate."""

    ppid: bytes
    tcb_components: tuple[int, ...]
    pce_svn: int
    cpu_svn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    dynamic_platform: bool | None = None
    cached_keys: bool | None = None
    smt_enabled: bool | None = None


class PckChain(NamedTuple):
    """A verified PCK chain: the PCK key, its SGX extension, and what it chained to."""

    anchor: Anchor
    pck: Cert
    pck_key: ec.EllipticCurvePublicKey
    ca: str  # "platform" | "processor"
    extension: SgxExtension
    not_before: datetime
    not_after: datetime
    root_crl: CrlInfo | None
    pck_crl: CrlInfo | None


class _ExtError(ValueError):
    pass


def _pairs(buf: bytes, start: int, end: int) -> dict[bytes, tuple[int, int, int]]:
    """A SEQUENCE OF SEQUENCE { OID, value } as ``raw oid -> (tag, value_start, value_end)``.

    Short-form lengths are decoded inline (the SGX extension is ~30 such pairs and this is
    on the cold path); anything else goes through :func:`read_tlv`."""
    out: dict[bytes, tuple[int, int, int]] = {}
    pos = start
    while pos < end:
        if end - pos < 4:
            raise _ExtError("truncated SEQUENCE { OID, value }")
        n = buf[pos + 1]
        if buf[pos] == TAG_SEQUENCE and n < 0x80:
            vs = pos + 2
            ve = vs + n
        else:
            tag, vs, ve = read_tlv(buf, pos, end)
            if tag != TAG_SEQUENCE:
                raise _ExtError("expected SEQUENCE { OID, value }")
        # The OID (short form), then one value TLV that ends the SEQUENCE.
        olen = buf[vs + 1]
        ove = vs + 2 + olen
        if ve > end or buf[vs] != TAG_OID or olen >= 0x80 or ove + 2 > ve:
            raise _ExtError("expected SEQUENCE { OID, value }")
        vtag = buf[ove]
        vlen = buf[ove + 1]
        if vlen < 0x80:
            vvs = ove + 2
            vve = vvs + vlen
        else:
            vtag, vvs, vve = read_tlv(buf, ove, ve)
        if vve != ve:
            raise _ExtError("expected SEQUENCE { OID, value }")
        oid = buf[vs + 2 : ove]
        if oid in out:
            raise _ExtError(f"duplicate OID {oid.hex()}")
        out[oid] = (vtag, vvs, vve)
        pos = ve
    return out


def _octets(buf: bytes, item: tuple[int, int, int], n: int, name: str) -> bytes:
    tag, vs, ve = item
    if tag != TAG_OCTET_STRING or ve - vs != n:
        raise _ExtError(f"{name} is not a {n}-byte OCTET STRING")
    return buf[vs:ve]


def _integer(buf: bytes, item: tuple[int, int, int], name: str, tag_ok: int = TAG_INTEGER) -> int:
    tag, vs, ve = item
    if tag != tag_ok:
        raise _ExtError(f"{name} has the wrong type")
    return to_int(buf[vs:ve])


def _boolean(buf: bytes, item: tuple[int, int, int], name: str) -> bool:
    tag, vs, ve = item
    if tag != TAG_BOOLEAN or ve - vs != 1:
        raise _ExtError(f"{name} is not a BOOLEAN")
    return buf[vs] != 0


def _require(d: dict[bytes, tuple[int, int, int]], oid: bytes, name: str) -> tuple[int, int, int]:
    if oid not in d:
        raise _ExtError(f"{name} is missing")
    return d[oid]


def parse_sgx_extension(value: bytes) -> SgxExtension:
    """Parse the DER value of the SGX extension. Raises ValueError when malformed."""
    try:
        tag, vs, ve = read_tlv(value, 0, len(value))
        if tag != TAG_SEQUENCE or ve != len(value):
            raise _ExtError("not one SEQUENCE")
        top = _pairs(value, vs, ve)
        ppid = _octets(value, _require(top, _PPID, "PPID"), 16, "PPID")
        tcb_tag, tvs, tve = _require(top, _TCB, "TCB")
        if tcb_tag != TAG_SEQUENCE:
            raise _ExtError("TCB is not a SEQUENCE")
        tcb = _pairs(value, tvs, tve)
        comps: list[int] = []
        for oid in _TCB_COMPS:
            item = tcb.get(oid)
            if item is None:
                raise _ExtError("a TCB component SVN is missing")
            tag, cvs, cve = item
            # INTEGER 0..255: one byte < 0x80, or 0x00 followed by a byte >= 0x80.
            if tag == TAG_INTEGER and cve - cvs == 1 and value[cvs] < 0x80:
                comps.append(value[cvs])
            elif (
                tag == TAG_INTEGER and cve - cvs == 2 and value[cvs] == 0 and value[cvs + 1] >= 0x80
            ):
                comps.append(value[cvs + 1])
            else:
                raise _ExtError("a TCB component SVN is not an INTEGER 0..255")
        pce_svn = _integer(value, _require(tcb, _PCESVN, "PCESVN"), "PCESVN")
        if not 0 <= pce_svn <= 0xFFFF:
            raise _ExtError(f"PCESVN {pce_svn} out of range")
        cpu_svn = _octets(value, _require(tcb, _CPUSVN, "CPUSVN"), 16, "CPUSVN")
        pce_id = _octets(value, _require(top, _PCE_ID, "PCE-ID"), 2, "PCE-ID")
        fmspc = _octets(value, _require(top, _FMSPC, "FMSPC"), 6, "FMSPC")
        sgx_type = _integer(value, _require(top, _SGX_TYPE, "SGX Type"), "SGX Type", TAG_ENUMERATED)
        pii = _octets(value, top[_PII], 16, "PlatformInstanceID") if _PII in top else None
        dyn = cached = smt = None
        if _CONF in top:
            ctag, cvs, cve = top[_CONF]
            if ctag != TAG_SEQUENCE:
                raise _ExtError("Configuration is not a SEQUENCE")
            conf = _pairs(value, cvs, cve)
            if _CONF_DYN in conf:
                dyn = _boolean(value, conf[_CONF_DYN], "dynamicPlatform")
            if _CONF_CACHED in conf:
                cached = _boolean(value, conf[_CONF_CACHED], "cachedKeys")
            if _CONF_SMT in conf:
                smt = _boolean(value, conf[_CONF_SMT], "SMTEnabled")
    except DerError as e:
        raise ValueError(f"malformed SGX extension: {e}") from e
    except _ExtError as e:
        raise ValueError(f"malformed SGX extension: {e}") from e
    return SgxExtension(
        ppid=ppid,
        tcb_components=tuple(comps),
        pce_svn=pce_svn,
        cpu_svn=cpu_svn,
        pce_id=pce_id,
        fmspc=fmspc,
        sgx_type=sgx_type,
        platform_instance_id=pii,
        dynamic_platform=dyn,
        cached_keys=cached,
        smt_enabled=smt,
    )


_ANCHOR_CERTS: dict[bytes, Cert] = {}


def anchor_cert(anchor: Anchor, fmt: str) -> Cert:
    """The anchor's certificate as a :class:`Cert` (memoised by its DER)."""
    c = _ANCHOR_CERTS.get(anchor.der)
    if c is None:
        c = load_cert(anchor.der, fmt=fmt, what="trust anchor", in_quote=False)
        if len(_ANCHOR_CERTS) > 64:
            _ANCHOR_CERTS.clear()
        _ANCHOR_CERTS[anchor.der] = c
    return c


def verify_pck_chain(
    ders: tuple[bytes, ...],
    anchors: tuple[Anchor, ...],
    crls: tuple[bytes, ...],
    at: datetime,
    *,
    fmt: str,
    crls_optional: bool = False,
) -> PckChain:
    """Steps 1-6 of the module docstring. Raises VerificationError with ``<fmt>.chain.*``,
    ``<fmt>.pck.*`` or ``<fmt>.collateral.*`` codes."""
    # 1. Shape of the chain.
    if len(ders) != 3:
        raise VerificationError(
            f"the PCK certificate chain has {len(ders)} certificates; expected 3 "
            "(PCK, PCK CA, root)",
            code=f"{fmt}.chain.length",
        )
    pck_der, ca_der, root_der = ders
    # 2. The root is an Intel trust anchor.
    anchor = next((a for a in anchors if a.der == root_der), None)
    if anchor is None:
        raise VerificationError(
            "the PCK chain ends in a root that is not a trusted Intel root "
            "(not the pinned Intel SGX Root CA, and no simulated root was trusted)",
            code=f"{fmt}.chain.untrusted_root",
        )
    root = anchor_cert(anchor, fmt)
    root_key = root.public_key(what="root CA", code=f"{fmt}.chain.signature")
    ca = load_cert(ca_der, fmt=fmt, what="PCK CA certificate", in_quote=True)
    pck = load_cert(pck_der, fmt=fmt, what="PCK certificate", in_quote=True)
    # 3. Names, CA flag and signatures.
    ca_cn = ca.common_name
    if "SGX PCK Platform CA" in ca_cn:
        ca_kind = "platform"
    elif "SGX PCK Processor CA" in ca_cn:
        ca_kind = "processor"
    else:
        raise VerificationError(
            f"PCK chain intermediate {ca_cn!r} is not an Intel SGX PCK Platform/Processor CA",
            code=f"{fmt}.chain.name",
        )
    if "SGX PCK Certificate" not in pck.common_name:
        raise VerificationError(
            f"PCK certificate subject CN {pck.common_name!r} does not contain "
            "'SGX PCK Certificate'",
            code=f"{fmt}.chain.name",
        )
    try:
        ca_is_ca = ca.is_ca()
    except (DerError, ValueError) as e:
        raise VerificationError(
            f"the PCK CA certificate's extensions are malformed: {e}", code=f"{fmt}.chain.name"
        ) from e
    if not ca_is_ca:
        raise VerificationError("the PCK CA certificate is not a CA", code=f"{fmt}.chain.name")
    verify_issued_by(
        ca, root, root_key, what="PCK CA certificate", code=f"{fmt}.chain.signature", at=at
    )
    ca_key = ca.public_key(what="PCK CA certificate", code=f"{fmt}.chain.signature")
    verify_issued_by(pck, ca, ca_key, what="PCK certificate", code=f"{fmt}.chain.signature", at=at)
    pck_key = pck.public_key(what="PCK certificate", code=f"{fmt}.chain.signature")
    # 4. Validity at the verification time.
    check_validity(pck, at, fmt=fmt, what="PCK certificate", area="chain")
    check_validity(ca, at, fmt=fmt, what="PCK CA certificate", area="chain")
    check_validity(root, at, fmt=fmt, what="Intel root CA certificate", area="chain")
    # 5. Revocation.
    root_sel = select_crl(
        crls,
        root,
        root_key,
        at,
        fmt=fmt,
        what="root CA CRL",
        missing_code=f"{fmt}.collateral.missing_root_crl",
        optional=crls_optional,
    )
    root_crl = root_sel[0] if root_sel is not None else None
    if root_crl is not None and root_crl.is_revoked(ca, fmt=fmt):
        raise VerificationError(
            "the PCK CA certificate is revoked by the root CA CRL", code=f"{fmt}.chain.revoked"
        )
    pck_sel = select_crl(
        crls,
        ca,
        ca_key,
        at,
        fmt=fmt,
        what=f"PCK {ca_kind.capitalize()} CA CRL",
        missing_code=f"{fmt}.collateral.missing_pck_crl",
        optional=crls_optional,
    )
    pck_crl = pck_sel[0] if pck_sel is not None else None
    if pck_crl is not None and pck_crl.is_revoked(pck, fmt=fmt):
        raise VerificationError(
            "the PCK certificate is revoked by the PCK CRL", code=f"{fmt}.pck.revoked"
        )
    # 6. The SGX extension.
    try:
        ext = pck.extension(_SGX_OID)
        if ext is None:
            raise VerificationError(
                "the PCK certificate has no SGX extension", code=f"{fmt}.pck.extension"
            )
        sgx = parse_sgx_extension(ext)
    except (DerError, ValueError) as e:
        raise VerificationError(str(e), code=f"{fmt}.pck.extension") from e
    nbs = [c.not_before for c in (root, ca, pck)]
    nas = [c.not_after for c in (root, ca, pck)]
    for sel in (root_sel, pck_sel):
        if sel is not None:
            nbs.append(sel[0].this_update)
            nas.append(sel[1])
    return PckChain(
        anchor=anchor,
        pck=pck,
        pck_key=pck_key,
        ca=ca_kind,
        extension=sgx,
        not_before=max(nbs),
        not_after=min(nas),
        root_crl=root_crl,
        pck_crl=pck_crl,
    )
