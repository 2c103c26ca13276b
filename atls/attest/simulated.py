"""The simulated attester: real-format evidence signed by the fake vendor hierarchies of
:mod:`atls.testing`. Never trusted by a client without ``allow_simulated=True``.
"""

from __future__ import annotations

from typing import Any, Literal

from atls.collateral._bundle import Collateral
from atls.trust import TrustStore

__all__ = ["SimulatedAttester"]

Platform = Literal["snp", "tdx"]


class SimulatedAttester:
    """Evidence from a simulated TEE. ``knobs`` go to the fake hierarchy's report/quote
    builder (``measurement=``, ``debug=`` ...), which is how tests build negative cases."""

    def __init__(self, platform: Platform = "snp", *, hierarchy: Any = None, **knobs: Any) -> None:
        if platform == "snp":
            if hierarchy is None:
                from atls.testing.snp import FakeAmd

                hierarchy = FakeAmd()
            self.format_name = "sev-snp-report"
        elif platform == "tdx":
            if hierarchy is None:
                from atls.testing.tdx import FakeIntel

                hierarchy = FakeIntel()
            self.format_name = "tdx-quote"
        else:
            raise ValueError(f"no simulated platform {platform!r} (snp, tdx)")
        self.platform = platform
        self.hierarchy = hierarchy
        self.knobs = knobs
        self.generated = 0

    def attest(self, report_data: bytes) -> bytes:
        self.generated += 1
        if self.platform == "snp":
            return bytes(self.hierarchy.report(report_data, **self.knobs))
        return bytes(self.hierarchy.quote(report_data, **self.knobs))

    def collateral(self) -> Collateral:
        c = self.hierarchy.collateral()
        assert isinstance(c, Collateral)
        return c

    def trust_store(self) -> TrustStore:
        """The simulated roots (``allow_simulated=True``) a client needs to verify this."""
        t = self.hierarchy.trust_store()
        assert isinstance(t, TrustStore)
        return t
