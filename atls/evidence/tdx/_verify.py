"""DCAP quote verification (TDX v4/v5, SGX v3), offline, as Intel's numbered checklist.

``verify_dcap_quote`` runs, in order (numbers in brackets are the Intel QVL steps):

 1. Parse the quote with strict bounds; the TEE type must be the format's; attestation key
    type ECDSA-256 P-256 [4.1.2.5.1-4].
 2. The QE vendor ID is Intel's.
 3. PCK certificate chain from the quote to an Intel trust anchor, validity, root CA CRL and
    PCK CRL (revocation of the PCK CA and of the PCK certificate) [4.1.2.5.5-8].
 4. TCB info for the PCK certificate's FMSPC: signature by the Intel SGX TCB Signing
    certificate (issued by the same anchor, not revoked), validity window; its id and version
    match the quote's TEE; FMSPC and PCE-ID match the PCK certificate [4.1.2.5.10-11].
 5. QE identity: same signing checks; ``TD_QE`` for TDX quotes, ``QE`` for SGX [4.1.2.5.15].
 6. TDX only: TDX module identity (MRSIGNERSEAM, SEAMATTRIBUTES) [4.1.2.5.12].
 7. QE report signature by the PCK key [4.1.2.5.13].
 8. QE report data = SHA-256(attestation key || QE authentication data) || 32 zero bytes
    [4.1.2.5.14].
 9. QE report against the QE identity (MISCSELECT, ATTRIBUTES, MRSIGNER, ISVPRODID, ISVSVN
    level) [4.1.2.5.16, 4.1.2.9.5-10].
10. Quote signature (ECDSA P-256) by the attestation key over header and body [4.1.2.5.17].
11. TCB level of the platform (PCK SVNs, PCESVN, TEE_TCB_SVN), TDX module TCB level,
    convergence with the QE status -> Intel TCB status and advisory IDs [4.1.2.5.18].

Steps 3-5 depend only on the PCK chain and the collateral, so their result is cached, keyed
by the exact bytes (chain, collateral, trust anchors: hashed by Python and compared in full
on lookup) and bounded by the validity window they established; the QE report signature is
cached by the exact (PCK certificate, report, signature). A warm verification therefore
checks one signature: the quote's.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec

from atls.collateral._bundle import Collateral
from atls.errors import ConfigurationError, UnsupportedEvidenceError, VerificationError
from atls.evidence._verified import Verified, make_verified
from atls.evidence.tdx._cache import WindowCache, all_caches
from atls.evidence.tdx._collateral import QeIdentity, TcbInfo, select_document
from atls.evidence.tdx._pck import PckChain, verify_pck_chain
from atls.evidence.tdx._quote import (
    BODY_TD15,
    INTEL_QE_VENDOR_ID,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
    EnclaveReport,
    Quote,
    TdReport,
    parse_pem_chain,
    parse_quote,
)
from atls.evidence.tdx._tcb import (
    TcbResult,
    check_qe_identity,
    check_tdx_module_identity,
    evaluate_tcb,
)
from atls.evidence.tdx._x509 import clear_issued, clear_parsed, verify_raw_signature
from atls.trust import Anchor, TrustStore

__all__ = ["clear_caches", "verify_dcap_quote"]


class _Context(NamedTuple):
    """Steps 3-5: everything that depends on the PCK chain and the collateral only."""

    chain: PckChain
    tcb_info: TcbInfo | None
    qe_identity: QeIdentity | None
    unchecked: tuple[str, ...]


_CONTEXTS: WindowCache[_Context] = WindowCache("dcap-contexts", 128)
_QE_REPORTS: WindowCache[bool] = WindowCache("qe-report-signatures", 256)
_LO = datetime.min.replace(tzinfo=UTC)
_HI = datetime.max.replace(tzinfo=UTC)

_ATT_KEY_LOCK = threading.Lock()
_ATT_KEYS: OrderedDict[bytes, ec.EllipticCurvePublicKey] = OrderedDict()


def clear_caches(*, keep_collateral: bool = False) -> None:
    """Forget cached verification results (benchmarks measure cold runs with it).

    ``keep_collateral=True`` forgets only what is specific to a platform or quote (the
    per-chain contexts, certificate signatures, parsed certificates, QE report signatures,
    attestation keys) and keeps the verified TCB info, QE identity and CRLs: the state in
    which a verifier meets a new platform."""
    with _ATT_KEY_LOCK:
        _ATT_KEYS.clear()
    _CONTEXTS.clear()
    _QE_REPORTS.clear()
    clear_issued()
    clear_parsed()
    if keep_collateral:
        return
    for c in all_caches():
        c.clear()


def _attestation_key(raw: bytes, fmt: str) -> ec.EllipticCurvePublicKey:
    with _ATT_KEY_LOCK:
        k = _ATT_KEYS.get(raw)
    if k is not None:
        return k
    try:
        k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw)
    except ValueError as e:
        raise VerificationError(
            "the attestation key is not a P-256 point", code=f"{fmt}.signature"
        ) from e
    with _ATT_KEY_LOCK:
        _ATT_KEYS[raw] = k
        while len(_ATT_KEYS) > 256:
            _ATT_KEYS.popitem(last=False)
    return k


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ConfigurationError(
            "the verification time must be timezone-aware (e.g. datetime.now(UTC))",
            code="usage.at",
        )
    return at.astimezone(UTC)


def _context(
    quote: Quote,
    anchors: tuple[Anchor, ...],
    collateral: Collateral,
    at: datetime,
    fmt: str,
    allow_missing: bool,
) -> tuple[_Context, datetime, datetime]:
    tee = "tdx" if quote.is_tdx else "sgx"
    # 3. PCK chain, validity and revocation.
    ders = parse_pem_chain(quote.cert_data, fmt=fmt)
    chain = verify_pck_chain(
        ders, anchors, collateral.crls, at, fmt=fmt, crls_optional=allow_missing
    )
    ext = chain.extension
    unchecked: list[str] = []
    if chain.root_crl is None:
        unchecked.append("root_ca_crl")
    if chain.pck_crl is None:
        unchecked.append("pck_crl")
    nbs = [chain.not_before]
    nas = [chain.not_after]
    # 4. TCB info for this FMSPC.
    tcb_doc = select_document(
        collateral.documents,
        f"{tee}-tcb-info",
        collateral.certificates,
        chain.anchor,
        chain.root_crl,
        at,
        fmt=fmt,
        fmspc=ext.fmspc,
        optional=allow_missing,
    )
    tcb_info: TcbInfo | None = None
    if tcb_doc is None:
        unchecked.append("tcb_info")
    else:
        assert isinstance(tcb_doc.model, TcbInfo)
        tcb_info = tcb_doc.model
        nbs.append(tcb_doc.not_before)
        nas.append(tcb_doc.not_after)
        # 4.1.2.5.10: the TCB info is for this TEE.
        if quote.is_tdx and (tcb_info.id != "TDX" or tcb_info.version < 3):
            raise VerificationError(
                f"TDX quote with TCB info id {tcb_info.id!r} version {tcb_info.version}",
                code=f"{fmt}.collateral.wrong_type",
            )
        if not quote.is_tdx and tcb_info.id != "SGX":
            raise VerificationError(
                f"SGX quote with TCB info id {tcb_info.id!r}", code=f"{fmt}.collateral.wrong_type"
            )
        if tcb_info.tcb_type != 0:
            raise VerificationError(
                f"TCB info tcbType {tcb_info.tcb_type} is not supported (0)",
                code=f"{fmt}.collateral.unsupported",
            )
        # 4.1.2.5.11: FMSPC (selected above) and PCE-ID.
        if tcb_info.fmspc != ext.fmspc:  # pragma: no cover - guaranteed by select_document
            raise VerificationError("FMSPC mismatch", code=f"{fmt}.collateral.fmspc_mismatch")
        if tcb_info.pce_id != ext.pce_id:
            raise VerificationError(
                f"TCB info PCE-ID {tcb_info.pce_id.hex()} is not the PCK certificate's "
                f"{ext.pce_id.hex()}",
                code=f"{fmt}.collateral.pce_id_mismatch",
            )
    # 5. QE identity.
    qe_doc = select_document(
        collateral.documents,
        f"{tee}-qe-identity",
        collateral.certificates,
        chain.anchor,
        chain.root_crl,
        at,
        fmt=fmt,
        optional=allow_missing,
    )
    qe_identity: QeIdentity | None = None
    if qe_doc is None:
        unchecked.append("qe_identity")
    else:
        assert isinstance(qe_doc.model, QeIdentity)
        qe_identity = qe_doc.model
        nbs.append(qe_doc.not_before)
        nas.append(qe_doc.not_after)
        expected_id, versions = ("TD_QE", (2, 3)) if quote.is_tdx else ("QE", (2,))
        if qe_identity.id != expected_id or qe_identity.version not in versions:
            raise VerificationError(
                f"QE identity {qe_identity.id!r} version {qe_identity.version} does not fit a "
                f"{tee.upper()} quote (expected {expected_id!r} version {versions})",
                code=f"{fmt}.collateral.wrong_type",
            )
    return _Context(chain, tcb_info, qe_identity, tuple(unchecked)), max(nbs), min(nas)


def verify_dcap_quote(
    evidence: bytes,
    *,
    trust: TrustStore,
    collateral: Collateral,
    at: datetime,
    tee_type: int,
    allow_missing_collateral: bool = False,
) -> Verified:
    """Verify a quote of ``tee_type`` (TDX or SGX); see the module docstring for the steps."""
    fmt = "tdx" if tee_type == TEE_TYPE_TDX else "sgx"
    at = _utc(at)
    # 1. Parse; the quote is of this format's TEE.
    quote = parse_quote(evidence)
    if quote.header.tee_type != tee_type:
        other = "TDX" if quote.header.tee_type == TEE_TYPE_TDX else "SGX"
        raise UnsupportedEvidenceError(
            f"this is an {other} quote, not a {fmt.upper()} quote",
            code=f"{fmt}.unsupported.tee_type",
        )
    # 2. QE vendor.
    if quote.header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise UnsupportedEvidenceError(
            f"QE vendor ID {quote.header.qe_vendor_id.hex()} is not Intel's",
            code=f"{fmt}.unsupported.qe_vendor",
        )
    anchors = trust.by_vendor("intel")
    if not anchors:
        raise VerificationError(
            "the trust store holds no Intel root (intel-sgx-root)", code=f"{fmt}.chain.no_anchor"
        )
    # 3-5. PCK chain, CRLs, TCB info, QE identity (cached by exact bytes and window).
    # The key holds the exact bytes: the frozen Collateral compares its certificates, CRLs
    # and documents byte for byte (and bytes objects memoise their hash).
    ckey = (
        fmt,
        allow_missing_collateral,
        quote.cert_data,
        collateral,
        tuple([a.der for a in anchors]),
    )
    ctx = _CONTEXTS.get(ckey, at)
    if ctx is None:
        ctx, nb, na = _context(quote, anchors, collateral, at, fmt, allow_missing_collateral)
        _CONTEXTS.put(ckey, ctx, nb, na)
    chain = ctx.chain
    checks = ["pck_chain"]
    if chain.root_crl is not None:
        checks.append("root_ca_crl")
    if chain.pck_crl is not None:
        checks.append("pck_crl")
    if ctx.tcb_info is not None:
        checks.append("tcb_info")
    if ctx.qe_identity is not None:
        checks.append("qe_identity")
    unchecked = list(ctx.unchecked)
    td = quote.body if isinstance(quote.body, TdReport) else None
    # 6. TDX module identity.
    module = None
    if td is not None:
        if ctx.tcb_info is not None:
            module = check_tdx_module_identity(ctx.tcb_info, td, fmt=fmt)
            checks.append("tdx_module_identity")
        else:
            unchecked.append("tdx_module_identity")
    # 7. QE report signature by the PCK key.
    qkey = (chain.pck.der, quote.qe_report.raw, quote.qe_report_signature)
    if _QE_REPORTS.get(qkey, at) is None:
        verify_raw_signature(
            chain.pck_key,
            quote.qe_report_signature,
            quote.qe_report.raw,
            what="QE report",
            code=f"{fmt}.qe_report.signature",
        )
        _QE_REPORTS.put(qkey, True, _LO, _HI)
    checks.append("qe_report_signature")
    # 8. QE report data binds the attestation key and the QE authentication data.
    expected = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest() + bytes(32)
    if quote.qe_report.report_data != expected:
        raise VerificationError(
            "QE report data is not SHA-256(attestation key || QE authentication data) || 0^32",
            code=f"{fmt}.qe_report.data_mismatch",
        )
    checks.append("qe_report_data")
    # 9. QE identity.
    qe_level = None
    if ctx.qe_identity is not None:
        qe_level = check_qe_identity(ctx.qe_identity, quote.qe_report, fmt=fmt)
        checks.append("qe_report_identity")
    else:
        unchecked.append("qe_report_identity")
    # 10. Quote signature by the attestation key over header and body.
    verify_raw_signature(
        _attestation_key(quote.attestation_key, fmt),
        quote.signature,
        quote.signed,
        what="quote",
        code=f"{fmt}.signature",
    )
    checks.append("quote_signature")
    # 11. TCB level and status.
    tcb: TcbResult | None = None
    if ctx.tcb_info is not None and qe_level is not None:
        tcb = evaluate_tcb(ctx.tcb_info, chain.extension, td, module, qe_level, fmt=fmt)
        checks.append("tcb_level")
    else:
        unchecked.append("tcb_level")
    claims = _claims(quote, ctx, tcb)
    anchor = chain.anchor
    return make_verified(
        platform=fmt,
        claims=claims,
        report_data=quote.report_data,
        trust_root=anchor.name,
        simulated=anchor.simulated,
        debug=quote.body.debug,
        tcb_status=tcb.status if tcb is not None else None,
        advisory_ids=tcb.advisory_ids if tcb is not None else (),
        unchecked=tuple(unchecked),
        checks=tuple(checks),
    )


def _claims(quote: Quote, ctx: _Context, tcb: TcbResult | None) -> dict[str, Any]:
    ext = ctx.chain.extension
    body = quote.body
    c: dict[str, Any] = {}
    if isinstance(body, TdReport):
        c.update(
            mr_td=body.mr_td.hex(),
            rtmr0=body.rtmr[0].hex(),
            rtmr1=body.rtmr[1].hex(),
            rtmr2=body.rtmr[2].hex(),
            rtmr3=body.rtmr[3].hex(),
            report_data=body.report_data.hex(),
            td_attributes=body.td_attributes.hex(),
            debug=body.debug,
            sept_ve_disable=body.sept_ve_disable,
            xfam=body.xfam.hex(),
            mr_seam=body.mr_seam.hex(),
            mr_signer_seam=body.mr_signer_seam.hex(),
            seam_attributes=body.seam_attributes.hex(),
            mr_config_id=body.mr_config_id.hex(),
            mr_owner=body.mr_owner.hex(),
            mr_owner_config=body.mr_owner_config.hex(),
            tee_tcb_svn=body.tee_tcb_svn.hex(),
        )
        if quote.body_type == BODY_TD15:
            assert body.tee_tcb_svn2 is not None and body.mr_servicetd is not None
            c.update(tee_tcb_svn2=body.tee_tcb_svn2.hex(), mr_servicetd=body.mr_servicetd.hex())
        c["td_report_version"] = "1.5" if quote.body_type == BODY_TD15 else "1.0"
    else:
        assert isinstance(body, EnclaveReport)
        c.update(
            mr_enclave=body.mr_enclave.hex(),
            mr_signer=body.mr_signer.hex(),
            isv_prod_id=body.isv_prod_id,
            isv_svn=body.isv_svn,
            attributes=body.attributes.hex(),
            misc_select=body.misc_select,
            cpu_svn=body.cpu_svn.hex(),
            config_id=body.config_id.hex(),
            config_svn=body.config_svn,
            isv_ext_prod_id=body.isv_ext_prod_id.hex(),
            isv_family_id=body.isv_family_id.hex(),
            report_data=body.report_data.hex(),
            debug=body.debug,
        )
    c.update(
        quote_version=quote.header.version,
        tee_type=quote.header.tee_type,
        fmspc=ext.fmspc.hex(),
        pce_id=ext.pce_id.hex(),
        # qe_svn: ISVSVN of the QE report (signed by the PCK key); pce_svn: PCESVN of the
        # PCK certificate (the value TCB levels are matched against).
        qe_svn=quote.qe_report.isv_svn,
        pce_svn=ext.pce_svn,
        pck_ca=ctx.chain.ca,
        sgx_type=ext.sgx_type,
        sgx_tcb_components=list(ext.tcb_components),
        pck_cpu_svn=ext.cpu_svn.hex(),
        tcb_status=tcb.status if tcb is not None else None,
        advisory_ids=list(tcb.advisory_ids) if tcb is not None else [],
    )
    if tcb is not None:
        assert ctx.tcb_info is not None
        c.update(
            tcb_date=tcb.platform_level.tcb_date,
            tcb_evaluation_data_number=ctx.tcb_info.tcb_evaluation_data_number,
            platform_tcb_status=tcb.platform_status,
            qe_tcb_status=tcb.qe_status,
        )
        if isinstance(body, TdReport):
            c["tdx_module_tcb_status"] = tcb.module_status
            if tcb.relaunch_advised is not None:
                c["td_relaunch_advised"] = tcb.relaunch_advised
    return c


__all__ += ["TEE_TYPE_SGX", "TEE_TYPE_TDX"]
