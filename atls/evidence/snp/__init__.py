"""AMD SEV-SNP attestation reports: parsing and offline verification.

One evidence format, :data:`SNP_REPORT` (``"sev-snp-report"``, platform ``"snp"``): the raw
1184-byte ATTESTATION_REPORT of the SEV-SNP Firmware ABI, versions 2, 3 and 5, signed by a
VCEK or a VLEK (ECDSA P-384, SHA-384).

Collateral: the VCEK or VLEK certificate and the ASK or ASVK certificate
(``collateral.certificates``, DER), optionally the ARK's CRL (``collateral.crls``). The ARK
is ``trust.by_vendor("amd")``: a pinned AMD root (Milan, Genoa, Turin) or a simulated root
(:mod:`atls.testing.snp`) when the trust store allows simulated anchors.

Claims are the report's fields under the ABI specification's names (``measurement``,
``host_data``, ``reported_tcb`` ...), the guest policy bits (``policy_debug``,
``policy_migrate_ma``, ``policy_smt`` ...), ``product`` and ``signing_key``. The verifier
does not judge them: that is policy. See :mod:`atls.evidence.snp._verify` for the checklist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from atls.collateral._bundle import Collateral
from atls.errors import AttestationError
from atls.evidence._verified import Verified
from atls.evidence.snp._cache import DEFAULT_CACHE, ChainCache, VerifiedChain
from atls.evidence.snp._report import (
    PRODUCTS,
    REPORT_SIZE,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNATURE_OFFSET,
    SIGNED_SIZE,
    SIGNING_KEY_NAMES,
    SUPPORTED_VERSIONS,
    SnpReport,
    TcbVersion,
    decode_platform_info,
    decode_policy,
    parse_report,
    product_from_cpuid,
)
from atls.evidence.snp._verify import verify_report
from atls.evidence.snp._x509 import AMD_OID_ARC, AMD_OIDS, AmdCert, AmdCrl, parse_cert, parse_crl
from atls.trust import TrustStore

__all__ = [
    "AMD_OIDS",
    "AMD_OID_ARC",
    "DEFAULT_CACHE",
    "PRODUCTS",
    "REPORT_SIZE",
    "SIGNATURE_ALGO_ECDSA_P384_SHA384",
    "SIGNATURE_OFFSET",
    "SIGNED_SIZE",
    "SIGNING_KEY_NAMES",
    "SNP_REPORT",
    "SUPPORTED_VERSIONS",
    "AmdCert",
    "AmdCrl",
    "ChainCache",
    "SnpReport",
    "SnpReportFormat",
    "TcbVersion",
    "VerifiedChain",
    "collateral_inputs",
    "decode_platform_info",
    "decode_policy",
    "parse_cert",
    "parse_crl",
    "parse_report",
    "product_from_cpuid",
    "verify_report",
]


class SnpReportFormat:
    """The :class:`~atls.evidence.EvidenceFormat` of raw SEV-SNP attestation reports."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return "sev-snp-report"

    @property
    def platform(self) -> str:
        return "snp"

    def sniff(self, data: bytes) -> bool:
        """1184 bytes, VERSION 2..5, SIGNATURE_ALGO 1 and policy bit 17 (must be one) set."""
        if len(data) != REPORT_SIZE:
            return False
        version = int.from_bytes(data[0:4], "little")
        algo = int.from_bytes(data[0x34:0x38], "little")
        policy = int.from_bytes(data[0x08:0x10], "little")
        return (
            2 <= version <= 5
            and algo == SIGNATURE_ALGO_ECDSA_P384_SHA384
            and bool(policy >> 17 & 1)
        )

    def verify(
        self,
        evidence: bytes,
        *,
        trust: TrustStore,
        collateral: Collateral,
        at: datetime,
        product: str | None = None,
        cache: ChainCache | None = DEFAULT_CACHE,
    ) -> Verified:
        """Parse and verify ``evidence`` at ``at``; see :func:`verify_report`."""
        return verify_report(
            evidence,  # parsed once, inside verify_report
            trust=trust,
            collateral=collateral,
            at=at,
            product=product,
            cache=cache,
        )

    def __repr__(self) -> str:
        return "SnpReportFormat('sev-snp-report')"


SNP_REPORT = SnpReportFormat()


def collateral_inputs(evidence: bytes) -> dict[str, Any] | None:
    """What a collateral fetcher needs for a report (read from the unverified report):
    ``{"product": "Milan"|"Genoa"|"Turin"|None, "signing_key": "vcek"|"vlek"|"none",
    "chip_id": hex, "reported_tcb": {...} or None, "reported_tcb_raw": hex}``; the product
    (hence the decoded TCB) is None for version 2 reports, which do not name it. None if
    ``evidence`` is not an SNP report."""
    try:
        r = parse_report(evidence)
    except AttestationError:
        return None
    product = r.cpuid_product
    return {
        "product": product,
        "signing_key": r.signing_key_name,
        "chip_id": r.chip_id.hex(),
        "reported_tcb": None if product is None else r.tcb("reported_tcb", product).as_dict(),
        "reported_tcb_raw": r.reported_tcb.to_bytes(8, "little").hex(),
    }
