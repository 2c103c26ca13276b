"""Collateral: the certificates, CRLs and signed documents a verifier needs besides evidence.

:class:`Collateral` is plain data handed to verifiers. :func:`load_collateral` (files and
directories, sniffed by content) and the fetchers are the I/O edge; verifiers never call them.
"""

from atls.collateral._bundle import Collateral, Document, collateral_from_bytes
from atls.collateral._files import load_collateral

__all__ = ["Collateral", "Document", "collateral_from_bytes", "load_collateral"]
