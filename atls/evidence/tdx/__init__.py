"""Intel TDX and SGX DCAP quotes: parsing and offline verification.

Two evidence formats share one verifier (they differ in body and collateral kinds):

* :data:`TDX_QUOTE` - ``"tdx-quote"``, platform ``"tdx"``: quote v4 (TD 1.0) and v5
  (TD 1.0 / TD 1.5), collateral documents ``tdx-tcb-info`` and ``tdx-qe-identity``.
* :data:`SGX_QUOTE` - ``"sgx-quote"``, platform ``"sgx"``: quote v3, collateral documents
  ``sgx-tcb-info`` and ``sgx-qe-identity``.

Collateral: the TCB info and QE identity documents (exact signed JSON, raw r||s signature,
issuer chain or the TCB signing certificate among ``collateral.certificates``), the root CA
CRL and the PCK CRL (``collateral.crls``). The PCK chain comes from the quote. The Intel root
is ``trust.by_vendor("intel")``: the pinned Intel SGX Root CA, or a simulated root
(:mod:`atls.testing.tdx`) when the trust store allows simulated anchors.

The verifier returns Intel's TCB status and advisory IDs; it does not decide whether a status
is acceptable (that is policy). See :mod:`atls.evidence.tdx._verify` for the checklist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import atls.collateral.intel  # noqa: F401  (registers the Intel collateral file sniffers)
from atls.collateral._bundle import Collateral
from atls.errors import AttestationError
from atls.evidence._verified import Verified
from atls.evidence.tdx._collateral import QeIdentity, TcbInfo, parse_qe_identity, parse_tcb_info
from atls.evidence.tdx._der import encode_oid
from atls.evidence.tdx._pck import SGX_EXTENSION_OID, SgxExtension, parse_sgx_extension
from atls.evidence.tdx._quote import (
    HEADER_SIZE,
    INTEL_QE_VENDOR_ID,
    MAX_QUOTE_SIZE,
    TEE_TYPE_SGX,
    TEE_TYPE_TDX,
    EnclaveReport,
    Quote,
    QuoteHeader,
    TdReport,
    parse_pem_chain,
    parse_quote,
)
from atls.evidence.tdx._verify import clear_caches, verify_dcap_quote
from atls.evidence.tdx._x509 import load_cert
from atls.trust import TrustStore

__all__ = [
    "INTEL_QE_VENDOR_ID",
    "MAX_QUOTE_SIZE",
    "SGX_EXTENSION_OID",
    "SGX_QUOTE",
    "TDX_QUOTE",
    "DcapQuoteFormat",
    "EnclaveReport",
    "QeIdentity",
    "Quote",
    "QuoteHeader",
    "SgxExtension",
    "TcbInfo",
    "TdReport",
    "clear_caches",
    "collateral_inputs",
    "parse_pem_chain",
    "parse_qe_identity",
    "parse_quote",
    "parse_sgx_extension",
    "parse_tcb_info",
    "verify_dcap_quote",
]


class DcapQuoteFormat:
    """An :class:`~atls.evidence.EvidenceFormat` for one TEE type of DCAP quote."""

    __slots__ = ("_name", "_platform", "_tee_type")

    def __init__(self, name: str, platform: str, tee_type: int) -> None:
        self._name = name
        self._platform = platform
        self._tee_type = tee_type

    @property
    def name(self) -> str:
        return self._name

    @property
    def platform(self) -> str:
        return self._platform

    def sniff(self, data: bytes) -> bool:
        """A DCAP quote header of this TEE type with an ECDSA-256 attestation key."""
        if len(data) < HEADER_SIZE:
            return False
        version = int.from_bytes(data[0:2], "little")
        key_type = int.from_bytes(data[2:4], "little")
        tee = int.from_bytes(data[4:8], "little")
        if tee != self._tee_type or key_type != 2:
            return False
        return version == 3 if self._tee_type == TEE_TYPE_SGX else version in (4, 5)

    def verify(
        self,
        evidence: bytes,
        *,
        trust: TrustStore,
        collateral: Collateral,
        at: datetime,
        allow_missing_collateral: bool = False,
    ) -> Verified:
        """Verify ``evidence`` at ``at`` (timezone-aware).

        ``allow_missing_collateral=True`` (dangerous) accepts a quote whose TCB info, QE
        identity or CRLs are absent: the quote, QE report and PCK chain are still verified,
        the missing steps are listed in ``Verified.unchecked`` and ``tcb_status`` is None.
        Collateral that *is* given is always checked.
        """
        return verify_dcap_quote(
            evidence,
            trust=trust,
            collateral=collateral,
            at=at,
            tee_type=self._tee_type,
            allow_missing_collateral=allow_missing_collateral,
        )

    def __repr__(self) -> str:
        return f"DcapQuoteFormat({self._name!r})"


TDX_QUOTE = DcapQuoteFormat("tdx-quote", "tdx", TEE_TYPE_TDX)
SGX_QUOTE = DcapQuoteFormat("sgx-quote", "sgx", TEE_TYPE_SGX)


def collateral_inputs(evidence: bytes) -> dict[str, Any] | None:
    """What a collateral fetcher needs for a quote, read from its PCK certificate (not
    verified): ``{"tee": "tdx"|"sgx", "fmspc": hex, "ca": "platform"|"processor",
    "pce_id": hex}``; None if ``evidence`` is not a DCAP quote with a PEM PCK chain."""
    try:
        quote = parse_quote(evidence)
        fmt = "tdx" if quote.is_tdx else "sgx"
        ders = parse_pem_chain(quote.cert_data, fmt=fmt)
        if len(ders) < 2:
            return None
        pck = load_cert(ders[0], fmt=fmt, what="PCK certificate", in_quote=True)
        ca = load_cert(ders[1], fmt=fmt, what="PCK CA certificate", in_quote=True)
        ext = pck.extension(encode_oid(SGX_EXTENSION_OID))
        if ext is None:
            return None
        sgx = parse_sgx_extension(ext)
    except (AttestationError, ValueError):
        return None
    return {
        "tee": "tdx" if quote.is_tdx else "sgx",
        "fmspc": sgx.fmspc.hex(),
        "ca": "processor" if "Processor" in ca.common_name else "platform",
        "pce_id": sgx.pce_id.hex(),
    }
