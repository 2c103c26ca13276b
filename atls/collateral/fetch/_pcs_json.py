"""Turn an Intel PCS JSON response body into a :class:`~atls.collateral.Document`.

The extraction itself (cutting the exact signed bytes of ``"tcbInfo"`` /
``"enclaveIdentity"`` out of the body by their byte span) lives in
:func:`atls.collateral.intel.document_from_pcs_body`; this wrapper only adds the check that
the document is of the kind that was asked for.
"""

from __future__ import annotations

from atls.collateral import Document
from atls.collateral.intel import document_from_pcs_body as _intel_document_from_pcs_body
from atls.errors import ConfigurationError

__all__ = ["PcsJsonError", "document_from_pcs_body"]


class PcsJsonError(ValueError):
    """The body is not a PCS signed-document response, or not of the expected kind."""

    def __init__(self, message: str, *, wrong_kind: bool = False) -> None:
        super().__init__(message)
        self.wrong_kind = wrong_kind


def document_from_pcs_body(
    body: bytes, *, kind: str, field: str, issuer_chain: tuple[bytes, ...] = ()
) -> Document:
    """The signed document in ``{"<field>": {...}, "signature": "<hex>"}``, which must be a
    ``kind`` document (by its own ``id``). Raises :class:`PcsJsonError` otherwise."""
    try:
        doc = _intel_document_from_pcs_body(body, field=field, issuer_chain=issuer_chain)
    except ConfigurationError as e:
        raise PcsJsonError(e.message) from e
    if doc.kind != kind:
        raise PcsJsonError(f"expected a {kind} document, found {doc.kind}", wrong_kind=True)
    return doc
