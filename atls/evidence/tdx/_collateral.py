"""Intel TCB info and QE identity: typed models parsed from the exact signed JSON, and their
verification (TCB signing chain, signature, validity window, revocation).

Checks for each signed document (Intel QVL 4.1.2.4.x, TCB info / enclave identity):

1. The signing certificate ("Intel SGX TCB Signing") is issued by the same trust anchor as
   the PCK chain, is valid at the verification time, and is not revoked by the root CA CRL.
2. The ECDSA P-256 signature (raw r||s) verifies over the exact body bytes.
3. The body parses strictly (types, hex lengths, known status names).
4. ``issueDate <= at <= nextUpdate``.
"""

from __future__ import annotations

import json
import operator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric import ec

from atls.collateral._bundle import Document
from atls.errors import VerificationError
from atls.evidence.tdx._cache import WindowCache
from atls.evidence.tdx._pck import anchor_cert
from atls.evidence.tdx._x509 import (
    Cert,
    CrlInfo,
    check_validity,
    load_cert,
    verify_issued_by,
    verify_raw_signature,
)
from atls.trust import Anchor

__all__ = [
    "MAX_DOCUMENT_SIZE",
    "TCB_STATUSES",
    "ModuleIdentity",
    "ModuleTcbLevel",
    "QeIdentity",
    "QeTcbLevel",
    "TcbInfo",
    "TcbLevel",
    "VerifiedDocument",
    "parse_qe_identity",
    "parse_tcb_info",
    "select_document",
]

MAX_DOCUMENT_SIZE = 1 << 20
#: Bounds on what a (possibly peer-stapled) collateral bundle can make the verifier try.
MAX_DOCUMENTS_PER_KIND = 64
MAX_CANDIDATE_CERTIFICATES = 64
TCB_STATUSES = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
QE_STATUSES = frozenset({"UpToDate", "OutOfDate", "Revoked"})
MODULE_STATUSES = frozenset({"UpToDate", "OutOfDate", "Revoked"})


class TcbLevel(NamedTuple):
    sgx_svns: tuple[int, ...]
    pce_svn: int
    tdx_svns: tuple[int, ...] | None
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


class ModuleTcbLevel(NamedTuple):
    isv_svn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


class ModuleIdentity(NamedTuple):
    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    tcb_levels: tuple[ModuleTcbLevel, ...] = ()


class TcbInfo(NamedTuple):
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    tdx_module: ModuleIdentity | None
    tdx_module_identities: tuple[ModuleIdentity, ...] | None
    tcb_levels: tuple[TcbLevel, ...]


class QeTcbLevel(NamedTuple):
    isv_svn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


class QeIdentity(NamedTuple):
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: int
    miscselect_mask: int
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isv_prod_id: int
    tcb_levels: tuple[QeTcbLevel, ...]


class _Malformed(ValueError):
    pass


_ISV_SVN = operator.attrgetter("isv_svn")


def _reject_constant(name: str) -> Any:
    raise _Malformed(f"non-JSON constant {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _load_json(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_DOCUMENT_SIZE:
        raise _Malformed(f"{len(body)} bytes is too large")
    try:
        v = _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise _Malformed(f"not JSON: {e}") from e
    if not isinstance(v, dict):
        raise _Malformed("not a JSON object")
    return v


def _int(v: Any, bits: int, what: str) -> int:
    if type(v) is not int or not 0 <= v < 1 << bits:
        raise _Malformed(f"{what} is not an integer 0..{(1 << bits) - 1}")
    return v


def _str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise _Malformed(f"{what} is not a string")
    return v


def _hex(v: Any, n: int, what: str) -> bytes:
    if type(v) is not str or len(v) != 2 * n:
        raise _Malformed(f"{what} is not {n} bytes of hex")
    try:
        return bytes.fromhex(v)
    except ValueError as e:
        raise _Malformed(f"{what} is not hex") from e


def _time(v: Any, what: str) -> datetime:
    if type(v) is not str or not (v.endswith("Z") or "+" in v[10:]):
        raise _Malformed(f"{what} {v!r} is not an ISO 8601 time with a time zone")
    try:
        t = datetime.fromisoformat(v)
    except ValueError as e:
        raise _Malformed(f"{what} {v!r} is not an ISO 8601 time") from e
    if t.tzinfo is None:
        raise _Malformed(f"{what} {v!r} has no time zone")
    return t.astimezone(UTC)


def _list(v: Any, what: str, max_len: int = 1024) -> list[Any]:
    if type(v) is not list or len(v) > max_len:
        raise _Malformed(f"{what} is not a list (of at most {max_len} entries)")
    return v


def _dict(v: Any, what: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise _Malformed(f"{what} is not an object")
    return v


def _level_common(lv: dict[str, Any], allowed: frozenset[str]) -> tuple[str, str, tuple[str, ...]]:
    """tcbDate, tcbStatus (one of ``allowed``) and advisoryIDs of a TCB level object."""
    date = lv["tcbDate"]
    status = lv["tcbStatus"]
    adv = lv.get("advisoryIDs", ())
    if type(date) is not str:
        raise _Malformed("tcbDate is not a string")
    if status not in allowed:
        raise _Malformed(f"tcbStatus {status!r} is not one of {sorted(allowed)}")
    if type(adv) is not list and adv != ():
        raise _Malformed("advisoryIDs is not a list")
    for a in adv:
        if type(a) is not str:
            raise _Malformed("advisoryIDs is not a list of strings")
    return date, status, tuple(adv)


def _components(v: Any, what: str) -> tuple[int, ...]:
    """16 ``{"svn": n, ...}`` objects -> their SVNs."""
    if type(v) is not list or len(v) != 16:
        raise _Malformed(f"{what} is not a list of 16 components")
    svns = tuple([c["svn"] for c in v])
    for x in svns:
        if type(x) is not int or not 0 <= x <= 255:
            raise _Malformed(f"{what}: SVN {x!r} is not an integer 0..255")
    return svns


def _module(d: Any, what: str, with_levels: bool) -> ModuleIdentity:
    d = _dict(d, what)
    levels: list[ModuleTcbLevel] = []
    if with_levels:
        for lv in _list(d["tcbLevels"], "module tcbLevels"):
            isv = _int(_dict(_dict(lv, "module TCB level")["tcb"], "tcb")["isvsvn"], 8, "isvsvn")
            levels.append(ModuleTcbLevel(isv, *_level_common(lv, MODULE_STATUSES)))
        levels.sort(key=_ISV_SVN, reverse=True)  # stable: ties keep their order
    return ModuleIdentity(
        _str(d["id"], "module id") if with_levels else "",
        _hex(d["mrsigner"], 48, "module mrsigner"),
        _hex(d["attributes"], 8, "module attributes"),
        _hex(d["attributesMask"], 8, "module attributesMask"),
        tuple(levels),
    )


def _tcb_level(lv: Any, version: int, tdx: bool) -> TcbLevel:
    tcb = _dict(_dict(lv, "TCB level")["tcb"], "tcb")
    if version >= 3:
        sgx = _components(tcb["sgxtcbcomponents"], "sgxtcbcomponents")
        tdx_svns = _components(tcb["tdxtcbcomponents"], "tdxtcbcomponents") if tdx else None
    else:
        sgx = tuple(_int(tcb[f"sgxtcbcomp{i:02d}svn"], 8, "sgxtcbcompNNsvn") for i in range(1, 17))
        tdx_svns = None
    return TcbLevel(
        sgx, _int(tcb["pcesvn"], 16, "pcesvn"), tdx_svns, *_level_common(lv, TCB_STATUSES)
    )


def _canonical_levels(levels: list[TcbLevel]) -> tuple[TcbLevel, ...]:
    """Highest first by (SGX component SVNs, PCESVN, TDX component SVNs), as Intel's QVL
    orders them; of levels with identical SVNs the first one listed is kept."""

    def key(lv: TcbLevel) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
        return (lv.sgx_svns, lv.pce_svn, lv.tdx_svns or ())

    seen: set[tuple[tuple[int, ...], int, tuple[int, ...]]] = set()
    unique: list[TcbLevel] = []
    for lv in levels:
        k = key(lv)
        if k not in seen:
            seen.add(k)
            unique.append(lv)
    return tuple(sorted(unique, key=key, reverse=True))


def parse_tcb_info(body: bytes) -> TcbInfo:
    """Parse the signed ``tcbInfo`` JSON (v2 SGX, v3 SGX/TDX). Raises ValueError."""
    d = _load_json(body)
    try:
        version = _int(d["version"], 32, "version")
        if version not in (2, 3):
            raise _Malformed(f"tcbInfo version {version} is not supported (2 or 3)")
        tid = d["id"] if version >= 3 else "SGX"
        if tid not in ("SGX", "TDX"):
            raise _Malformed(f"tcbInfo id {tid!r} is not SGX or TDX")
        tdx = tid == "TDX"
        levels = [_tcb_level(lv, version, tdx) for lv in _list(d["tcbLevels"], "tcbLevels")]
        module = _module(d["tdxModule"], "tdxModule", False) if tdx else None
        identities = (
            tuple(
                _module(m, "tdxModuleIdentities[]", True)
                for m in _list(d["tdxModuleIdentities"], "tdxModuleIdentities")
            )
            if tdx and "tdxModuleIdentities" in d
            else None
        )
        return TcbInfo(
            tid,
            version,
            _time(d["issueDate"], "issueDate"),
            _time(d["nextUpdate"], "nextUpdate"),
            _hex(d["fmspc"], 6, "fmspc"),
            _hex(d["pceId"], 2, "pceId"),
            _int(d["tcbType"], 32, "tcbType"),
            _int(d["tcbEvaluationDataNumber"], 32, "tcbEvaluationDataNumber"),
            module,
            identities,
            _canonical_levels(levels),
        )
    except KeyError as e:
        raise _Malformed(f"tcbInfo: missing member {e}") from e
    except TypeError as e:
        raise _Malformed(f"tcbInfo: unexpected structure ({e})") from e


def parse_qe_identity(body: bytes) -> QeIdentity:
    """Parse the signed ``enclaveIdentity`` JSON (v2). Raises ValueError."""
    d = _load_json(body)
    try:
        levels = []
        for lv in _list(d["tcbLevels"], "tcbLevels"):
            isv = _int(_dict(_dict(lv, "TCB level")["tcb"], "tcb")["isvsvn"], 16, "isvsvn")
            levels.append(QeTcbLevel(isv, *_level_common(lv, QE_STATUSES)))
        levels.sort(key=_ISV_SVN, reverse=True)  # stable: ties keep their order
        return QeIdentity(
            _str(d["id"], "id"),
            _int(d["version"], 32, "version"),
            _time(d["issueDate"], "issueDate"),
            _time(d["nextUpdate"], "nextUpdate"),
            _int(d["tcbEvaluationDataNumber"], 32, "tcbEvaluationDataNumber"),
            # MISCSELECT is a little-endian u32 in the report; the hex is its byte string.
            int.from_bytes(_hex(d["miscselect"], 4, "miscselect"), "little"),
            int.from_bytes(_hex(d["miscselectMask"], 4, "miscselectMask"), "little"),
            _hex(d["attributes"], 16, "attributes"),
            _hex(d["attributesMask"], 16, "attributesMask"),
            _hex(d["mrsigner"], 32, "mrsigner"),
            _int(d["isvprodid"], 16, "isvprodid"),
            tuple(levels),
        )
    except KeyError as e:
        raise _Malformed(f"enclaveIdentity: missing member {e}") from e
    except TypeError as e:
        raise _Malformed(f"enclaveIdentity: unexpected structure ({e})") from e


# --- verification -------------------------------------------------------------------------

_LO = datetime.min.replace(tzinfo=UTC)
_HI = datetime.max.replace(tzinfo=UTC)
_TICK = timedelta(microseconds=1)
#: Parsed bodies by (kind, exact body). Parsing is deterministic, so no window.
_PARSED: WindowCache[TcbInfo | QeIdentity] = WindowCache("parsed-documents", 64)
#: Documents whose signature chain verified, by the exact (kind, body, signature, signing cert,
#: anchor, root CRL) -> (model, signing cert), window = document + signing cert + root CRL.
_VERIFIED: WindowCache[VerifiedDocument] = WindowCache("verified-documents", 64)


def _parse_cached(doc: Document, fmt: str, at: datetime) -> TcbInfo | QeIdentity:
    key = (doc.kind, doc.body)
    hit = _PARSED.get(key, at)
    if hit is not None:
        return hit
    try:
        model: TcbInfo | QeIdentity = (
            parse_tcb_info(doc.body)
            if doc.kind.endswith("tcb-info")
            else parse_qe_identity(doc.body)
        )
    except ValueError as e:
        raise VerificationError(f"{doc.kind}: {e}", code=f"{fmt}.collateral.malformed") from e
    _PARSED.put(key, model, _LO, _HI)
    return model


class VerifiedDocument(NamedTuple):
    """A verified document and the window in which that verification holds."""

    model: TcbInfo | QeIdentity
    signer_der: bytes
    not_before: datetime
    not_after: datetime


class _Signer(NamedTuple):
    cert: Cert
    key: ec.EllipticCurvePublicKey


def _signers(doc: Document, certificates: tuple[bytes, ...], root: Cert, fmt: str) -> list[_Signer]:
    """Candidate TCB signing certificates: the certificates of the document's own issuer
    chain if it has one, else of the collateral, that are issued by the anchor and named
    "Intel SGX TCB Signing" (the first of the issuer chain is tried even if it is not, so
    that a wrong signer is reported as such)."""
    ders = doc.issuer_chain or certificates
    if len(ders) > MAX_CANDIDATE_CERTIFICATES:
        raise VerificationError(
            f"{len(ders)} candidate signing certificates (at most {MAX_CANDIDATE_CERTIFICATES})",
            code=f"{fmt}.collateral.too_many",
        )
    out = []
    for der in ders:
        if der == root.der:
            continue
        cert = load_cert(der, fmt=fmt, what=f"{doc.kind} signing certificate", in_quote=False)
        if (doc.issuer_chain and der == doc.issuer_chain[0]) or (
            cert.issuer == root.subject and "SGX TCB Signing" in cert.common_name
        ):
            key = cert.public_key(what="TCB signing certificate", code=f"{fmt}.collateral.chain")
            out.append(_Signer(cert, key))
    return out


def _verify_document(
    doc: Document,
    certificates: tuple[bytes, ...],
    anchor: Anchor,
    root_crl: CrlInfo | None,
    at: datetime,
    fmt: str,
) -> VerifiedDocument:
    """Steps 1-4 for one document."""
    root = anchor_cert(anchor, fmt)
    signers = _signers(doc, certificates, root, fmt)
    if not signers:
        raise VerificationError(
            f"{doc.kind}: no TCB signing certificate (give its issuer chain, or the "
            "'Intel SGX TCB Signing' certificate in the collateral)",
            code=f"{fmt}.collateral.chain",
        )
    crl_der = root_crl.der if root_crl is not None else b""
    first_error: VerificationError | None = None
    for signer in signers:
        key = (doc.kind, doc.body, doc.signature, signer.cert.der, anchor.der, crl_der)
        hit = _VERIFIED.get(key, at)
        if hit is not None:
            return hit
        try:
            model = _verify_with(doc, signer, root, root_crl, at, fmt)
        except VerificationError as e:
            first_error = first_error or e
            continue
        nbs = [model.issue_date, signer.cert.not_before]
        nas = [model.next_update, signer.cert.not_after]
        if root_crl is not None:
            nbs.append(root_crl.this_update)
            nas.append(root_crl.next_update)
        verified = VerifiedDocument(model, signer.cert.der, max(nbs), min(nas))
        _VERIFIED.put(key, verified, verified.not_before, verified.not_after)
        return verified
    assert first_error is not None
    raise first_error


def _verify_with(
    doc: Document,
    signer: _Signer,
    root: Cert,
    root_crl: CrlInfo | None,
    at: datetime,
    fmt: str,
) -> TcbInfo | QeIdentity:
    what = doc.kind
    # 1. The signing certificate chains to the anchor, is current and not revoked.
    if "SGX TCB Signing" not in signer.cert.common_name:
        raise VerificationError(
            f"{what}: signing certificate {signer.cert.common_name!r} is not an "
            "Intel SGX TCB Signing certificate",
            code=f"{fmt}.collateral.chain",
        )
    root_key = root.public_key(what="root CA", code=f"{fmt}.collateral.chain")
    verify_issued_by(
        signer.cert,
        root,
        root_key,
        what=f"{what} signing certificate",
        code=f"{fmt}.collateral.chain",
        at=at,
    )
    check_validity(signer.cert, at, fmt=fmt, what=f"{what} signing certificate", area="collateral")
    if root_crl is not None and root_crl.is_revoked(signer.cert, fmt=fmt):
        raise VerificationError(
            f"{what}: the TCB signing certificate is revoked by the root CA CRL",
            code=f"{fmt}.collateral.revoked",
        )
    # 2. The signature over the exact body bytes.
    verify_raw_signature(
        signer.key, doc.signature, doc.body, what=what, code=f"{fmt}.collateral.signature"
    )
    # 3. The body parses.
    model = _parse_cached(doc, fmt, at)
    # 4. Its validity window.
    if at < model.issue_date:
        raise VerificationError(
            f"{what} is issued at {model.issue_date.isoformat()}, after the verification time "
            f"{at.isoformat()}",
            code=f"{fmt}.collateral.not_yet_valid",
        )
    if at > model.next_update:
        raise VerificationError(
            f"{what} expired at {model.next_update.isoformat()} (nextUpdate; verification time "
            f"{at.isoformat()})",
            code=f"{fmt}.collateral.expired",
        )
    return model


def select_document(
    documents: tuple[Document, ...],
    kind: str,
    certificates: tuple[bytes, ...],
    anchor: Anchor,
    root_crl: CrlInfo | None,
    at: datetime,
    *,
    fmt: str,
    fmspc: bytes | None = None,
    optional: bool = False,
) -> VerifiedDocument | None:
    """The verified document of ``kind`` (for TCB info: the one for ``fmspc``). Of several
    that verify and are current, the latest issued (then highest evaluation number) wins."""
    docs = [d for d in documents if d.kind == kind]
    if len(docs) > MAX_DOCUMENTS_PER_KIND:
        raise VerificationError(
            f"{len(docs)} {kind} documents in the collateral (at most {MAX_DOCUMENTS_PER_KIND})",
            code=f"{fmt}.collateral.too_many",
        )
    if not docs:
        if optional:
            return None
        raise VerificationError(
            f"no {kind} in the collateral",
            code=f"{fmt}.collateral.missing_{kind.split('-', 1)[1].replace('-', '_')}",
        )
    if fmspc is not None:
        matching = []
        parse_error: VerificationError | None = None
        for d in docs:
            try:
                m = _parse_cached(d, fmt, at)
            except VerificationError as e:
                parse_error = parse_error or e
                continue
            if isinstance(m, TcbInfo) and m.fmspc == fmspc:
                matching.append(d)
        if not matching:
            if parse_error is not None:
                raise parse_error
            raise VerificationError(
                f"no {kind} for FMSPC {fmspc.hex()} in the collateral",
                code=f"{fmt}.collateral.fmspc_mismatch",
            )
        docs = matching
    good: list[VerifiedDocument] = []
    first_error: VerificationError | None = None
    for d in docs:
        try:
            good.append(_verify_document(d, certificates, anchor, root_crl, at, fmt))
        except VerificationError as e:
            first_error = first_error or e
    if not good:
        assert first_error is not None
        raise first_error
    chosen = max(good, key=lambda v: (v.model.issue_date, v.model.tcb_evaluation_data_number))
    # The choice holds until a later-issued candidate becomes current (for caching by window).
    until = chosen.not_after
    others = docs if len(docs) > 1 else []  # a single document is the chosen one
    for d in others:
        try:
            issued = _parse_cached(d, fmt, at).issue_date
        except VerificationError:
            continue
        if issued > chosen.model.issue_date:
            until = min(until, issued - _TICK)
    return chosen._replace(not_after=until) if until != chosen.not_after else chosen
