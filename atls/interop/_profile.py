"""Shared machinery for foreign certificate profiles: verify the platform evidence through the
normal format registry, then check the profile's own binding formula on the signed field."""

from __future__ import annotations

import datetime as _dt
import hmac
from collections.abc import Mapping

from atls.collateral import Collateral
from atls.errors import UnsupportedEvidenceError, VerificationError
from atls.evidence import EvidenceFormat, Verified
from atls.pipeline import ParsedCertificate, builtin_formats, verify_evidence
from atls.trust import TrustStore

__all__ = ["ProfileBase"]


class ProfileBase:
    """Holds what every profile verifier needs; subclasses only add their extraction and
    binding rules (composition by data: the platform verifiers stay untouched)."""

    def __init__(
        self,
        *,
        policy: object,
        trust: TrustStore,
        collateral: Collateral | None = None,
        formats: Mapping[str, EvidenceFormat] | None = None,
        allow_simulated: bool = False,
    ) -> None:
        from atls.policy import Policy

        if not isinstance(policy, Policy):
            raise TypeError("policy must be an atls.policy.Policy")
        self.policy = policy
        self.trust = trust
        self.collateral = collateral or Collateral()
        self.formats = dict(formats) if formats is not None else builtin_formats()
        self.allow_simulated = allow_simulated

    def _verify(
        self, fmt_name: str, evidence: bytes, *, at: _dt.datetime, extra: Collateral | None = None
    ) -> Verified:
        fmt = self.formats.get(fmt_name)
        if fmt is None:
            raise UnsupportedEvidenceError(
                f"evidence format {fmt_name} unavailable", code="evidence.format"
            )
        coll = self.collateral.merged(extra) if extra else self.collateral
        return verify_evidence(
            fmt,
            evidence,
            trust=self.trust,
            collateral=coll,
            at=at,
            allow_simulated=self.allow_simulated,
        )

    @staticmethod
    def _check_validity(parsed: ParsedCertificate, at: _dt.datetime) -> None:
        c = parsed.certificate
        if not c.not_valid_before_utc <= at <= c.not_valid_after_utc:
            raise VerificationError(
                f"certificate not valid at {at.isoformat()}", code="cert.validity"
            )

    @staticmethod
    def _require_equal(actual: bytes, expected: bytes, code: str, what: str) -> None:
        if len(actual) != len(expected) or not hmac.compare_digest(actual, expected):
            raise VerificationError(
                f"{what} does not match the evidence's signed report data", code=code
            )
