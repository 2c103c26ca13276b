"""A minimal, bounded DER reader for the few structures DCAP verification needs.

Used for the Intel SGX PCK certificate extension (OID 1.2.840.113741.1.13.1), the names and
extensions of the SGX PKI certificates, and to cut the signed ``tbsCertificate`` /
``tbsCertList`` out of certificates and CRLs without re-encoding them. Only definite lengths of at
most four length octets are accepted; every read stays inside the caller's buffer.
"""

from __future__ import annotations

__all__ = [
    "DerError",
    "TAG_BOOLEAN",
    "TAG_ENUMERATED",
    "TAG_INTEGER",
    "TAG_OCTET_STRING",
    "TAG_OID",
    "TAG_SEQUENCE",
    "certificate_parts",
    "crl_parts",
    "encode_oid",
    "extensions_map",
    "iter_tlvs",
    "name_common_name",
    "read_tlv",
    "to_int",
]

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_OCTET_STRING = 0x04
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30


class DerError(ValueError):
    """Malformed DER (callers translate it into their own typed error)."""


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """Read one TLV at ``pos`` (``end`` bounds it). Returns ``(tag, value_start, value_end)``."""
    if pos + 2 > end:
        raise DerError(f"truncated TLV at {pos}")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tags are not supported (at {pos})")
    n = buf[pos + 1]
    pos += 2
    if n < 0x80:
        length = n
    else:
        k = n & 0x7F
        if k == 0 or k > 4:
            raise DerError(f"unsupported length encoding at {pos - 1}")
        if pos + k > end:
            raise DerError(f"truncated length at {pos}")
        length = int.from_bytes(buf[pos : pos + k], "big")
        if length < 0x80 or buf[pos] == 0:
            raise DerError(f"non-minimal length at {pos}")
        pos += k
    if length > end - pos:
        raise DerError(f"length {length} exceeds the {end - pos} bytes left at {pos}")
    return tag, pos, pos + length


def iter_tlvs(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """Every TLV in ``buf[start:end]`` as ``(tag, header_start, value_start, value_end)``.

    One tight loop (this runs on every certificate and extension in the cold path)."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    while pos < end:
        if pos + 2 > end:
            raise DerError(f"truncated TLV at {pos}")
        tag = buf[pos]
        if tag & 0x1F == 0x1F:
            raise DerError(f"multi-byte tags are not supported (at {pos})")
        n = buf[pos + 1]
        vs = pos + 2
        if n & 0x80:
            k = n & 0x7F
            if k == 0 or k > 4 or vs + k > end:
                raise DerError(f"unsupported or truncated length at {pos + 1}")
            n = int.from_bytes(buf[vs : vs + k], "big")
            if n < 0x80 or buf[vs] == 0:
                raise DerError(f"non-minimal length at {pos + 1}")
            vs += k
        ve = vs + n
        if ve > end:
            raise DerError(f"length {n} exceeds the {end - vs} bytes left at {vs}")
        out.append((tag, pos, vs, ve))
        pos = ve
    return out


def to_int(value: bytes) -> int:
    """A DER INTEGER / ENUMERATED value (two's complement, big-endian)."""
    if not value:
        raise DerError("empty INTEGER")
    if len(value) > 1 and (
        (value[0] == 0 and not value[1] & 0x80) or (value[0] == 0xFF and value[1] & 0x80)
    ):
        raise DerError("non-minimal INTEGER")
    return int.from_bytes(value, "big", signed=True)


def encode_oid(dotted: str) -> bytes:
    """The DER value (without tag and length) of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for a in arcs[2:]:
        chunk = [a & 0x7F]
        a >>= 7
        while a:
            chunk.append(0x80 | (a & 0x7F))
            a >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def _seq(der: bytes, what: str) -> tuple[int, int]:
    tag, vs, ve = read_tlv(der, 0, len(der))
    if tag != TAG_SEQUENCE or ve != len(der):
        raise DerError(f"{what} is not exactly one DER SEQUENCE")
    return vs, ve


def certificate_parts(der: bytes) -> tuple[bytes, bytes, bytes, int, int]:
    """``(tbs, issuer, subject, ext_start, ext_end)`` of a DER certificate: the complete
    encodings of tbsCertificate, issuer Name and subject Name, and the bounds of the
    extensions SEQUENCE contents (``(0, 0)`` if there is none)."""
    vs, ve = _seq(der, "certificate")
    tag, tvs, tve = read_tlv(der, vs, ve)
    if tag != TAG_SEQUENCE:
        raise DerError("tbsCertificate is not a SEQUENCE")
    items = iter_tlvs(der, tvs, tve)
    i = 1 if items and items[0][0] == 0xA0 else 0  # [0] version
    if len(items) < i + 6:
        raise DerError("tbsCertificate is too short")
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    _, ih, _, ie = items[i + 2]
    _, sh, _, se = items[i + 4]
    ext = (0, 0)
    for tag, _, evs, eve in items[i + 6 :]:
        if tag == 0xA3:  # [3] extensions
            etag, xs, xe = read_tlv(der, evs, eve)
            if etag != TAG_SEQUENCE or xe != eve:
                raise DerError("extensions is not a SEQUENCE")
            ext = (xs, xe)
    return der[vs:tve], der[ih:ie], der[sh:se], ext[0], ext[1]


def extensions_map(der: bytes, ext_start: int, ext_end: int) -> dict[bytes, bytes]:
    """Every extension in ``der[ext_start:ext_end]`` as ``raw OID -> extnValue contents``.
    Malformed or duplicated extensions raise :class:`DerError`."""
    out: dict[bytes, bytes] = {}
    pos = ext_start
    while pos < ext_end:
        # Extension ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue }
        tag, vs, ve = read_tlv(der, pos, ext_end)
        if tag != TAG_SEQUENCE:
            raise DerError("extension is not a SEQUENCE")
        tag, os, oe = read_tlv(der, vs, ve)
        if tag != TAG_OID:
            raise DerError("malformed extension")
        tag, xs, xe = read_tlv(der, oe, ve)
        if tag == TAG_BOOLEAN:
            tag, xs, xe = read_tlv(der, xe, ve)
        if tag != TAG_OCTET_STRING or xe != ve:
            raise DerError("extnValue is not the last member, an OCTET STRING")
        oid = der[os:oe]
        if oid in out:
            raise DerError("duplicate extension")
        out[oid] = der[xs:xe]
        pos = ve
    return out


def crl_parts(der: bytes) -> tuple[bytes, bytes]:
    """``(tbsCertList, issuer)`` complete encodings of a DER CRL."""
    vs, ve = _seq(der, "CRL")
    tag, tvs, tve = read_tlv(der, vs, ve)
    if tag != TAG_SEQUENCE:
        raise DerError("tbsCertList is not a SEQUENCE")
    items = iter_tlvs(der, tvs, tve)
    i = 1 if items and items[0][0] == TAG_INTEGER else 0  # version (v2)
    if len(items) < i + 3:
        raise DerError("tbsCertList is too short")
    _, ih, _, ie = items[i + 1]
    return der[vs:tve], der[ih:ie]


_CN_OID = bytes.fromhex("550403")


def name_common_name(name: bytes) -> str:
    """The first commonName of a DER Name (complete encoding), or ""."""
    tag, vs, ve = read_tlv(name, 0, len(name))
    if tag != TAG_SEQUENCE:
        raise DerError("Name is not a SEQUENCE")
    for rtag, _, rvs, rve in iter_tlvs(name, vs, ve):
        if rtag != 0x31:
            raise DerError("RDN is not a SET")
        for atag, _, avs, ave in iter_tlvs(name, rvs, rve):
            if atag != TAG_SEQUENCE:
                raise DerError("AttributeTypeAndValue is not a SEQUENCE")
            parts = iter_tlvs(name, avs, ave)
            if len(parts) != 2 or parts[0][0] != TAG_OID:
                raise DerError("malformed AttributeTypeAndValue")
            if name[parts[0][2] : parts[0][3]] == _CN_OID:
                return name[parts[1][2] : parts[1][3]].decode("utf-8", "replace")
    return ""
