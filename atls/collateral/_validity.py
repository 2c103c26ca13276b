"""Validity windows of collateral items (pure; no I/O, no clock).

Used by the server to know when its stapled collateral must be refreshed: the earliest of
certificate ``notAfter``, CRL ``nextUpdate`` and signed-document ``nextUpdate`` (Intel TCB
info, QE identity) including the documents' issuer chains. Nothing here checks a signature:
verifiers do that. Items that cannot be parsed are skipped (a verifier rejects them).

asn1crypto is used rather than cryptography because AMD VCEKs carry serial number 0.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

from asn1crypto import crl as _crl
from asn1crypto import x509 as _x509

from atls.collateral._bundle import Collateral

__all__ = ["ItemWindow", "collateral_expiry", "collateral_windows"]

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


@dataclass(frozen=True)
class ItemWindow:
    """One item's validity: ``kind`` is "certificate", "crl" or the document kind."""

    kind: str
    not_before: _dt.datetime | None
    not_after: _dt.datetime | None


def _utc(v: Any) -> _dt.datetime | None:
    if not isinstance(v, _dt.datetime):
        return None
    return v if v.tzinfo else v.replace(tzinfo=_dt.UTC)


def _iso(v: Any) -> _dt.datetime | None:
    if not isinstance(v, str):
        return None
    try:
        t = _dt.datetime.fromisoformat(v)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)


def _cert_window(der: bytes) -> ItemWindow | None:
    try:
        validity = _x509.Certificate.load(der, strict=True)["tbs_certificate"]["validity"]
        return ItemWindow(
            "certificate",
            _utc(validity["not_before"].native),
            _utc(validity["not_after"].native),
        )
    except _PARSE_ERRORS:
        return None


def _crl_window(der: bytes) -> ItemWindow | None:
    try:
        tbs = _crl.CertificateList.load(der, strict=True)["tbs_cert_list"]
        return ItemWindow("crl", _utc(tbs["this_update"].native), _utc(tbs["next_update"].native))
    except _PARSE_ERRORS:
        return None


def collateral_windows(c: Collateral) -> list[ItemWindow]:
    """The validity window of every parsable item (certificates of document issuer chains
    included)."""
    out: list[ItemWindow] = []
    for der in c.certificates:
        if (w := _cert_window(der)) is not None:
            out.append(w)
    for der in c.crls:
        if (w := _crl_window(der)) is not None:
            out.append(w)
    for d in c.documents:
        try:
            inner = json.loads(d.body)
        except (ValueError, UnicodeDecodeError):
            inner = None
        if isinstance(inner, dict):
            out.append(
                ItemWindow(d.kind, _iso(inner.get("issueDate")), _iso(inner.get("nextUpdate")))
            )
        for der in d.issuer_chain:
            if (w := _cert_window(der)) is not None:
                out.append(w)
    return out


def collateral_expiry(c: Collateral) -> _dt.datetime | None:
    """The earliest end of validity among the items of ``c`` (None: no item has one)."""
    ends = [w.not_after for w in collateral_windows(c) if w.not_after is not None]
    return min(ends) if ends else None
