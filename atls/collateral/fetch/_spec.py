"""What one request is (URL, description, parser) and what parsing it yields (pure)."""

from __future__ import annotations

import binascii
import datetime as _dt
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from atls.collateral import Collateral
from atls.collateral._sniff import is_der_sequence, split_certificates, split_crls
from atls.collateral.fetch._http import HttpResult
from atls.collateral.fetch._x509 import CertInfo, CrlInfo
from atls.errors import CollateralUnavailableError

__all__ = [
    "NO_NEXT_UPDATE_TTL",
    "Piece",
    "Spec",
    "check_content_type",
    "crl_from_body",
    "issuer_chain_from_header",
    "malformed",
    "mismatch",
    "window",
]

#: A CRL without nextUpdate is treated as fresh for this long after it was fetched.
NO_NEXT_UPDATE_TTL = _dt.timedelta(hours=24)


@dataclass(frozen=True)
class Piece:
    """What one response contributes, and until when it is valid."""

    collateral: Collateral
    not_after: _dt.datetime
    not_before: _dt.datetime | None = None


@dataclass(frozen=True)
class Spec:
    """One GET: its URL (also the cache key), a description, and the parser of a 200 answer."""

    url: str
    what: str
    parse: Callable[[HttpResult], Piece]

    @property
    def key(self) -> str:
        return self.url


def malformed(res: HttpResult, what: str, why: str) -> CollateralUnavailableError:
    return CollateralUnavailableError(f"{what}: {res.url}: {why}", code="collateral.malformed")


def mismatch(res: HttpResult, what: str, why: str) -> CollateralUnavailableError:
    return CollateralUnavailableError(f"{what}: {res.url}: {why}", code="collateral.mismatch")


def check_content_type(res: HttpResult, what: str, accepted: Iterable[str]) -> None:
    """Reject a response whose declared media type is not one the endpoint sends
    ('' in ``accepted`` allows a missing Content-Type)."""
    ct = res.content_type
    accepted = tuple(accepted)
    if ct not in accepted:
        shown = ", ".join(a or "(none)" for a in accepted)
        raise CollateralUnavailableError(
            f"{what}: {res.url}: unexpected Content-Type {ct or '(none)'!r} (expected {shown})",
            code="collateral.content_type",
        )


def issuer_chain_from_header(
    res: HttpResult, what: str, names: Iterable[str]
) -> tuple[tuple[bytes, ...], list[CertInfo]]:
    """The URL-encoded PEM issuer chain in the first present header of ``names``."""
    names = tuple(names)
    value = None
    for n in names:
        value = res.header(n)
        if value is not None:
            break
    if value is None:
        raise malformed(res, what, f"missing header {' / '.join(names)}")
    pem = urllib.parse.unquote(value).encode("utf-8", "replace")
    ders = split_certificates(pem)
    if not ders:
        raise malformed(res, what, f"header {n} holds no PEM certificate")
    infos: list[CertInfo] = []
    for d in ders:
        try:
            infos.append(CertInfo(d))
        except ValueError as e:
            raise malformed(res, what, f"issuer chain: {e}") from e
    return tuple(ders), infos


def crl_from_body(res: HttpResult, what: str) -> CrlInfo:
    """A CRL body as DER, PEM, or hex text (a PCCS sends the root CA CRL as hex)."""
    body = res.body
    der: bytes | None = None
    if is_der_sequence(body):
        der = body
    elif b"-----BEGIN" in body:
        crls = split_crls(body)
        if len(crls) == 1:
            der = crls[0]
    else:
        text = body.strip()
        if text and len(text) % 2 == 0 and all(c in b"0123456789abcdefABCDEF" for c in text):
            try:
                candidate = binascii.unhexlify(text)
            except binascii.Error:
                candidate = b""
            if is_der_sequence(candidate):
                der = candidate
    if der is None:
        raise malformed(res, what, f"body ({len(body)} bytes) is not one CRL in DER, PEM or hex")
    try:
        return CrlInfo(der)
    except ValueError as e:
        raise malformed(res, what, str(e)) from e


def window(
    res: HttpResult,
    *,
    not_before: Iterable[_dt.datetime | None] = (),
    not_after: Iterable[_dt.datetime | None] = (),
) -> tuple[_dt.datetime | None, _dt.datetime]:
    """Latest start and earliest end; a missing end (CRL without nextUpdate) counts as
    ``fetched_at + NO_NEXT_UPDATE_TTL``."""
    starts = [t for t in not_before if t is not None]
    ends = [t if t is not None else res.fetched_at + NO_NEXT_UPDATE_TTL for t in not_after]
    if not ends:
        ends = [res.fetched_at + NO_NEXT_UPDATE_TTL]
    return (max(starts) if starts else None), min(ends)
