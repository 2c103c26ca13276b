"""atls: attested TLS for Python.

The curated public API. Everything else is reachable through its subpackage
(``atls.tls.trio``, ``atls.tls.sync``, ``atls.testing``, ``atls.interop`` ...); names that
start with an underscore are private.
"""

from atls.collateral import Collateral, Document, load_collateral
from atls.errors import (
    AtlsError,
    AttestationError,
    AttesterError,
    CollateralUnavailableError,
    ConfigurationError,
    EvidenceParseError,
    HandshakeError,
    PolicyError,
    UnsupportedEvidenceError,
    VerificationError,
    Violation,
)
from atls.evidence import Verified
from atls.pipeline import AttestationVerifier, Verdict, judge
from atls.policy import Accepted, Policy, load_policy, parse_policy
from atls.tls import AttestedCredentials
from atls.trust import TrustStore
from atls.x509ext import issue_attested_cert

__version__ = "0.1.0"

__all__ = [
    "Accepted",
    "AtlsError",
    "AttestationError",
    "AttestationVerifier",
    "AttestedCredentials",
    "AttesterError",
    "Collateral",
    "CollateralUnavailableError",
    "ConfigurationError",
    "Document",
    "EvidenceParseError",
    "HandshakeError",
    "Policy",
    "PolicyError",
    "TrustStore",
    "UnsupportedEvidenceError",
    "VerificationError",
    "Verdict",
    "Verified",
    "Violation",
    "issue_attested_cert",
    "judge",
    "load_collateral",
    "load_policy",
    "parse_policy",
]
