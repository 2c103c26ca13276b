"""The whole atls exception tree.

::

    AtlsError
      AttestationError            the peer's evidence was rejected (catch this at the TLS edge)
        EvidenceParseError        malformed bytes: .format, .offset, .field
        UnsupportedEvidenceError  valid-looking but unsupported version/algorithm
        VerificationError         signature, chain, revocation, collateral, binding, replay
        PolicyError               authentic but not what was expected: .violations
      CollateralUnavailableError  could not obtain collateral (operational, not the peer's fault)
      AttesterError               the local side could not produce evidence
      HandshakeError              TLS failed for reasons other than attestation
      ConfigurationError          bad policy file or option combination (also a ValueError)

Every error has a stable ``code`` string (used in JSON output and by tests). Subclasses
set a default code; a raise site may give a more specific one (``snp.signature``,
``tdx.tcb.no_matching_level``...). Foreign exceptions are translated with ``raise ... from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AtlsError",
    "AttestationError",
    "AttesterError",
    "CollateralUnavailableError",
    "ConfigurationError",
    "EvidenceParseError",
    "HandshakeError",
    "PolicyError",
    "UnsupportedEvidenceError",
    "VerificationError",
    "Violation",
]


class AtlsError(Exception):
    """Base of every error atls raises on purpose."""

    default_code = "atls"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class AttestationError(AtlsError):
    """The peer's evidence was rejected."""

    default_code = "attestation"


class EvidenceParseError(AttestationError):
    """Malformed evidence bytes. ``offset`` is the byte offset where parsing failed."""

    default_code = "parse"

    def __init__(
        self,
        message: str,
        *,
        format: str,
        offset: int | None = None,
        field: str | None = None,
        code: str | None = None,
    ) -> None:
        where = []
        if field is not None:
            where.append(f"field {field}")
        if offset is not None:
            where.append(f"offset {offset:#x}")
        full = f"{format}: {message}" + (f" ({', '.join(where)})" if where else "")
        super().__init__(full, code=code or f"{format}.parse")
        self.format = format
        self.offset = offset
        self.field = field


class UnsupportedEvidenceError(AttestationError):
    """Well-formed but of a version, algorithm or kind atls does not support."""

    default_code = "unsupported"


class VerificationError(AttestationError):
    """A cryptographic or structural check failed (signature, chain, CRL, TCB, binding, replay)."""

    default_code = "verification"


@dataclass(frozen=True)
class Violation:
    """One policy rule that the verified claims did not satisfy."""

    rule: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.rule}: expected {self.expected}, got {self.actual}"


class PolicyError(AttestationError):
    """Authentic evidence that does not match the policy. Lists every violation."""

    default_code = "policy"

    def __init__(self, violations: Sequence[Violation], *, code: str | None = None) -> None:
        if not violations:
            raise ValueError("PolicyError needs at least one violation")
        self.violations = tuple(violations)
        msg = "; ".join(str(v) for v in self.violations)
        super().__init__(f"policy rejected the evidence: {msg}", code=code)


class CollateralUnavailableError(AtlsError):
    """Collateral could not be obtained (operational; not the peer's fault)."""

    default_code = "collateral.unavailable"


class AttesterError(AtlsError):
    """The local attester could not produce evidence."""

    default_code = "attester"


class HandshakeError(AtlsError):
    """TLS failed for a reason other than attestation (protocol error, peer closed, timeout)."""

    default_code = "handshake"


class ConfigurationError(AtlsError, ValueError):
    """A bad policy file, trust directory or option combination."""

    default_code = "configuration"
