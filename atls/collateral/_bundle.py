"""The collateral container (pure data) and content sniffing of one blob."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from atls.collateral._sniff import split_certificates, split_crls

__all__ = ["DOCUMENT_SNIFFERS", "Collateral", "Document", "collateral_from_bytes"]


@dataclass(frozen=True)
class Document:
    """A signed vendor document (e.g. Intel TCB info or QE identity).

    ``body`` is the exact signed byte string, ``signature`` the raw signature over it,
    ``issuer_chain`` the DER certificates of its signing chain (leaf first), if known.
    """

    kind: str
    body: bytes
    signature: bytes = b""
    issuer_chain: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Collateral:
    """Certificates (DER), CRLs (DER) and signed documents, deduplicated, order kept."""

    certificates: tuple[bytes, ...] = ()
    crls: tuple[bytes, ...] = ()
    documents: tuple[Document, ...] = ()
    sources: tuple[str, ...] = field(default=(), compare=False)

    def merged(self, *others: Collateral) -> Collateral:
        certs = list(self.certificates)
        crls = list(self.crls)
        docs = list(self.documents)
        sources = list(self.sources)
        for o in others:
            certs += [c for c in o.certificates if c not in certs]
            crls += [c for c in o.crls if c not in crls]
            docs += [d for d in o.documents if d not in docs]
            sources += list(o.sources)
        return Collateral(tuple(certs), tuple(crls), tuple(docs), tuple(sources))

    def documents_of(self, kind: str) -> tuple[Document, ...]:
        return tuple(d for d in self.documents if d.kind == kind)

    def __bool__(self) -> bool:
        return bool(self.certificates or self.crls or self.documents)


#: Platform packages register sniffers for their signed documents (JSON collateral...):
#: each takes the bytes of one file and returns the documents/certs/CRLs it found, or None.
DOCUMENT_SNIFFERS: list[Callable[[bytes], Collateral | None]] = []


def collateral_from_bytes(data: bytes, *, source: str = "") -> Collateral:
    """Sniff one blob: PEM/DER certificates and CRLs, or a registered document format."""
    for sniff in DOCUMENT_SNIFFERS:
        found = sniff(data)
        if found is not None:
            return Collateral(found.certificates, found.crls, found.documents, (source,))
    return Collateral(
        tuple(split_certificates(data)), tuple(split_crls(data)), (), (source,) if source else ()
    )
