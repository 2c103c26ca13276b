"""What evidence is: parsers and cryptographic verifiers, one package per platform.

Pure code: no I/O, no TLS, no clock. Verifiers take trust anchors, collateral and the
verification time as arguments and return :class:`Verified`.
"""

from atls.evidence._format import EvidenceFormat
from atls.evidence._verified import Verified

__all__ = ["EvidenceFormat", "Verified"]
