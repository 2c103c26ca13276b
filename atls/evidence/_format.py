"""The interface every evidence format implements (one object per format, no subclassing)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from atls.collateral._bundle import Collateral
from atls.evidence._verified import Verified
from atls.trust._store import TrustStore

__all__ = ["EvidenceFormat"]


class EvidenceFormat(Protocol):
    """A named evidence format.

    ``name`` is what the certificate extension carries (e.g. ``"sev-snp-report"``);
    ``platform`` is the policy section that judges it (``"snp"``, ``"tdx"``, ``"sgx"``,
    ``"tpm"``).
    """

    @property
    def name(self) -> str: ...

    @property
    def platform(self) -> str: ...

    def sniff(self, data: bytes) -> bool:
        """True if ``data`` looks like this format (cheap; used by ``--platform auto``)."""
        ...

    def verify(
        self, evidence: bytes, *, trust: TrustStore, collateral: Collateral, at: datetime
    ) -> Verified:
        """Parse and verify; raise EvidenceParseError / VerificationError / ..."""
        ...
