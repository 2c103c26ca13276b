"""Intel PCS v4 / PCCS requests and the parsing of their answers (pure; no I/O).

Endpoints (``{base}`` is the PCS or PCCS base URL, ``{tee}`` is ``sgx`` or ``tdx``):

====================================================  =======================================
``{base}/sgx/certification/v4/pckcrl?ca={platform|processor}&encoding=der``
                                                      PCK CRL; ``SGX-PCK-CRL-Issuer-Chain``
``{base}/{tee}/certification/v4/tcb?fmspc={FMSPC}``   TCB info; ``TCB-Info-Issuer-Chain``
                                                      (v3 name: ``SGX-TCB-Info-Issuer-Chain``)
``{base}/{tee}/certification/v4/qe/identity``         QE identity;
                                                      ``SGX-Enclave-Identity-Issuer-Chain``
``{base}/sgx/certification/v4/rootcacrl``             root CA CRL (PCCS only; DER or hex)
``https://certificates.trustedservices.intel.com/IntelSGXRootCA.der``
                                                      root CA CRL (Intel PCS: the CRL
                                                      distribution point of the root CA)
====================================================  =======================================

Issuer-chain headers are URL-encoded PEM. TCB info and QE identity bodies are
``{"tcbInfo"|"enclaveIdentity": {...}, "signature": "<hex r||s>"}``.
"""

from __future__ import annotations

import datetime as _dt
import json
import urllib.parse
from typing import Any

from atls.collateral import Collateral
from atls.collateral.fetch._http import HttpResult
from atls.collateral.fetch._pcs_json import PcsJsonError, document_from_pcs_body
from atls.collateral.fetch._spec import (
    Piece,
    Spec,
    check_content_type,
    crl_from_body,
    issuer_chain_from_header,
    malformed,
    mismatch,
    window,
)
from atls.errors import ConfigurationError

__all__ = [
    "INTEL_PCS_URL",
    "INTEL_ROOT_CA_CRL_URL",
    "INTEL_ROOT_CA_URL",
    "intel_base",
    "norm_ca",
    "norm_fmspc",
    "norm_pce_id",
    "norm_tee",
    "pck_crl_spec",
    "qe_identity_spec",
    "root_ca_crl_spec",
    "tcb_info_spec",
]

INTEL_PCS_URL = "https://api.trustedservices.intel.com"
#: CRL distribution point named in the Intel SGX Root CA certificate.
INTEL_ROOT_CA_CRL_URL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
#: Where Intel publishes the Intel SGX Root CA certificate itself.
INTEL_ROOT_CA_URL = (
    "https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.pem"
)

_JSON_TYPES = ("application/json",)
_PCK_CRL_TYPES = ("application/pkix-crl", "application/x-pem-file", "application/octet-stream", "")
# A PCCS sends the root CA CRL as a hex string through Express's res.send(), which labels
# it text/html; the Intel CDP serves DER.
_ROOT_CRL_TYPES = (
    "application/pkix-crl",
    "application/octet-stream",
    "application/x-pkcs7-crl",
    "text/plain",
    "text/html",
    "",
)
_TCB_CHAIN_HEADERS = ("TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain")
_QE_CHAIN_HEADERS = ("SGX-Enclave-Identity-Issuer-Chain",)
_CRL_CHAIN_HEADERS = ("SGX-PCK-CRL-Issuer-Chain",)


def intel_base(url: str | None) -> str:
    """Normalise a PCS/PCCS base URL (a trailing ``/{sgx,tdx}/certification/v4`` is dropped)."""
    base = (url or INTEL_PCS_URL).strip().rstrip("/")
    for suffix in ("/sgx/certification/v4", "/tdx/certification/v4"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise ConfigurationError(f"PCS/PCCS URL {url!r} is not an http(s) URL", code="usage.url")
    return base


def is_intel_pcs(base: str) -> bool:
    return urllib.parse.urlsplit(base).hostname == urllib.parse.urlsplit(INTEL_PCS_URL).hostname


def norm_tee(tee: str) -> str:
    t = tee.lower()
    if t not in ("tdx", "sgx"):
        raise ConfigurationError(f"tee must be 'tdx' or 'sgx', not {tee!r}", code="usage.tee")
    return t


def norm_ca(ca: str) -> str:
    c = ca.lower()
    for known in ("platform", "processor"):
        # also accept the PCK issuer CN ("Intel SGX PCK Platform CA")
        if c == known or c == f"intel sgx pck {known} ca":
            return known
    raise ConfigurationError(
        f"ca must be 'platform' or 'processor', not {ca!r}", code="usage.pck_ca"
    )


def norm_fmspc(fmspc: str | bytes) -> str:
    if isinstance(fmspc, bytes | bytearray):
        if len(fmspc) != 6:
            raise ConfigurationError("FMSPC must be 6 bytes", code="usage.fmspc")
        return bytes(fmspc).hex()
    f = fmspc.strip().lower()
    if len(f) != 12 or any(c not in "0123456789abcdef" for c in f):
        raise ConfigurationError(f"FMSPC {fmspc!r} is not 12 hex digits", code="usage.fmspc")
    return f


def norm_pce_id(pce_id: str | bytes | None) -> str | None:
    if pce_id is None:
        return None
    if isinstance(pce_id, bytes | bytearray):
        if len(pce_id) != 2:
            raise ConfigurationError("PCE-ID must be 2 bytes", code="usage.pce_id")
        return bytes(pce_id).hex()
    p = pce_id.strip().lower()
    if len(p) != 4 or any(c not in "0123456789abcdef" for c in p):
        raise ConfigurationError(f"PCE-ID {pce_id!r} is not 4 hex digits", code="usage.pce_id")
    return p


def _update_query(update: str | None) -> str:
    if update is None:
        return ""
    if update not in ("standard", "early"):
        raise ConfigurationError("update must be 'standard' or 'early'", code="usage.update")
    return f"update={update}"


def _intel_time(v: Any, res: HttpResult, what: str, name: str) -> _dt.datetime:
    if not isinstance(v, str):
        raise malformed(res, what, f"{name} missing or not a string")
    try:
        t = _dt.datetime.fromisoformat(v)
    except ValueError as e:
        raise malformed(res, what, f"{name} {v!r} is not an ISO 8601 time") from e
    if t.tzinfo is None:
        raise malformed(res, what, f"{name} {v!r} has no time zone")
    return t


def _signed_document(
    res: HttpResult, what: str, *, kind: str, field: str, chain_headers: tuple[str, ...]
) -> tuple[Collateral, dict[str, Any], list[Any]]:
    check_content_type(res, what, _JSON_TYPES)
    chain, infos = issuer_chain_from_header(res, what, chain_headers)
    try:
        doc = document_from_pcs_body(res.body, kind=kind, field=field, issuer_chain=chain)
        inner = json.loads(doc.body)
    except PcsJsonError as e:
        if e.wrong_kind:
            raise mismatch(res, what, str(e)) from e
        raise malformed(res, what, str(e)) from e
    except ValueError as e:
        raise malformed(res, what, str(e)) from e
    if not isinstance(inner, dict):
        raise malformed(res, what, f"{field} is not an object")
    return Collateral(certificates=chain, documents=(doc,)), inner, infos


def tcb_info_spec(
    base: str, *, tee: str, fmspc: str, pce_id: str | None = None, update: str | None = None
) -> Spec:
    q = "&".join(x for x in (f"fmspc={fmspc.upper()}", _update_query(update)) if x)
    url = f"{base}/{tee}/certification/v4/tcb?{q}"
    what = f"{tee.upper()} TCB info for FMSPC {fmspc}"
    kind = f"{tee}-tcb-info"

    def parse(res: HttpResult) -> Piece:
        coll, info, chain = _signed_document(
            res, what, kind=kind, field="tcbInfo", chain_headers=_TCB_CHAIN_HEADERS
        )
        # The answer must be the document that was asked for.
        got_fmspc = info.get("fmspc")
        if not isinstance(got_fmspc, str) or got_fmspc.lower() != fmspc:
            raise mismatch(res, what, f"answer is for FMSPC {got_fmspc!r}")
        if pce_id is not None and str(info.get("pceId", "")).lower() != pce_id:
            raise mismatch(res, what, f"answer is for PCE-ID {info.get('pceId')!r}")
        tid = info.get("id")
        if tid is not None and tid != tee.upper():
            raise mismatch(res, what, f"answer is TCB info of id {tid!r}")
        if tid is None and tee == "tdx":
            raise mismatch(res, what, "TDX TCB info without id")
        issue = _intel_time(info.get("issueDate"), res, what, "issueDate")
        nxt = _intel_time(info.get("nextUpdate"), res, what, "nextUpdate")
        nb, na = window(
            res,
            not_before=[issue, *(c.not_before for c in chain)],
            not_after=[nxt, *(c.not_after for c in chain)],
        )
        return Piece(coll, na, nb)

    return Spec(url, what, parse)


def qe_identity_spec(base: str, *, tee: str, update: str | None = None) -> Spec:
    q = _update_query(update)
    url = f"{base}/{tee}/certification/v4/qe/identity" + (f"?{q}" if q else "")
    what = f"{tee.upper()} QE identity"
    kind = f"{tee}-qe-identity"
    expected_id = "TD_QE" if tee == "tdx" else "QE"

    def parse(res: HttpResult) -> Piece:
        coll, info, chain = _signed_document(
            res, what, kind=kind, field="enclaveIdentity", chain_headers=_QE_CHAIN_HEADERS
        )
        eid = info.get("id")
        if eid is not None and eid != expected_id:
            raise mismatch(res, what, f"answer is the identity of {eid!r}, not {expected_id!r}")
        issue = _intel_time(info.get("issueDate"), res, what, "issueDate")
        nxt = _intel_time(info.get("nextUpdate"), res, what, "nextUpdate")
        nb, na = window(
            res,
            not_before=[issue, *(c.not_before for c in chain)],
            not_after=[nxt, *(c.not_after for c in chain)],
        )
        return Piece(coll, na, nb)

    return Spec(url, what, parse)


def pck_crl_spec(base: str, *, ca: str) -> Spec:
    url = f"{base}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"
    what = f"PCK {ca.capitalize()} CA CRL"

    def parse(res: HttpResult) -> Piece:
        check_content_type(res, what, _PCK_CRL_TYPES)
        chain, infos = issuer_chain_from_header(res, what, _CRL_CHAIN_HEADERS)
        crl = crl_from_body(res, what)
        if crl.issuer != infos[0].subject:
            raise mismatch(
                res,
                what,
                f"CRL issuer {crl.issuer_cn!r} is not the chain's {infos[0].subject_cn!r}",
            )
        if ca not in crl.issuer_cn.lower():
            raise mismatch(res, what, f"CRL issued by {crl.issuer_cn!r}")
        nb, na = window(
            res,
            not_before=[crl.this_update, *(c.not_before for c in infos)],
            not_after=[crl.next_update, *(c.not_after for c in infos)],
        )
        return Piece(Collateral(certificates=chain, crls=(crl.der,)), na, nb)

    return Spec(url, what, parse)


def root_ca_crl_spec(base: str, *, url: str | None = None) -> Spec:
    """The Intel SGX Root CA CRL: from ``url`` if given, else from the PCCS
    (``/sgx/certification/v4/rootcacrl``), or from Intel's CDP when ``base`` is Intel's PCS."""
    if url is None:
        url = (
            INTEL_ROOT_CA_CRL_URL
            if is_intel_pcs(base)
            else f"{base}/sgx/certification/v4/rootcacrl"
        )
    what = "Intel SGX Root CA CRL"

    def parse(res: HttpResult) -> Piece:
        check_content_type(res, what, _ROOT_CRL_TYPES)
        crl = crl_from_body(res, what)
        # a sanity check against a wrong answer, not trust (the verifier checks the
        # signature): the simulated hierarchy of atls.testing names its root
        # "atls simulated Intel SGX Root CA"
        if not crl.issuer_cn.endswith("Intel SGX Root CA"):
            raise mismatch(res, what, f"CRL issued by {crl.issuer_cn!r}")
        nb, na = window(res, not_before=[crl.this_update], not_after=[crl.next_update])
        return Piece(Collateral(crls=(crl.der,)), na, nb)

    return Spec(url, what, parse)
