"""What to fetch for a piece of evidence (the inputs come from the platform parsers).

A TDX/SGX quote needs FMSPC, PCE-ID and PCK CA type from its PCK certificate; an SNP report
needs product, CHIP_ID and REPORTED_TCB. The parsing belongs to ``atls.evidence.tdx`` and
``atls.evidence.snp``; this module only asks them, and says so when they are not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from atls.collateral.fetch._amd import SnpTcb
from atls.collateral.fetch._spec import Spec
from atls.errors import UnsupportedEvidenceError

if TYPE_CHECKING:
    from atls.collateral.fetch._client import _FetcherBase

__all__ = ["EXTRACTORS", "AmdRequest", "IntelRequest", "plan_for_evidence", "request_for_evidence"]


@dataclass(frozen=True)
class IntelRequest:
    """Collateral inputs of a TDX or SGX quote."""

    tee: str
    fmspc: str
    ca: str
    pce_id: str | None = None


@dataclass(frozen=True)
class AmdRequest:
    """Collateral inputs of an SNP report. ``key`` is "vcek" or "vlek" (who signed it)."""

    product: str
    chip_id: bytes
    tcb: SnpTcb
    key: str = "vcek"


Extractor = Callable[[bytes], IntelRequest | AmdRequest | None]


def _dcap_quote(evidence: bytes) -> IntelRequest | None:
    """A TDX/SGX DCAP quote, through ``atls.evidence.tdx.collateral_inputs``."""
    try:
        from atls.evidence.tdx import collateral_inputs
    except ModuleNotFoundError as e:
        if e.name in ("atls.evidence.tdx", "atls.evidence"):
            return None
        raise
    got = collateral_inputs(evidence)
    if got is None:
        return None
    return IntelRequest(
        tee=str(got["tee"]),
        fmspc=str(got["fmspc"]),
        ca=str(got["ca"]),
        pce_id=None if got.get("pce_id") is None else str(got["pce_id"]),
    )


def _snp_report(evidence: bytes) -> AmdRequest | None:
    """An SEV-SNP report, through ``atls.evidence.snp.collateral_inputs``."""
    try:
        from atls.evidence.snp import collateral_inputs
    except ModuleNotFoundError as e:
        if e.name in ("atls.evidence.snp", "atls.evidence"):
            return None
        raise
    got = collateral_inputs(evidence)
    if got is None:
        return None
    product = got.get("product")
    if product is None:
        raise UnsupportedEvidenceError(
            "this SNP report (version 2) does not name its product (Milan, Genoa, Turin); "
            "give the product explicitly",
            code="collateral.snp_product_unknown",
        )
    key = str(got.get("signing_key"))
    if key not in ("vcek", "vlek"):
        raise UnsupportedEvidenceError(
            f"this SNP report is signed by {key!r}, for which KDS has no certificates",
            code="collateral.snp_signing_key",
        )
    tcb = SnpTcb.from_bytes(bytes.fromhex(str(got["reported_tcb_raw"])), str(product))
    return AmdRequest(
        product=str(product), chip_id=bytes.fromhex(str(got["chip_id"])), tcb=tcb, key=key
    )


#: Functions that recognise evidence and return what to fetch for it (None: not mine).
EXTRACTORS: list[Extractor] = [_dcap_quote, _snp_report]


def request_for_evidence(evidence: bytes) -> IntelRequest | AmdRequest:
    """Ask each registered extractor; raise :class:`UnsupportedEvidenceError` if none knows."""
    for extract in EXTRACTORS:
        found = extract(evidence)
        if found is not None:
            return found
    raise UnsupportedEvidenceError(
        "cannot tell what collateral this evidence needs: no TDX/SGX quote or SNP report "
        "parser recognised it (pass FMSPC/CA or product/chip ID/TCB explicitly)",
        code="collateral.unknown_evidence",
    )


def plan_for_evidence(fetcher: _FetcherBase, evidence: bytes) -> list[Spec]:
    req = request_for_evidence(evidence)
    if isinstance(req, IntelRequest):
        return fetcher.plan_intel(
            fmspc=req.fmspc, ca=req.ca, tee=req.tee, pce_id=req.pce_id, update=None
        )
    if req.key == "vlek":
        # the VLEK itself comes with the evidence (from the host), not from KDS
        return fetcher.plan_amd(product=req.product, chip_id=None, tcb=None, key="vlek")
    return fetcher.plan_amd(product=req.product, chip_id=req.chip_id, tcb=req.tcb, key=req.key)
