"""A human-readable view of a certificate, report or quote (``atls inspect``). Nothing here
verifies anything: it only parses and lists fields."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from atls.errors import AtlsError
from atls.pipeline import _looks_like_certificate, builtin_formats, parse_certificate
from atls.x509ext import EVIDENCE_OID, STAPLED_COLLATERAL_OID, decode_collateral, decode_evidence

__all__ = ["describe"]

Rows = list[tuple[str, str]]


def _fmt(v: Any) -> str:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))
    return str(v)


def _evidence_rows(data: bytes, fmt_name: str | None = None) -> Iterator[tuple[str, Rows]]:
    formats = builtin_formats()
    fmt = formats.get(fmt_name) if fmt_name else None
    if fmt is None:
        fmt = next((f for f in formats.values() if f.sniff(data)), None)
    if fmt is None:
        yield "unrecognised evidence", [("size", str(len(data))), ("head", data[:32].hex())]
        return
    describe = getattr(fmt, "describe", None)
    try:
        fields = describe(data) if describe else {"size": len(data)}
    except AtlsError as e:
        yield f"{fmt.name} (malformed)", [("error", f"{e.code}: {e.message}")]
        return
    yield (
        f"{fmt.name} (platform {fmt.platform}, not verified)",
        [(k, _fmt(v)) for k, v in fields.items()],
    )


def describe(data: bytes) -> list[tuple[str, Rows]]:
    out: list[tuple[str, Rows]] = []
    if not _looks_like_certificate(data):
        out.extend(_evidence_rows(data))
        return out
    parsed = parse_certificate(data)
    c = parsed.certificate
    out.append(
        (
            "certificate",
            [
                ("subject", c.subject.rfc4514_string()),
                ("issuer", c.issuer.rfc4514_string()),
                ("not before", c.not_valid_before_utc.isoformat()),
                ("not after", c.not_valid_after_utc.isoformat()),
                ("spki sha256", __import__("hashlib").sha256(parsed.spki).hexdigest()),
                ("extensions", ", ".join(e.oid.dotted_string for e in c.extensions)),
            ],
        )
    )
    raw = parsed.extension(EVIDENCE_OID)
    if raw is None:
        out.append(("atls evidence", [("present", "no")]))
        return out
    try:
        ext = decode_evidence(raw)
    except AtlsError as e:
        out.append(("atls evidence", [("error", f"{e.code}: {e.message}")]))
        return out
    out.append(
        (
            "atls evidence",
            [("format", ext.format), ("binding", ext.binding), ("size", str(len(ext.evidence)))],
        )
    )
    stapled = parsed.extension(STAPLED_COLLATERAL_OID)
    if stapled is not None:
        try:
            col = decode_collateral(stapled)
            out.append(
                (
                    "stapled collateral",
                    [
                        ("certificates", str(len(col.certificates))),
                        ("crls", str(len(col.crls))),
                        ("documents", ", ".join(d.kind for d in col.documents) or "-"),
                    ],
                )
            )
        except AtlsError as e:
            out.append(("stapled collateral", [("error", f"{e.code}: {e.message}")]))
    out.extend(_evidence_rows(ext.evidence, ext.format))
    return out
